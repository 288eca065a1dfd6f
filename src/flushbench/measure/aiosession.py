"""The asyncio twin of :class:`.loops.SyncLoop`, imported only when an asyncio strategy runs
(importing asyncio costs ~20 ms per worker start)."""

from __future__ import annotations

import asyncio
import socket
import time
from array import array
from collections.abc import Awaitable
from typing import Any, BinaryIO

from ..case import ONE_WAY_WORKLOADS, Case
from . import protocol
from .loops import Timed, push_tail
from .strategies import AsyncStrategy

perf_counter_ns = time.perf_counter_ns
CLOSE_TIMEOUT = 5.0  # seconds to say BYE to a peer that may be gone
TLS_HANDSHAKE_TIMEOUT = 5.0  # seconds (asyncio's default is 60)


class AsyncLoop:
    """Timed values for an asyncio strategy, on an event loop of its own."""

    def __init__(self, sock: socket.socket, case: Case, strategy: AsyncStrategy,
                 parts: list[bytes], ts: array[int], file: BinaryIO | None,
                 io_timeout: float, tls: tuple[Any, str] | None = None) -> None:
        self.sock, self.case, self.strategy = sock, case, strategy
        self.parts, self.ts, self.file, self.io_timeout = parts, ts, file, io_timeout
        self.loop = asyncio.new_event_loop()
        try:
            start = perf_counter_ns()
            self.loop.run_until_complete(strategy.open() if tls is None else _open_tls(
                strategy, *tls))
            self.open_ns = perf_counter_ns() - start
        except BaseException:
            self.loop.close()
            raise

    def ssl_object(self) -> Any:
        """The stream's ssl.SSLObject (TLS cases), or None."""
        writer = self.strategy.writer
        return writer.get_extra_info("ssl_object") if writer is not None else None

    def run(self, n: int, est_op_s: float = 0.0) -> Timed:
        """One value; asyncio made the socket non-blocking, so kernel timeouts no longer
        bound it: the whole value gets a deadline instead."""
        limit = self.io_timeout + 10 * n * max(est_op_s, 1e-6)
        return self.loop.run_until_complete(self._bounded(self._value(n), limit))

    @staticmethod
    async def _bounded(value: Awaitable[Timed], limit: float) -> Timed:
        try:
            return await asyncio.wait_for(value, limit)
        except asyncio.TimeoutError:  # not TimeoutError itself before Python 3.11
            raise TimeoutError(f"asyncio value made no progress within {limit:.1f} s") from None

    async def _value(self, n: int) -> Timed:
        case, ts, strat = self.case, self.ts, self.strategy
        reader, writer = strat.streams
        send, parts = strat.send_message, self.parts
        pc = perf_counter_ns
        go = pc()
        writer.write(protocol.pack_go(n))
        await writer.drain()
        protocol.check_ready(await reader.read(1))
        cpu0 = time.thread_time_ns()
        t0 = pc()
        if case.workload in ONE_WAY_WORKLOADS:
            for i in range(n):
                if self.file is not None:
                    await strat.send_file(self.file, case.msg_size)
                else:
                    await send(parts)
                ts[i] = pc()
            await flush_transport(writer)
            push_tail(self.sock, case)
            done = await reader.readexactly(protocol.DONE.size)
            t1 = pc()
        else:
            want, readexactly = case.reply_size, reader.readexactly
            for i in range(n):
                for _ in range(case.batch):
                    await send(parts)
                await readexactly(want)
                ts[i] = pc()
            t1 = pc()
            done = await reader.readexactly(protocol.DONE.size)
        return Timed(t0, t1 - t0, time.thread_time_ns() - cpu0, done, t0 - go)

    def close(self) -> None:
        """Say BYE and close the stream, bounded (the peer may be gone); close the loop."""
        try:
            writer = self.strategy.writer
            if writer is not None:
                writer.write(protocol.BYE)
                writer.close()
                self.loop.run_until_complete(_quiet(asyncio.wait_for(writer.wait_closed(),
                                                                     CLOSE_TIMEOUT)))
        finally:
            self.loop.close()


async def _open_tls(strategy: AsyncStrategy, ctx: Any, host: str) -> None:
    """A TLS case: asyncio's own TLS (its memory BIO) over the connected socket, in place of
    the strategy's open(); the handshake is timed as the open (``open_ns``), not a value."""
    strategy.reader, strategy.writer = await asyncio.open_connection(
        sock=strategy.sock, ssl=ctx, server_hostname=host,
        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)


async def _quiet(coro: Awaitable[object]) -> None:
    try:
        await coro
    except (OSError, ConnectionError, asyncio.TimeoutError):
        pass


async def flush_transport(writer: asyncio.StreamWriter) -> None:
    """Wait until asyncio's own buffer is empty: drain() returns at the high-water mark."""
    transport = writer.transport
    if transport.get_write_buffer_size():
        low, high = transport.get_write_buffer_limits()
        transport.set_write_buffer_limits(high=0)
        try:
            await writer.drain()
        finally:
            transport.set_write_buffer_limits(high=high, low=low)
