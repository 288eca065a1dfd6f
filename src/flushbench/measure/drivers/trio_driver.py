"""The trio driver: trio.SocketStream.send_all, one task per connection in a nursery.

Each value is one ``trio.run``: the connections are wrapped in trio sockets and streams
for it (before the clock starts), and are blocking again afterwards.
"""

from __future__ import annotations

import socket
import time
from array import array
from collections.abc import Sequence

import trio

from .. import protocol, sockopts
from . import ConnResult, Work, chunks
from .common import bye_all, push_tail

perf_counter_ns = time.perf_counter_ns


async def _receive_exactly(stream: trio.SocketStream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:  # bounded: each pass gets >= 1 byte or raises
        chunk = await stream.receive_some(n - len(buf))
        if not chunk:
            raise protocol.Closed(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


class TrioDriver:
    def __init__(self, socks: Sequence[socket.socket], work: Work) -> None:
        self.socks, self.work = list(socks), work

    def run(self, n: int) -> tuple[int, list[ConnResult]]:
        try:
            return trio.run(self._value, n)
        finally:
            for sock in self.socks:
                if sock.fileno() >= 0:
                    sock.setblocking(True)  # the kernel timeouts bound each call again

    async def _value(self, n: int) -> tuple[int, list[ConnResult]]:
        streams = [trio.SocketStream(trio.socket.from_stdlib_socket(s)) for s in self.socks]
        for sock in self.socks:  # SocketStream turns TCP_NODELAY on: the case decides
            sockopts.set_nodelay(sock, self.work.nodelay)
        go = protocol.pack_go(n)
        results: list[ConnResult | None] = [None] * len(streams)
        with trio.fail_after(self.work.io_timeout * 4 + 10):
            for stream in streams:
                await stream.send_all(go)
            for stream in streams:
                protocol.check_ready(await _receive_exactly(stream, 1))
            self.cpu_at_t0 = time.process_time_ns()  # the client's CPU from the clock's start
            t0 = perf_counter_ns()
            async with trio.open_nursery() as nursery:
                for i, stream in enumerate(streams):
                    nursery.start_soon(self._one, i, stream, n, results)
        return t0, [r for r in results if r is not None]

    async def _one(self, i: int, stream: trio.SocketStream, n: int,
                   results: list[ConnResult | None]) -> None:
        work, pc = self.work, perf_counter_ns
        if work.workload == "stream":
            for _ in range(n):
                for chunk in chunks(work.strategy, work.parts):
                    await stream.send_all(chunk)
            push_tail(self.socks[i], work.nodelay)
            done = await _receive_exactly(stream, protocol.DONE.size)
            results[i] = ConnResult(pc(), done)
            return
        stamps = array("q", bytes(8 * n))
        for k in range(n):
            for chunk in chunks(work.strategy, work.parts):
                await stream.send_all(chunk)
            await _receive_exactly(stream, work.reply_size)
            stamps[k] = pc()
        done = await _receive_exactly(stream, protocol.DONE.size)
        results[i] = ConnResult(stamps[n - 1], done, stamps)

    def close(self) -> None:
        bye_all(self.socks)
