"""Stream values holding a retransmission, and what they cost, in verdict-bench run dirs.

    python retrans.py RUN_DIR [RUN_DIR ...]

Per message size, over every stream case's values after round 0: the share of values with
v_retrans > 0, and the median throughput of values with and without one (Gbit/s).
"""
import collections
import glob
import sys

import numpy as np

by_size = collections.defaultdict(lambda: ([], []))
for run in sys.argv[1:]:
    for f in glob.glob(f"{run}/samples/stream-*.npz"):
        size = f.rsplit("/", 1)[1].split("-")[2]
        a = np.load(f)
        keep = a["round_of_value"] > 0
        thr = a["v_bytes"][keep] * 8 / a["v_elapsed_ns"][keep]
        by_size[size][0].append(thr)
        by_size[size][1].append(a["v_retrans"][keep])
for size, (thr, re) in sorted(by_size.items()):
    thr, re = np.concatenate(thr), np.concatenate(re)
    hit = re > 0
    line = f"{size:>6}: {thr.size} values, {hit.mean() * 100:.1f} % with a retransmission"
    if hit.any():
        slow = np.median(thr[hit]) / np.median(thr[~hit])
        line += (f"; median {np.median(thr[~hit]):.1f} Gbit/s without, "
                 f"{np.median(thr[hit]):.1f} with ({(1 - slow) * 100:.0f} % slower)")
    print(line)
