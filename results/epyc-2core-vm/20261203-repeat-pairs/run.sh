#!/bin/sh
# Three back-to-back pairs of quick runs, each pair's ratios compared (bench_verdicts.py
# --only-repeat): how often does the ratio repeatability target hold, and what misses?
# Run from the project root with the bench session's environment (nox -s bench installs it).
set -e
D=results/epyc-2core-vm/20261203-repeat-pairs
for p in 1 2 3; do
  for s in a b; do
    /usr/bin/time -f "p$p-$s wall %e s" .nox/bench/bin/flushbench run --suite quick -q \
      --machine epyc-2core-vm -o $D/p$p-$s
  done
  .nox/tests/bin/python bench/bench_verdicts.py --only-repeat --from $D/p$p-a $D/p$p-b \
    -o $D/p$p-repeat.json
done
