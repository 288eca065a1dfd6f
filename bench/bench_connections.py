"""Is a loopback stream's speed a property of its connection? The reason for ``rotate``.

    python bench/bench_connections.py [--size 16K] [--conns 8] [--values 16] [--procs 3]
                                      [--warmups 0] [--cc bbr,cubic] [-o FILE.json]

One worker-like process (pinned to the last CPU, the peer to the first, as ``flushbench run``
pins them) opens ``--conns`` identical ``sendall`` stream connections to a real peer and
measures ``--values`` values of 10 ms on each, interleaved in a fresh order per slot, so every
connection sees the same host drift. If speed were a property of the process and the moment,
the connections' mean log time per message would differ only by the values' own noise
(value sd / sqrt(values)). Printed per set: each connection's mean time per message relative
to the first's, its data segments per message (TCP_INFO data_segs_out over its values) and
how the two correlate, the spread of the means, and the spread the value noise alone
predicts. ``--procs`` sets, each on new connections.

``--cc A,B``: the sets take turns with these congestion controls (TCP_CONGESTION on every
connection, as ``flushbench run --cc`` sets it; ``host``: the host's default), and the end
says per congestion control the median spread of the connection means against the median
the values' noise predicts. With BBR, the default of the VM here, the 16 KiB connections
spread 3-5 times what their values' noise predicts; with CUBIC they do not (docs/methods.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from flushbench.case import Case, parse_size  # noqa: E402
from flushbench.cliargs import _cc  # noqa: E402
from flushbench.measure import sockopts  # noqa: E402
from flushbench.measure.session import Session  # noqa: E402
from flushbench.metadata import sysctls  # noqa: E402
from flushbench.procs import PeerProcess  # noqa: E402

VALUE_TIME = 0.01


def _corr(x: list[float], y: list[float]) -> float:
    """Pearson's r, NaN where either side does not vary."""
    try:
        return statistics.correlation(x, y)
    except statistics.StatisticsError:
        return math.nan


def one_process(case: Case, peer: PeerProcess, conns: int, values: int, warmups: int,
                rng: random.Random, cc: str = "") -> dict[str, float | list[float]]:
    sessions = [Session.connect(case, peer.addr, 10.0, peer.ticket, cc=cc)
                for _ in range(conns)]
    try:
        n = sessions[0].ops_for(case.op_count, VALUE_TIME)
        for _ in range(warmups):
            for s in sessions:
                s.run_value(n, record=False)
        logs: list[list[float]] = [[] for _ in sessions]
        segs, msgs = [0] * conns, [0] * conns
        for _ in range(values):  # bounded: values x conns values of ~10 ms
            order = list(range(conns))
            rng.shuffle(order)
            for i in order:
                before = sockopts.tcp_info(sessions[i].sock).get("data_segs_out", 0)
                sessions[i].run_value(n)
                segs[i] += sockopts.tcp_info(sessions[i].sock).get("data_segs_out", 0) - before
                v = sessions[i].values[-1]
                msgs[i] += v.msgs
                logs[i].append(math.log(v.elapsed_ns / v.msgs))
    finally:
        for s in sessions:
            s.close()
    means = [statistics.fmean(x) for x in logs]
    within = statistics.fmean(statistics.stdev(x) for x in logs)
    return {"relative": [math.expm1(m - means[0]) for m in means],  # time per message
            "segs_per_msg": [k / m if m else math.nan for k, m in zip(segs, msgs)],
            "time_segs_r": _corr(means, [k / max(1, m) for k, m in zip(segs, msgs)]),
            "between_sd": statistics.stdev(means), "value_sd": within,
            "predicted_sd": within / math.sqrt(values)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=parse_size, default=16384)
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--values", type=int, default=16)
    p.add_argument("--procs", type=int, default=3)
    p.add_argument("--warmups", type=int, default=0, help="untimed values per connection")
    p.add_argument("--cc", default="host",
                   help="congestion controls the sets take turns with, by commas (host: the "
                        "host's default)")
    p.add_argument("-o", "--output", type=Path)
    args = p.parse_args()
    if not (2 <= args.conns <= 64 and 2 <= args.values <= 200 and 1 <= args.procs <= 40):
        p.error("--conns 2..64, --values 2..200, --procs 1..40")
    try:
        ccs = [_cc(c) for c in args.cc.split(",")]
    except argparse.ArgumentTypeError as exc:
        p.error(f"--cc: {exc}")
    for cc in ccs:
        if cc and (why := sockopts.cc_unavailable(cc)):
            p.error(f"--cc: {why}")
    host_cc = sysctls().get("net.ipv4.tcp_congestion_control", "?")
    cpus = sorted(os.sched_getaffinity(0))
    case = Case("stream", "sendall", args.size, ops=20000)
    rng = random.Random(1)
    out = []
    with PeerProcess("127.0.0.1", cpu=cpus[0]) as peer:
        os.sched_setaffinity(0, {cpus[-1]})
        for k in range(args.procs):  # new connections each time
            cc = ccs[k % len(ccs)]
            got = one_process(case, peer, args.conns, args.values, args.warmups, rng, cc)
            got["cc"] = cc or f"host ({host_cc})"  # type: ignore[assignment]
            out.append(got)
            rel = " ".join(f"{r * 100:+6.1f}" for r in got["relative"])  # type: ignore[union-attr]
            seg = " ".join(f"{x:6.3f}" for x in got["segs_per_msg"])  # type: ignore[union-attr]
            print(f"set {k} ({got['cc']}): time per message vs the first connection's (%): "
                  f"{rel}\n"
                  f"        their data segments per message:  {seg}\n"
                  f"        correlation of time per message and segments per message: "
                  f"r = {got['time_segs_r']:+.2f}\n"
                  f"        spread of connection means {got['between_sd'] * 100:.1f} %; "
                  f"the values' noise predicts {got['predicted_sd'] * 100:.1f} %", flush=True)
    by_cc: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(str(s["cc"]) for s in out):
        sets = [s for s in out if s["cc"] == name]
        by_cc[name] = {"sets": len(sets),
                       "between_sd_median": statistics.median(
                           float(s["between_sd"]) for s in sets),  # type: ignore[arg-type]
                       "predicted_sd_median": statistics.median(
                           float(s["predicted_sd"]) for s in sets)}  # type: ignore[arg-type]
        print(f"{name}: {len(sets)} sets; median spread of connection means "
              f"{by_cc[name]['between_sd_median'] * 100:.1f} %, the values' noise predicts "
              f"{by_cc[name]['predicted_sd_median'] * 100:.1f} %")
    with open("/proc/loadavg") as fh:
        load = " ".join(fh.read().split()[:3])
    print(f"load average after: {load}")
    if args.output:
        args.output.write_text(json.dumps({"argv": sys.argv, "host_cc": host_cc,
                                           "sets": out, "by_cc": by_cc, "load": load},
                                          indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
