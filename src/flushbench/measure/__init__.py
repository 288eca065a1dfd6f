"""Code that runs inside worker and peer processes: the timed loops and the peer.

Standard library and pyperf only (no numpy, pandas, scipy, matplotlib or rich), and nothing
from the layers above (run, analysis, report, remote, netlab, cli): it is on the clock of
every case, and started hundreds of times per run. ``tests/test_layers.py`` holds it to that.
"""
