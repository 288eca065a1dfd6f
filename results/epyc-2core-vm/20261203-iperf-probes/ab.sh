#!/bin/bash
# alternate iperf3 and plain python, 3 s each, N rounds
N=$1; S=${2:-3}
for r in $(seq $N); do
  for job in $( (echo ip; echo py) | shuf); do
    if [ $job = ip ]; then
      (timeout 15 taskset -c 0 iperf3 -s -1 -p 5299 >/dev/null &) ; sleep 0.2
      v=$(taskset -c 1 iperf3 -c 127.0.0.1 -p 5299 -t $S -l 128K -f g | awk '/receiver/{print $7}')
    else
      (taskset -c 0 /work/main/.nox/tests/bin/python recv.py 5301 &) ; sleep 0.3
      v=$(taskset -c 1 /work/main/.nox/tests/bin/python plain3.py 5301 $S | awk '{print $1}')
    fi
    echo "$r $job $v"
  done
done
