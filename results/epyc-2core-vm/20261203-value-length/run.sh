#!/bin/bash
cd /work/main
for rep in 1 2; do
 for cfg in "8 0.01" "16 0.005" "32 0.0025"; do
  set -- $cfg
  tag=v$1-r$rep
  /usr/bin/time -f "%e s wall" .nox/tests/bin/python bench/bench_verdicts.py --runs 1 --no-blocks --no-repeat --values $1 --value-time $2 --seed $((710+rep)) -o OUT/$tag.json --keep OUT/$tag > OUT/$tag.log 2>&1
  tail -1 OUT/$tag.log
  grep "verdicts-1:" OUT/$tag.log
 done
done
