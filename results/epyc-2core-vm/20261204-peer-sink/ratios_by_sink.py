"""Median over the bench's pairs of each stream case's throughput ratio to sendall, per sink.

    python3 ratios_by_sink.py RUNS_DIR   # the --keep directory of bench_peer_sink.py
"""
import collections
import csv
import glob
import statistics
import sys

ratios = collections.defaultdict(list)
for f in glob.glob(f"{sys.argv[1]}/p*-*/verdicts.csv"):
    sink = f.split("/")[-2].split("-")[1]
    for r in csv.DictReader(open(f)):
        if r["metric"] == "throughput_bps" and "sbauto" in r["baseline"] and r["axis"] == "strategy":
            parts = r["case"].split("-")
            ratios[(parts[2], parts[1], sink)].append(float(r["ratio"]))
for size, strategy in sorted({k[:2] for k in ratios}):
    x, y = ratios[(size, strategy, "discard")], ratios[(size, strategy, "copy")]
    print(f"{size:6s} {strategy:10s} discard {statistics.median(x):.3f}  copy {statistics.median(y):.3f}")
