"""What does flushbench's timed loop cost a stream, against a plain loop on the same socket?

    python bench/bench_harness_loop.py [--size 128K] [--conns 12] [--values 10] [-o FILE.json]
    nox -s perf -- harness_loop [ARGS]

One peer (pinned to the first CPU, as ``flushbench run`` pins it), this process on the last.
On each of ``--conns`` connections of the case ``stream-sendmsg-s<SIZE>-p2-…``, ``--values``
pairs of 100 ms values in a random order per pair: one through the harness
(``Session.run_value``: the strategy object, a timestamp per message, the accounting) and
one plain loop (``sock.sendmsg(parts)`` n times) speaking the same GO / READY / DONE framing
to the same peer. Both end when the peer has confirmed every byte. Printed: the geometric
mean of harness / plain over the pairs with its 95 % interval, so the harness's own cost is
measured on one connection and one peer, free of what differs between connections.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import load_line  # noqa: E402

from flushbench.case import Case, parse_size  # noqa: E402
from flushbench.measure import protocol, sockopts  # noqa: E402
from flushbench.measure.loops import make_parts  # noqa: E402
from flushbench.measure.session import Session  # noqa: E402
from flushbench.procs import PeerProcess  # noqa: E402

VALUE_S = 0.1


def plain_value(session: Session, parts: list[bytes], n: int) -> int:
    """n messages with a bare sendmsg loop, framed as the harness frames a value; ns."""
    sock = session.sock
    sock.sendall(protocol.pack_go(n))
    protocol.check_ready(sock.recv(1))
    sendmsg = sock.sendmsg
    t0 = time.perf_counter_ns()
    for _ in range(n):  # bounded: n messages
        sendmsg(parts)  # a blocking socket: the whole message or an error
    sockopts.set_nodelay(sock, True)  # push the tail, as the harness's push_tail does
    sockopts.set_nodelay(sock, False)
    protocol.recv_exact(sock, protocol.DONE.size)
    return time.perf_counter_ns() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=parse_size, default=131072)
    p.add_argument("--conns", type=int, default=12)
    p.add_argument("--values", type=int, default=10, help="pairs of values per connection")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("-o", "--output", type=Path)
    args = p.parse_args()
    if not (1 <= args.conns <= 100 and 1 <= args.values <= 100):
        p.error("--conns 1..100, --values 1..100")
    cpus = sorted(os.sched_getaffinity(0))
    case = Case("stream", "sendmsg", args.size, ops=1 << 20)
    parts = make_parts(case)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    before, start = load_line(), time.perf_counter()
    pairs: list[dict[str, float]] = []
    with PeerProcess("127.0.0.1", cpu=cpus[0]) as peer:
        os.sched_setaffinity(0, {cpus[-1]})
        for conn in range(args.conns):
            session = Session.connect(case, peer.addr, 10.0, peer.ticket)
            try:
                n = session.ops_for(1 << 30, VALUE_S)
                session.run_value(n, record=False)  # warm-up, as a run does
                for _ in range(args.values):
                    order = ["harness", "plain"]
                    rng.shuffle(order)
                    got = {}
                    for kind in order:
                        ns = session.run_value(n) if kind == "harness" \
                            else plain_value(session, parts, n)
                        got[kind] = 8 * n * case.msg_size / (ns / 1e9)
                    pairs.append({"conn": conn, **got})
            finally:
                session.close()
    logs = [math.log(r["harness"] / r["plain"]) for r in pairs]
    mean, half = statistics.fmean(logs), 1.96 * statistics.stdev(logs) / math.sqrt(len(logs))
    summary = {"ratio": math.exp(mean), "ci95": [math.exp(mean - half), math.exp(mean + half)],
               "pairs": len(pairs),
               "harness_gbit_s": statistics.median(r["harness"] for r in pairs) / 1e9,
               "plain_gbit_s": statistics.median(r["plain"] for r in pairs) / 1e9}
    after = load_line()
    print(f"{case.id}: harness / plain loop on the same connection = {summary['ratio']:.3f} "
          f"[{summary['ci95'][0]:.3f}-{summary['ci95'][1]:.3f}] over {len(pairs)} pairs of "
          f"{VALUE_S * 1000:g} ms values (medians {summary['harness_gbit_s']:.1f} and "
          f"{summary['plain_gbit_s']:.1f} Gbit/s)")
    print(f"{before}; after: {after}; {time.perf_counter() - start:.0f} s; seed {seed}")
    if args.output:
        args.output.write_text(json.dumps({"argv": sys.argv, "seed": seed, "case": case.id,
                                           "before": before, "after": after,
                                           "summary": summary, "pairs": pairs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
