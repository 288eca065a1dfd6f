"""How close does flushbench's best single-connection stream get to iperf3, and where is the rest?

    python bench/bench_iperf.py [--size 128K] [--rounds 8] [--seconds 1]
                                [--value-times 0.01,0.1] [--cc cubic] [-o FILE.json]
    nox -s perf -- iperf [ARGS]

Round by round, in a fresh random order per round: one ``iperf3 -c -l SIZE -t SECONDS`` run
and, for each value time V of ``--value-times``, about SECONDS of flushbench values of the
case ``stream-sendmsg-sSIZE-p2-nd0-sbauto-loopback`` (one ``sendmsg`` per message, no
user-space copy, as iperf3 writes) on a new connection. Both sides are pinned as
``flushbench run`` pins them: the sender on the last CPU, the receiver (the iperf3 server,
the flushbench peer) on the first. ``--cc`` gives all three senders one congestion control
(iperf3 ``-C``, TCP_CONGESTION on the others), as the quick suite does; by default each keeps
the host's. So each flushbench figure has an iperf3 figure measured
seconds away, and the ratio per round is paired; printed: the median ratio per value time
with its range over rounds, and the geometric mean with its 95 % t-interval.

A third job, ``python``, splits the gap: a plain Python loop (``sendmsg`` of the same two
parts for SECONDS on a plain socket, to a plain ``recv_into`` loop of 1 MiB in a process
pinned as the peer is) with none of flushbench's protocol, stamps or values. iperf3 against
``python`` is what Python's per-call cost takes; ``python`` against flushbench is the
harness's.

A flushbench value ends when the peer has confirmed every byte, so each value pays one drain
of the bytes in flight (the socket buffers, megabytes when autotuned) and starts with an
empty pipe; iperf3 streams for whole seconds. The value times show that cost: it shrinks
as the values get longer. Around each measurement /proc/stat gives where the sender's and
the receiver's CPU went (user, system, softirq, busy): with the sender's CPU at its limit,
the user share is what Python costs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import scipy.stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import load_line  # noqa: E402

from flushbench.case import Case, parse_size, size_label  # noqa: E402
from flushbench.cliargs import _cc  # noqa: E402
from flushbench.errors import SetupError  # noqa: E402
from flushbench.measure.loops import make_parts  # noqa: E402
from flushbench.measure.session import Session  # noqa: E402
from flushbench.measure.sockopts import cc_unavailable, set_cc  # noqa: E402
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


def geomean_interval(ratios: list[float]) -> tuple[float, float, float]:
    """The geometric mean of paired ratios and its 95 % t-interval (the rounds as the
    observations; one round: no interval)."""
    logs = [math.log(x) for x in ratios]
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(mean), math.nan, math.nan
    half = float(scipy.stats.t.ppf(0.975, len(logs) - 1)) * statistics.stdev(logs) \
        / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def iperf3_bps(size: int, seconds: int, client_cpu: int, server_cpu: int, cc: str) -> float:
    """One iperf3 run over loopback, pinned (as calibrate runs it): its receiver's bits/s."""
    place = Place.of(None, {"client": client_cpu, "peer": server_cpu})
    try:
        return iperf3(size, seconds, place, cc=cc)[0]
    except SetupError as exc:
        raise SystemExit(str(exc)) from None


def flushbench_bps(case: Case, peer: PeerProcess, seconds: float, value_time: float,
                   cc: str) -> float:
    """About ``seconds`` of values of ``value_time`` on one new connection: bits per second
    over the values (each ends when the peer has confirmed every byte)."""
    session = Session.connect(case, peer.addr, 10.0, peer.ticket, cc=cc)
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


def _plain_receiver(listener: socket.socket, cpu: int) -> None:
    """The plain job's receiver: count bytes with 1 MiB recv_into until EOF, answer the
    count (8 bytes), next connection; ends when the listener is closed by the parent's exit."""
    os.sched_setaffinity(0, {cpu})
    view = memoryview(bytearray(1 << 20))
    while True:
        conn, _ = listener.accept()
        with conn:
            got = 0
            while k := conn.recv_into(view):
                got += k
            conn.sendall(got.to_bytes(8, "big"))


