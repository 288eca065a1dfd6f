"""The threads driver: one thread per connection, the case's blocking strategy on each."""

from __future__ import annotations

import socket
import threading
import time
from array import array
from collections.abc import Sequence

from .. import protocol, strategies
from ..strategies import Strategy
from . import ConnResult, Work
from .common import bye_all, go_all, push_tail

perf_counter_ns = time.perf_counter_ns


class ThreadsDriver:
    """Threads are made before each value's clock starts and all released at once."""

    def __init__(self, socks: Sequence[socket.socket], work: Work) -> None:
        self.socks, self.work = list(socks), work
        cls = strategies.get(work.strategy)
        made = [cls(sock, work.buffer) for sock in self.socks]
        self.strats: list[Strategy] = [s for s in made if isinstance(s, Strategy)]
        if len(self.strats) != len(made):
            raise ValueError(f"strategy {work.strategy} is not a blocking strategy")

    def run(self, n: int) -> tuple[int, list[ConnResult]]:
        go_all(self.socks, n)
        start = threading.Event()
        results: list[ConnResult | None] = [None] * len(self.socks)
        errors: list[BaseException] = []

        def one(i: int) -> None:
            start.wait()
            try:
                results[i] = self._one(i, n)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(i,), daemon=True)
                   for i in range(len(self.socks))]
        for thread in threads:
            thread.start()
        self.cpu_at_t0 = time.process_time_ns()  # the client's CPU from the clock's start
        t0 = perf_counter_ns()
        start.set()
        # each blocking call is bounded by the sockets' kernel timeouts (io_timeout)
        deadline = time.monotonic() + self.work.io_timeout * 4 + 10
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise TimeoutError("a connection's thread made no progress "
                                   f"within {self.work.io_timeout * 4 + 10:.0f} s")
        if errors:
            raise errors[0]
        return t0, [r for r in results if r is not None]

    def _one(self, i: int, n: int) -> ConnResult:
        sock, work, send = self.socks[i], self.work, self.strats[i].send_message
        parts, pc = work.parts, perf_counter_ns
        if work.workload == "stream":
            for _ in range(n):
                send(parts)
            push_tail(sock, work.nodelay)
            done = protocol.recv_exact(sock, protocol.DONE.size)
            return ConnResult(pc(), done)
        stamps = array("q", bytes(8 * n))
        reply = memoryview(bytearray(work.reply_size))
        for k in range(n):
            send(parts)
            protocol.recv_into_exact(sock, reply)
            stamps[k] = pc()
        end = stamps[n - 1] if n else pc()
        return ConnResult(end, protocol.recv_exact(sock, protocol.DONE.size), stamps)

    def close(self) -> None:
        try:
            for strat in self.strats:
                strat.close()
        finally:
            bye_all(self.socks)
