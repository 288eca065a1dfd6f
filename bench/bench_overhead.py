"""What the client's timed loop adds to each operation: the instrumentation overhead (pyperf).

    python bench/bench_overhead.py -o overhead.json [--fast]    # any pyperf Runner option
    python -m pyperf show overhead.json                         # the stored benchmarks

One pyperf benchmark per measured thing, each in ns per operation:

* ``timed-loop``: the real timed loop, :class:`flushbench.measure.loops.SyncLoop` running
  stream values of a 64-byte message in two parts with the real ``SendallStrategy``, over a
  stand-in socket whose ``sendall`` is a C no-op (``len``); so each operation costs calls,
  not a syscall. The loop is what a stream value times: the ``for`` loop, the strategy's
  call counter and a ``perf_counter_ns()`` stamp stored into a preallocated ``array('q')``.
* ``op-bare``: the same ``send_message`` without the call counter (a ``SendallStrategy``
  subclass), unrolled 10 times per iteration so that the loop's own cost is a tenth.
* ``op-counted``: the real ``SendallStrategy.send_message``, unrolled the same way.
* ``loop-empty`` and ``loop-stamp``: the bare ``for`` loop, and the loop with the stamp.
* ``post-value-copy``: not timed by flushbench: the per-operation latency copy a session
  makes after each recorded value (the loop of ``Session``'s accounting, written out here).

The headline is ``timed-loop - op-bare``, against a 1 µs target; printed after the last
benchmark, from pyperf's medians.
"""

from __future__ import annotations

import socket
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

from flushbench.case import Case
from flushbench.measure import protocol
from flushbench.measure.loops import SyncLoop, make_parts
from flushbench.measure.strategies import Buffer, SendallStrategy

TARGET_NS = 1000.0  # the instrumentation may add at most 1 µs per operation
UNROLL = 10  # bare operations per loop iteration: the loop's own cost divided by 10
# nodelay: a value's end pushes nothing (no setsockopt on the stand-in socket)
CASE = Case("stream", "sendall", 64, parts=2, nodelay=True)
OP_CAP = CASE.op_count  # ops per value of a stream case: the stamp array's size
PARTS = make_parts(CASE)
DONE = protocol.DONE.pack(0, 0)  # the peer's confirmation; its figures are not checked here

TimeFunc = Callable[[int], float]


class NullSocket:
    """Stands in for the data connection: every call succeeds at once, nothing is sent.

    ``sendall`` is a builtin (no Python frame per call); the once-per-value calls answer as
    the peer does: READY to GO, then the DONE message.
    """

    sendall = len

    def recv(self, n: int) -> bytes:
        return protocol.READY

    def recv_into(self, view: memoryview) -> int:
        view[: len(DONE)] = DONE
        return len(DONE)


def _null_socket() -> socket.socket:
    return NullSocket()  # type: ignore[return-value]  # duck-typed: only these calls happen


class UncountedSendall(SendallStrategy):
    """``SendallStrategy`` without its call counter: the bare operation."""

    def send_message(self, parts: Sequence[Buffer]) -> None:
        sendall = self.sock.sendall
        for part in parts:
            sendall(part)


def chunks(loops: int) -> list[int]:
    """Split ``loops`` into values of at most OP_CAP ops, as the suite's stream values are."""
    full, rest = divmod(loops, OP_CAP)
    return [OP_CAP] * full + ([rest] if rest else [])


def loop_empty(loops: int) -> float:
    """The bare ``for i in range(n)`` of the timed loop."""
    pc, total = time.perf_counter_ns, 0
    for n in chunks(loops):
        t0 = pc()
        for _i in range(n):
            pass
        total += pc() - t0
    return total / 1e9


def loop_stamp(loops: int) -> float:
    """The loop plus ``ts[i] = perf_counter_ns()`` into a preallocated array('q')."""
    pc, total, ts = time.perf_counter_ns, 0, array("q", bytes(8 * OP_CAP))
    for n in chunks(loops):
        t0 = pc()
        for i in range(n):
            ts[i] = pc()
        total += pc() - t0
    return total / 1e9


def unrolled(strategy: SendallStrategy) -> TimeFunc:
    """``send_message`` UNROLL times per iteration (pyperf divides by loops * UNROLL)."""
    def time_func(loops: int) -> float:
        send, parts, pc, total = strategy.send_message, PARTS, time.perf_counter_ns, 0
        for n in chunks(loops):
            t0 = pc()
            for _ in range(n):
                send(parts); send(parts); send(parts); send(parts); send(parts)  # noqa: E702
                send(parts); send(parts); send(parts); send(parts); send(parts)  # noqa: E702
            total += pc() - t0
        return total / 1e9
    return time_func


