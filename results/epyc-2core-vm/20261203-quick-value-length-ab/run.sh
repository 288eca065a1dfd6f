#!/bin/bash
cd /work/main
for rep in 1 2; do
  for cfg in 32 8; do
    if [ $cfg = 32 ]; then suite=quick; else suite=OUT/quick8.toml; fi
    s=$(date +%s)
    .nox/tests/bin/flushbench run --suite $suite --out OUT/q$cfg-r$rep > OUT/q$cfg-r$rep.log 2>&1
    echo "q$cfg-r$rep exit $? $(( $(date +%s) - s )) s"
  done
done
