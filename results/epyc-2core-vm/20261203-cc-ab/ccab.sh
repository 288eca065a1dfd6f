#!/bin/bash
cd /work/main
for i in 1 2; do for cc in cubic bbr; do
  sysctl -qw net.ipv4.tcp_congestion_control=$cc
  echo "== $cc $i $(date +%T)"
  .nox/tests/bin/python bench/bench_verdicts.py --no-blocks --no-repeat --stream-sizes 16K,128K,1M --rr-sizes '' --keep /tmp/exp/cc-$cc-$i -o /tmp/exp/cc-$cc-$i.json 2>&1 | grep -E "stream s|called better|share|^ +[0-9]+ %"
done; done
sysctl -qw net.ipv4.tcp_congestion_control=bbr
