#!/bin/sh
# Two more back-to-back pairs (p5, p6) with the code of commit 59e7682 (the time budget; a
# trap case's warm-up of one operation; workers reaped at their exit), each pair's ratios
# compared (bench_verdicts.py --only-repeat). Run from the project root with a venv that has
# flushbench installed (nox -s tests or nox -s bench makes one).
set -e
D=results/epyc-2core-vm/20261203-repeat-pairs
BIN=${BIN:-.nox/tests/bin}
for p in 5 6; do
  for s in a b; do
    /usr/bin/time -f "p$p-$s wall %e s" $BIN/flushbench run --suite quick -q \
      --machine epyc-2core-vm -o $D/p$p-$s
  done
  $BIN/python bench/bench_verdicts.py --only-repeat --from $D/p$p-a $D/p$p-b \
    -o $D/p$p-repeat.json
done