def plain_bps(addr: tuple[str, int], parts: list[bytes], seconds: float, cc: str) -> float:
    """A plain Python sendmsg loop for about ``seconds``: bits/s until the receiver has
    counted every byte (bounded: checks the clock every 64 messages)."""
    total = sum(map(len, parts))
    with socket.create_connection(addr, timeout=30) as sock:
        if cc:
            set_cc(sock, cc)
        # blocking, as flushbench's timed loop sends: with a Python timeout every send
        # would poll() first (measured here: 0.93x against 0.96x iperf3 without)
        sock.settimeout(None)
        sent, start = 0, time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            for _ in range(64):
                k = sock.sendmsg(parts)
                while k < total:  # a partial send: the rest as one piece (rare, blocking)
                    k += sock.send(b"".join(parts)[k:])
                sent += total
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(30)  # the confirmation: bounded
        confirmed = int.from_bytes(sock.recv(8), "big")
        elapsed = time.perf_counter() - start
    if confirmed != sent:
        raise SystemExit(f"the plain receiver counted {confirmed} bytes, {sent} were sent")
    return 8 * sent / elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=parse_size, default=131072)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seconds", type=int, default=1, help="per measurement (whole seconds)")
    p.add_argument("--value-times", default="0.01,0.1",
                   help="flushbench value times to compare, in seconds")
    p.add_argument("--cc", type=_cc, default="host", metavar="NAME",
                   help="the senders' congestion control, e.g. cubic (default: host's)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("-o", "--output", type=Path)
    args = p.parse_args()
    try:
        value_times = [float(v) for v in args.value_times.split(",")]
    except ValueError:
        p.error(f"--value-times takes seconds separated by commas, got {args.value_times!r}")
    if not (1 <= args.rounds <= 100 and 1 <= args.seconds <= 10
            and all(0.001 <= v <= 1.0 for v in value_times)):
        p.error("--rounds 1..100, --seconds 1..10, --value-times each 0.001..1")
    if args.cc and (why := cc_unavailable(args.cc)):
        p.error(f"--cc: {why}")
    for tool in ("iperf3", "taskset"):
        if shutil.which(tool) is None:
            p.error(f"{tool} is not installed (apt-get install iperf3 util-linux)")
    cpus = sorted(os.sched_getaffinity(0))
    client_cpu, server_cpu = cpus[-1], cpus[0]
    case = Case("stream", "sendmsg", args.size, ops=1 << 20)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    parts = make_parts(case)
    listener = socket.create_server(("127.0.0.1", 0))
    receiver = multiprocessing.get_context("fork").Process(
        target=_plain_receiver, args=(listener, server_cpu), daemon=True)
    receiver.start()
    before = load_line()
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    # its receiver copies, as iperf3's and the plain loop's do (measure/sink.py)
    with PeerProcess("127.0.0.1", cpu=server_cpu, sink="copy") as peer, \
            contextlib.ExitStack() as stack:
        stack.callback(receiver.join, 5)
        stack.callback(receiver.kill)
        os.sched_setaffinity(0, {client_cpu})
        for r in range(args.rounds):
            jobs = ["iperf3", "python", *(f"flushbench@{v:g}" for v in value_times)]
            rng.shuffle(jobs)
            got: dict[str, float] = {}
            split: dict[str, dict[str, float]] = {}
            for job in jobs:
                t0 = cpu_times()
                if job == "iperf3":
                    got[job] = iperf3_bps(args.size, args.seconds, client_cpu, server_cpu,
                                          args.cc)
                elif job == "python":
                    got[job] = plain_bps(listener.getsockname(), parts, args.seconds, args.cc)
                else:
                    got[job] = flushbench_bps(case, peer, args.seconds,
                                              float(job.split("@")[1]), args.cc)
                t1 = cpu_times()
                split[job] = {f"{side}_{k}": v for side, cpu in (("sender", client_cpu),
                                                                 ("receiver", server_cpu))
                              for k, v in cpu_split(t0, t1, cpu).items()}
            rows.append({"round": r, "order": " ".join(jobs), **got, "cpu": split})
            line = "  ".join(f"{k} {v / 1e9:6.2f}" for k, v in sorted(got.items()))
            print(f"round {r}: Gbit/s  {line}", flush=True)
    summary = {}
    cc = f", congestion control {args.cc}" if args.cc else ""
    print(f"\n{case.id} against iperf3 -l {size_label(args.size)}, {args.rounds} rounds{cc}:")
    pairs = [(f"flushbench@{v:g}", "iperf3", f"values of {v * 1000:g} ms")
             for v in value_times]
    pairs += [("python", "iperf3", "plain Python loop"),
              *((f"flushbench@{v:g}", "python", f"values of {v * 1000:g} ms against it")
                for v in value_times)]
    for key, ref, label in pairs:
        ratios = [float(row[key]) / float(row[ref]) for row in rows]
        med = statistics.median(ratios)
        geo, lo, hi = geomean_interval(ratios)
        summary[key if ref == "iperf3" else f"{key}/{ref}"] = {
            "median": med, "min": min(ratios), "max": max(ratios), "geomean": geo,
            "geomean_ci95": [lo, hi]}
        print(f"  {label}: {med:.3f}x {ref} (median; range {min(ratios):.3f}-{max(ratios):.3f}; "
              f"geometric mean {geo:.3f}, 95 % {lo:.3f}-{hi:.3f})")
    print("  where each side's CPU went (median over rounds; share of that CPU):")
    for job in ["iperf3", "python", *(f"flushbench@{v:g}" for v in value_times)]:
        shares = [row["cpu"][job] for row in rows]
        line = ", ".join(f"{k} {statistics.median(s[k] for s in shares):.2f}"
                         for k in shares[0])
        print(f"    {job}: {line}")
    after = load_line()
    print(f"{before}; after: {after}; {time.perf_counter() - start:.0f} s; seed {seed}")
    if args.output:
        args.output.write_text(json.dumps({"argv": sys.argv, "seed": seed, "case": case.id,
                                           "cc": args.cc or "host",
                                           "before": before, "after": after, "rows": rows,
                                           "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
