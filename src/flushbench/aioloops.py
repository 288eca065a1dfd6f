"""The asyncio side of the client loops, imported only when an asyncio strategy runs."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from . import wire

if TYPE_CHECKING:
    from .strategies import Strategy
    from .workloads import Session

perf_counter_ns = time.perf_counter_ns


def new_loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


def close(loop: asyncio.AbstractEventLoop, strategy: Strategy) -> None:
    """Say BYE and close the stream, bounded: the peer may be gone."""
    writer = strategy.writer  # type: ignore[attr-defined]
    if writer is not None:
        writer.write(wire.BYE)
        writer.close()
        loop.run_until_complete(quiet(asyncio.wait_for(writer.wait_closed(), 5)))


async def bounded(session: Session, n: int) -> tuple[int, int, bytes]:
    """One value; asyncio made the socket non-blocking, so kernel timeouts no longer bound it."""
    limit = session.io_timeout + 10 * n * max(session.est_op_s, 1e-6)
    try:
        return await asyncio.wait_for(value(session, n), limit)
    except asyncio.TimeoutError:  # not TimeoutError itself before Python 3.11
        raise TimeoutError(f"asyncio value made no progress within {limit:.1f} s") from None


async def value(self: Session, n: int) -> tuple[int, int, bytes]:
    """The asyncio twin of Session._sync_value (same protocol, same stamps)."""
    case, ts = self.case, self.ts
    strat = self.strategy
    reader, writer = strat.reader, strat.writer  # type: ignore[attr-defined]
    send, parts = strat.send_message, self.parts
    writer.write(wire.pack_go(n))
    await writer.drain()
    wire.check_ready(await reader.read(1))
    pc = perf_counter_ns
    cpu0 = time.thread_time_ns()
    t0 = self._t0 = pc()
    if case.workload in ("stream", "file"):
        for i in range(n):
            if case.workload == "file":
                await strat.send_file(self.file, case.msg_size)  # type: ignore[misc]
            else:
                await send(parts)
            ts[i] = pc()
        await flush_transport(writer)
        self._push_tail()
        done = await reader.readexactly(wire.DONE.size)
        t1 = pc()
    else:
        want, readexactly = len(self.reply), reader.readexactly
        for i in range(n):
            for _ in range(case.batch):
                await send(parts)
            await readexactly(want)
            ts[i] = pc()
        t1 = pc()
        done = await reader.readexactly(wire.DONE.size)
    return t1 - t0, time.thread_time_ns() - cpu0, done


async def quiet(coro: Any) -> None:
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