def timed_loop(strategy: SendallStrategy) -> TimeFunc:
    """flushbench's own stream loop (``SyncLoop.run``): the elapsed time it reports."""
    ts = array("q", bytes(8 * OP_CAP))
    loop = SyncLoop(strategy.sock, CASE, strategy, PARTS, ts, None)

    def time_func(loops: int) -> float:
        return sum(loop.run(n).elapsed_ns for n in chunks(loops)) / 1e9
    return time_func


def loop_post_value(loops: int) -> float:
    """Not timed by flushbench: the per-op latency copy after each recorded value."""
    pc, total, ts = time.perf_counter_ns, 0, array("q", range(OP_CAP))
    for n in chunks(loops):
        lat: array[int] = array("q")
        t0 = pc()
        prev = 0
        for i in range(n):
            lat.append(ts[i] - prev)
            prev = ts[i]
        total += pc() - t0
    return total / 1e9


def overhead_benchmarks() -> list[tuple[str, TimeFunc, int]]:
    """(pyperf name, time_func(loops) -> seconds, inner_loops), one per measured thing."""
    counted = SendallStrategy(_null_socket())
    bare = UncountedSendall(_null_socket())
    looped = SendallStrategy(_null_socket())
    return [("loop-empty", loop_empty, 1), ("loop-stamp", loop_stamp, 1),
            ("op-bare", unrolled(bare), UNROLL), ("op-counted", unrolled(counted), UNROLL),
            ("timed-loop", timed_loop(looped), 1), ("post-value-copy", loop_post_value, 1)]


def overhead_figures(per_op_s: dict[str, float]) -> dict[str, float]:
    """Nanoseconds per operation: the headline and its parts, from per-op seconds."""
    ns = {k: v * 1e9 for k, v in per_op_s.items()}
    return {"overhead": ns["timed-loop"] - ns["op-bare"], "bare": ns["op-bare"],
            "timed": ns["timed-loop"], "loop": ns["loop-empty"],
            "stamp": ns["loop-stamp"] - ns["loop-empty"],
            "counter": ns["op-counted"] - ns["op-bare"], "post_copy": ns["post-value-copy"]}


def instrumentation_overhead_ns(ops: int = OP_CAP, repeat: int = 7) -> float:
    """Per-operation overhead of the timed loop in ns, without pyperf (min of ``repeat``)."""
    benches = {name: (func, inner) for name, func, inner in overhead_benchmarks()}
    best: dict[str, float] = {}
    for _ in range(repeat):  # interleaved, so a slow moment hits both sides
        for name in ("op-bare", "timed-loop"):
            func, inner = benches[name]
            per_op = func(ops) / (ops * inner)
            best[name] = min(best.get(name, per_op), per_op)
    return (best["timed-loop"] - best["op-bare"]) * 1e9


def format_overhead(fig: dict[str, float]) -> list[str]:
    verdict = "within" if fig["overhead"] <= TARGET_NS else "OVER"
    return [f"instrumentation overhead: {fig['overhead']:.1f} ns per operation "
            f"({verdict} the {TARGET_NS:.0f} ns target)",
            f"  timed loop {fig['timed']:.1f} ns/op - bare operation {fig['bare']:.1f} ns/op "
            f"(SendallStrategy.send_message of 2 parts over a no-op socket)",
            f"  parts: loop {fig['loop']:.1f} ns, perf_counter_ns stamp + store "
            f"{fig['stamp']:.1f} ns, call counter {fig['counter']:.1f} ns",
            f"  not timed: latency copy after each value {fig['post_copy']:.1f} ns/op",
            f"  clock: perf_counter {time.get_clock_info('perf_counter').implementation}, "
            f"clocksource {clocksource()}"]


def clocksource() -> str:
    path = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
    try:
        return path.read_text().strip()
    except OSError:
        return "unknown"


def main() -> int:
    import pyperf

    runner = pyperf.Runner()
    runner.argparser.description = __doc__.split("\n")[0]
    runner.metadata["description"] = "flushbench timed-loop instrumentation overhead"
    medians: dict[str, float] = {}
    means: dict[str, float] = {}
    benchmarks = overhead_benchmarks()
    for name, func, inner in benchmarks:
        bench = runner.bench_time_func(name, func, inner_loops=inner)
        if bench is not None and not runner.args.worker:  # a worker's run may be calibration
            medians[name], means[name] = bench.median(), bench.mean()
    if len(medians) == len(benchmarks):
        lines = format_overhead(overhead_figures(medians))
        lines[0] += f"; from pyperf medians (means: {overhead_figures(means)['overhead']:.1f} ns)"
        print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
