#!/bin/sh
set -e
cd /work/main
for s in a b; do
  /usr/bin/time -f "$s wall %e s" .nox/tests/bin/python -m flushbench run --suite quick -q --report --machine epyc-2core-vm
done
