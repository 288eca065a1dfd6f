"""unix against loopback, stream sendall 16 KiB, per run: the client's congestion control,
the paired ratio with its 95 % interval, the twin's (A/A), and loopback's Gbit/s.
python results/epyc-2core-vm/20261204-unix-cc/summary.py"""
import csv
import json
from pathlib import Path

HERE = Path(__file__).parent
for run in sorted(HERE.glob("u16-*/"), key=lambda p: int(p.name.split("-")[1])):
    cc = json.loads((run / "meta.json").read_text())["schedule"].get("cc") or "host (bbr)"
    ratios = {}
    for r in csv.DictReader(open(run / "verdicts.csv")):
        if r["metric"] == "throughput_bps":
            kind = "twin" if r["case"].endswith("-twin") else "unix"
            ratios[kind] = f"{float(r['ratio']):.3f} [{float(r['ci_low']):.3f}-{float(r['ci_high']):.3f}]"
    loop = next(float(r["throughput_bps"]) for r in csv.DictReader(open(run / "table.csv"))
                if r["case"] == "stream-sendall-s16K-p2-nd0-sbauto-loopback")
    print(f"{run.name:7s} cc {cc:11s} unix/loopback {ratios['unix']:22s} twin {ratios['twin']:22s}"
          f" loopback {loop / 1e9:5.1f} Gbit/s")
