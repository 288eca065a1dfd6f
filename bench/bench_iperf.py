"""How close does flushbench's best single-connection stream get to iperf3, and where is the rest?

    python bench/bench_iperf.py [--size 128K] [--rounds 8] [--seconds 1]
                                [--value-times 0.01,0.1] [-o FILE.json]
    nox -s perf -- iperf [ARGS]

Round by round, in a fresh random order per round: one ``iperf3 -c -l SIZE -t SECONDS`` run
and, for each value time V of ``--value-times``, about SECONDS of flushbench values of the
case ``stream-sendmsg-sSIZE-p2-nd0-sbauto-loopback`` (one ``sendmsg`` per message, no
user-space copy, as iperf3 writes) on a new connection. Both sides are pinned as
``flushbench run`` pins them: the sender on the last CPU, the receiver (the iperf3 server,
the flushbench peer) on the first. So each flushbench figure has an iperf3 figure measured
seconds away, and the ratio per round is paired; printed: the median ratio per value time
with its range over rounds.

A flushbench value ends when the peer has confirmed every byte, so each value pays one drain
of the bytes in flight (the socket buffers, megabytes when autotuned) and starts with an
empty pipe; iperf3 streams for whole seconds. The value times show that cost: it shrinks
as the values get longer. Around each measurement /proc/stat gives where the sender's and
the receiver's CPU went (user, system, softirq, busy): with the sender's CPU at its limit,
the user share is what Python costs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import load_line  # noqa: E402

from flushbench.case import Case, parse_size, size_label  # noqa: E402
from flushbench.errors import SetupError  # noqa: E402
from flushbench.measure.session import Session  # noqa: E402
from flushbench.procs import PeerProcess  # noqa: E402
from flushbench.run.reftools import Place, iperf3  # noqa: E402


def cpu_times() -> dict[int, list[int]]:
    """Per CPU: user, nice, system, idle, iowait, irq, softirq (jiffies, /proc/stat)."""
    out = {}
    with open("/proc/stat") as fh:
        for line in fh:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                out[int(name[3:])] = [int(x) for x in fields[:7]]
    return out


def cpu_split(before: dict[int, list[int]], after: dict[int, list[int]], cpu: int
              ) -> dict[str, float]:
    """Shares of ``cpu``'s time between two readings: user, system, softirq, busy."""
    d = [b - a for a, b in zip(before[cpu], after[cpu])]
    total = sum(d) or 1
    return {"user": (d[0] + d[1]) / total, "system": d[2] / total, "softirq": d[6] / total,
            "busy": 1 - (d[3] + d[4]) / total}


def iperf3_bps(size: int, seconds: int, client_cpu: int, server_cpu: int) -> float:
    """One iperf3 run over loopback, pinned (as calibrate runs it): its receiver's bits/s."""
    place = Place.of(None, {"client": client_cpu, "peer": server_cpu})
    try:
        return iperf3(size, seconds, place)[0]
    except SetupError as exc:
        raise SystemExit(str(exc)) from None


def flushbench_bps(case: Case, peer: PeerProcess, seconds: float, value_time: float) -> float:
    """About ``seconds`` of values of ``value_time`` on one new connection: bits per second
    over the values (each ends when the peer has confirmed every byte)."""
    session = Session.connect(case, peer.addr, 10.0, peer.ticket)
    try:
        n = session.ops_for(1 << 30, value_time)
        session.run_value(n, record=False)  # one untimed value, as a run's warm-up
        values = max(1, round(seconds / value_time))
        for _ in range(values):  # bounded: ~seconds in all
            session.run_value(session.ops_for(1 << 30, value_time))
        sent = sum(v.msgs for v in session.values) * case.msg_size
        elapsed = sum(v.elapsed_ns for v in session.values) / 1e9
        return 8 * sent / elapsed
    finally:
        session.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=parse_size, default=131072)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seconds", type=int, default=1, help="per measurement (whole seconds)")
    p.add_argument("--value-times", default="0.01,0.1",
                   help="flushbench value times to compare, in seconds")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("-o", "--output", type=Path)
    args = p.parse_args()
    try:
        value_times = [float(v) for v in args.value_times.split(",")]
    except ValueError:
        p.error(f"--value-times takes seconds separated by commas, got {args.value_times!r}")
    if not (1 <= args.rounds <= 50 and 1 <= args.seconds <= 10
            and all(0.001 <= v <= 1.0 for v in value_times)):
        p.error("--rounds 1..50, --seconds 1..10, --value-times each 0.001..1")
    for tool in ("iperf3", "taskset"):
        if shutil.which(tool) is None:
            p.error(f"{tool} is not installed (apt-get install iperf3 util-linux)")
    cpus = sorted(os.sched_getaffinity(0))
    client_cpu, server_cpu = cpus[-1], cpus[0]
    case = Case("stream", "sendmsg", args.size, ops=1 << 20)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    before = load_line()
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with PeerProcess("127.0.0.1", cpu=server_cpu) as peer:
        os.sched_setaffinity(0, {client_cpu})
        for r in range(args.rounds):
            jobs = ["iperf3", *(f"flushbench@{v:g}" for v in value_times)]
            rng.shuffle(jobs)
            got: dict[str, float] = {}
            split: dict[str, dict[str, float]] = {}
            for job in jobs:
                t0 = cpu_times()
                if job == "iperf3":
                    got[job] = iperf3_bps(args.size, args.seconds, client_cpu, server_cpu)
                else:
                    got[job] = flushbench_bps(case, peer, args.seconds,
                                              float(job.split("@")[1]))
                t1 = cpu_times()
                split[job] = {f"{side}_{k}": v for side, cpu in (("sender", client_cpu),
                                                                 ("receiver", server_cpu))
                              for k, v in cpu_split(t0, t1, cpu).items()}
            rows.append({"round": r, "order": " ".join(jobs), **got, "cpu": split})
            line = "  ".join(f"{k} {v / 1e9:6.2f}" for k, v in sorted(got.items()))
            print(f"round {r}: Gbit/s  {line}", flush=True)
    summary = {}
    print(f"\n{case.id} against iperf3 -l {size_label(args.size)}, {args.rounds} rounds:")
    for v in value_times:
        key = f"flushbench@{v:g}"
        ratios = [float(row[key]) / float(row["iperf3"]) for row in rows]
        med = statistics.median(ratios)
        summary[key] = {"median": med, "min": min(ratios), "max": max(ratios),
                        "geomean": math.exp(statistics.fmean(math.log(x) for x in ratios))}
        print(f"  values of {v * 1000:g} ms: {med:.3f}x iperf3 (median; "
              f"range {min(ratios):.3f}-{max(ratios):.3f})")
    print("  where each side's CPU went (median over rounds; share of that CPU):")
    for job in ["iperf3", *(f"flushbench@{v:g}" for v in value_times)]:
        shares = [row["cpu"][job] for row in rows]
        line = ", ".join(f"{k} {statistics.median(s[k] for s in shares):.2f}"
                         for k in shares[0])
        print(f"    {job}: {line}")
    after = load_line()
    print(f"{before}; after: {after}; {time.perf_counter() - start:.0f} s; seed {seed}")
    if args.output:
        args.output.write_text(json.dumps({"argv": sys.argv, "seed": seed, "case": case.id,
                                           "before": before, "after": after, "rows": rows,
                                           "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
