"""Does a copy's speed depend on where its destination lies against its source? And what
does that do to a send path that copies?

    python bench/bench_copy_alignment.py [--sizes 16K,128K] [--values 10] [-o FILE.json]
    nox -s perf -- copy_alignment [ARGS]

1. ``memcpy`` (libc's, through ctypes) of 1 KiB to 1 MiB from a page-aligned source into
   a destination at the same offset in its page, or 1 ... 48 bytes past it, or 16 bytes
   before it: the best of three timings of 300 copies each, in microseconds per copy.
2. The ``coalesce`` strategy on a loopback stream, one connection per size, through
   flushbench's own timed loop (``Session.run_value``) against a real peer: ``--values``
   pairs of 100 ms values in a random order per pair: one with the body copied to its
   source's offset in the page (as the strategy places its buffer) and one 16 bytes past
   it (where malloc may happen to put a buffer). Printed: shifted / in place throughput,
   the geometric mean over the pairs with its 95 % interval.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import mmap
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import load_line  # noqa: E402

from flushbench.case import Case, parse_size  # noqa: E402
from flushbench.measure.scratch import CopyScratch, address  # noqa: E402
from flushbench.measure.session import Session  # noqa: E402
from flushbench.measure.strategies import CoalesceStrategy  # noqa: E402
from flushbench.procs import PeerProcess  # noqa: E402

VALUE_S = 0.1
COPY_SIZES = [1024, 4096, 16384, 65536, 131072, 1 << 20]
OFFSETS = [0, 1, 4, 8, 16, 24, 28, 31, 32, 48, -16]  # dst - src, bytes


def memcpy_table() -> dict[int, dict[int, float]]:
    """Microseconds per memcpy of each size into each destination offset."""
    libc = ctypes.CDLL(None)
    libc.memcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    area = mmap.mmap(-1, 4 << 20)
    area.write(b"\1" * (4 << 20))  # touch every page before timing
    base = address(memoryview(area))
    assert base is not None
    table: dict[int, dict[int, float]] = {}
    for size in COPY_SIZES:
        row = table.setdefault(size, {})
        for off in OFFSETS:
            dst, best = base + (2 << 20) + off, math.inf  # the source: base
            for _ in range(3):
                t0 = time.perf_counter()
                for _ in range(300):
                    libc.memcpy(dst, base, size)
                best = min(best, (time.perf_counter() - t0) / 300)
            row[off] = best * 1e6
    area.close()
    return table


def coalesce_pairs(size: int, addr: tuple[str, int], ticket: bytes, values: int,
                   rng: random.Random) -> list[dict[str, float]]:
    """Pairs of values on one connection: the body copied to its source's page offset, and
    16 bytes past it."""
    case = Case("stream", "coalesce", size, ops=1 << 20)
    session = Session.connect(case, addr, 10.0, ticket)
    try:
        strategy = session.strategy
        assert isinstance(strategy, CoalesceStrategy)
        buffers = {"in place": CopyScratch(), "+16": CopyScratch(skew=16)}
        n = session.ops_for(1 << 30, VALUE_S)
        for scratch in buffers.values():  # warm-up, as a run does, with each buffer
            strategy.scratch = scratch
            session.run_value(n, record=False)
        pairs = []
        for _ in range(values):
            order = list(buffers)
            rng.shuffle(order)
            got = {}
            for kind in order:
                strategy.scratch = buffers[kind]
                ns = session.run_value(n)
                got[kind] = 8 * n * size / (ns / 1e9)
            pairs.append(got)
        return pairs
    finally:
        session.close()


def summarize(pairs: list[dict[str, float]]) -> dict[str, object]:
    logs = [math.log(p["+16"] / p["in place"]) for p in pairs]
    mean = statistics.fmean(logs)
    half = 1.96 * statistics.stdev(logs) / math.sqrt(len(logs)) if len(logs) > 1 else math.inf
    return {"ratio": math.exp(mean), "ci95": [math.exp(mean - half), math.exp(mean + half)],
            "in_place_gbit_s": statistics.median(p["in place"] for p in pairs) / 1e9,
            "shifted_gbit_s": statistics.median(p["+16"] for p in pairs) / 1e9}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="16K,128K", help="message sizes of the coalesce stream")
    p.add_argument("--values", type=int, default=10, help="pairs of values per size")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("-o", "--output", type=Path)
    args = p.parse_args()
    try:
        sizes = [parse_size(s) for s in args.sizes.split(",")]
    except ValueError as exc:
        p.error(f"--sizes: {exc}")
    if not 1 <= args.values <= 100:
        p.error("--values 1..100")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    before, start = load_line(), time.perf_counter()
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    table = memcpy_table()
    print("memcpy, microseconds per copy, by where the destination lies against the source "
          "(bytes, in the page)")
    print("size     " + "".join(f"{o:>+8d}" for o in OFFSETS))
    for size, row in table.items():
        print(f"{size:<9d}" + "".join(f"{row[o]:8.1f}" for o in OFFSETS))
    streams = {}
    with PeerProcess("127.0.0.1", cpu=cpus[0]) as peer:
        for size in sizes:
            pairs = coalesce_pairs(size, peer.addr, peer.ticket, args.values, rng)
            streams[size] = {"summary": summarize(pairs), "pairs": pairs}
            s = streams[size]["summary"]
            print(f"coalesce stream {size} B: body copied 16 bytes past its source's page "
                  f"offset / at it = {s['ratio']:.3f} [{s['ci95'][0]:.3f}-{s['ci95'][1]:.3f}] "
                  f"over {len(pairs)} pairs (medians {s['shifted_gbit_s']:.1f} and "
                  f"{s['in_place_gbit_s']:.1f} Gbit/s)")
    after = load_line()
    print(f"{before}; after: {after}; {time.perf_counter() - start:.0f} s; seed {seed}")
    if args.output:
        args.output.write_text(json.dumps({
            "argv": sys.argv, "seed": seed, "before": before, "after": after,
            "memcpy_us": {str(k): {str(o): v for o, v in row.items()} for k, row in table.items()},
            "streams": {str(k): v for k, v in streams.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
