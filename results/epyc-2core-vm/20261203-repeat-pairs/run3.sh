#!/bin/sh
# Two more back-to-back pairs (p7, p8) with the code of commit 706b416 (as p5 and p6, plus
# the GO/READY host-state column), each pair's ratios compared (bench_verdicts.py
# --only-repeat). Run from the project root; SRC may point at a checkout of that commit (it
# goes first on PYTHONPATH, and the workers inherit it).
set -e
D=results/epyc-2core-vm/20261203-repeat-pairs
BIN=${BIN:-.nox/tests/bin}
[ -n "$SRC" ] && export PYTHONPATH="$SRC"
for p in 7 8; do
  for s in a b; do
    /usr/bin/time -f "p$p-$s wall %e s" $BIN/python -m flushbench run --suite quick -q \
      --machine epyc-2core-vm -o $D/p$p-$s
  done
  $BIN/python bench/bench_verdicts.py --only-repeat --from $D/p$p-a $D/p$p-b \
    -o $D/p$p-repeat.json
done
