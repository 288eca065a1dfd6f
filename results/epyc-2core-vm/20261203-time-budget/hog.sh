#!/bin/sh
# A busy neighbour: one CPU-bound process on CPU 0 (the peer's) from 20 s to 120 s into the run.
sleep 20
timeout 100 taskset -c 0 python3 -c "while True: pass"
