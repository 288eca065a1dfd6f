"""The asyncio and uvloop drivers: StreamWriter.write / writelines, then drain().

One event loop (asyncio's default, or uvloop's) holds every connection's streams for the
whole case; each value gathers one task per connection.
"""

from __future__ import annotations

import asyncio
import socket
import time
from array import array
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from .. import protocol, sockopts
from ..aiosession import flush_transport
from . import ConnResult, Work, chunks
from .common import push_tail

perf_counter_ns = time.perf_counter_ns
T = TypeVar("T")
CLOSE_TIMEOUT = 5.0  # seconds to say BYE to peers that may be gone


class AsyncioDriver:
    def __init__(self, socks: Sequence[socket.socket], work: Work, uvloop: bool = False
                 ) -> None:
        self.socks, self.work = list(socks), work
        if uvloop:
            import uvloop as uv

            self.loop: asyncio.AbstractEventLoop = uv.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        try:
            self.streams = self.loop.run_until_complete(self._open())
        except BaseException:
            self.loop.close()
            raise
        for sock in self.socks:  # asyncio turns TCP_NODELAY on: the case decides
            sockopts.set_nodelay(sock, work.nodelay)

    async def _open(self) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        return [await asyncio.open_connection(sock=sock) for sock in self.socks]

    def _bounded(self, coro: Awaitable[T], limit: float) -> T:
        async def bounded() -> T:
            try:
                return await asyncio.wait_for(coro, limit)
            except asyncio.TimeoutError:  # not TimeoutError itself before Python 3.11
                raise TimeoutError(f"no progress within {limit:.0f} s (asyncio driver)"
                                   ) from None

        return self.loop.run_until_complete(bounded())

    def run(self, n: int) -> tuple[int, list[ConnResult]]:
        return self._bounded(self._value(n), self.work.io_timeout * 4 + 10)

    async def _value(self, n: int) -> tuple[int, list[ConnResult]]:
        go = protocol.pack_go(n)
        for _, writer in self.streams:
            writer.write(go)
        for _, writer in self.streams:
            await writer.drain()
        for reader, _ in self.streams:
            protocol.check_ready(await reader.read(1))
        self.cpu_at_t0 = time.process_time_ns()  # the client's CPU from the clock's start
        t0 = perf_counter_ns()
        results = await asyncio.gather(*(self._one(i, n) for i in range(len(self.streams))))
        return t0, list(results)

    async def _one(self, i: int, n: int) -> ConnResult:
        reader, writer = self.streams[i]
        work, pc = self.work, perf_counter_ns

        def write(parts: Sequence[bytes]) -> None:
            if work.strategy == "asyncio":
                writer.writelines(parts)
            else:  # "sendall": a write per part; "coalesce": one joined write
                for chunk in chunks(work.strategy, parts):
                    writer.write(chunk)

        if work.workload == "stream":
            for _ in range(n):
                write(work.parts)
                await writer.drain()
            await flush_transport(writer)
            push_tail(self.socks[i], work.nodelay)
            done = await reader.readexactly(protocol.DONE.size)
            return ConnResult(pc(), done)
        stamps = array("q", bytes(8 * n))
        for k in range(n):
            write(work.parts)
            await writer.drain()
            await reader.readexactly(work.reply_size)
            stamps[k] = pc()
        done = await reader.readexactly(protocol.DONE.size)
        return ConnResult(stamps[n - 1], done, stamps)

    def close(self) -> None:
        async def bye() -> None:
            for _, writer in self.streams:
                if not writer.is_closing():
                    writer.write(protocol.BYE)
                    writer.close()
            for _, writer in self.streams:
                try:
                    await writer.wait_closed()
                except OSError:
                    pass

        try:
            self._bounded(bye(), CLOSE_TIMEOUT)
        except (OSError, TimeoutError):
            pass
        finally:
            self.loop.close()
            for sock in self.socks:
                sock.close()
