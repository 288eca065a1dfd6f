"""Drivers: how one client process drives N connections at once.

    threads    one thread per connection, the case's blocking strategy on each socket
    selectors  one thread, non-blocking sockets through selectors.DefaultSelector (epoll):
               a user-space buffer per connection, written when the socket is writable
    asyncio    the default event loop: StreamWriter.write / writelines, then drain()
    uvloop     the same code on uvloop's loop (optional: pip install 'flushbench[loops]')
    trio       trio.SocketStream.send_all (optional: pip install 'flushbench[loops]')

A driver owns its connections' data phase for one timed value. Before the clock starts it
sends GO on every connection and reads every READY; then it starts the clock (``t0``) and
does the work on all connections at once: a stream sends ``n`` messages and ends when that
connection's DONE arrives (the peer has every byte); an rr connection does ``n`` closed-loop
request/responses, stamping each reply, then reads DONE. It returns ``t0`` and, per
connection, when its work ended, its DONE frame and (rr) the stamp of each operation.

The implementations are imported only when a driver is opened (asyncio, uvloop and trio cost
tens of ms to import: not on the path of a single-connection case).
"""

from __future__ import annotations

import importlib.util
import socket
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ...case import DRIVER_WORKLOADS as WORKLOADS
from ...case import DRIVERS

OPTIONAL = {"uvloop": "uvloop", "trio": "trio"}  # driver -> the module it needs
EXTRA_HINT = "pip install 'flushbench[loops]'"
# What each event-loop driver can do with a message's parts; threads take every blocking
# strategy (measure/strategies.py). "sendall": each part written in order as it comes;
# "coalesce": the parts joined, one write per message; "asyncio": writelines + drain.
LOOP_STRATEGIES = {"selectors": ("sendall", "coalesce"),
                   "asyncio": ("asyncio", "sendall", "coalesce"),
                   "uvloop": ("asyncio", "sendall", "coalesce"),
                   "trio": ("sendall", "coalesce")}


@dataclass(frozen=True)
class Work:
    """What every connection does in a value (the case, as the drivers need it)."""

    workload: str  # "stream" or "rr"
    strategy: str
    parts: Sequence[bytes]
    reply_size: int = 0  # rr: bytes of each reply
    nodelay: bool = False
    buffer: int = 0  # makefile's buffer (threads)
    io_timeout: float = 30.0  # no progress for this long: the value fails


@dataclass
class ConnResult:
    """One connection's part of a value."""

    end_ns: int  # perf_counter_ns when its work ended (stream: DONE read; rr: last reply)
    done: bytes  # the peer's DONE frame
    stamps: array[int] = field(default_factory=lambda: array("q"))  # rr: each reply's time


def chunks(strategy: str, parts: Sequence[bytes]) -> Sequence[bytes]:
    """What an event-loop driver writes for one message: the parts joined ("coalesce"),
    or each part as it comes."""
    return (b"".join(parts),) if strategy == "coalesce" else parts


class Driver(Protocol):
    cpu_at_t0: int  # time.process_time_ns() when the last value's clock started
    def run(self, n: int) -> tuple[int, list[ConnResult]]:
        """One value of ``n`` operations per connection: t0 and each connection's result."""
        ...

    def close(self) -> None:
        """Say BYE on every connection and close them."""
        ...


def unavailable(driver: str) -> str | None:
    """Why ``driver`` cannot run here, or None."""
    if driver not in DRIVERS:
        return f"unknown driver {driver!r}; expected one of {', '.join(DRIVERS)}"
    module = OPTIONAL.get(driver)
    if module and importlib.util.find_spec(module) is None:
        return f"unavailable: {module} is not installed ({EXTRA_HINT})"
    return None


def misfit(driver: str, strategy: str, workload: str, is_async: bool) -> str | None:
    """Why ``driver`` cannot drive ``strategy`` on ``workload``, or None.

    ``is_async``: the strategy is an asyncio one (it needs an event loop of its own).
    """
    if workload not in WORKLOADS:
        return f"the {driver} driver runs {' and '.join(WORKLOADS)} workloads, not {workload}"
    if driver == "threads":
        if is_async:
            return (f"strategy {strategy} runs on an event loop, not on a blocking socket per "
                    "thread: use driver asyncio or uvloop")
        return None
    fits = LOOP_STRATEGIES.get(driver, ())
    if strategy not in fits:
        return (f"driver {driver} writes with {', '.join(fits)} only (its own write path); "
                f"strategy {strategy} needs blocking sockets: use driver threads")
    return None


def open_driver(driver: str, conns: Sequence[socket.socket], work: Work) -> Driver:
    """Start ``driver`` on connected sockets (the caller keeps them until ``close``)."""
    if driver == "threads":
        from .threaded import ThreadsDriver

        return ThreadsDriver(conns, work)
    if driver == "selectors":
        from .selector import SelectorsDriver

        return SelectorsDriver(conns, work)
    if driver in ("asyncio", "uvloop"):
        from .aio import AsyncioDriver

        return AsyncioDriver(conns, work, uvloop=driver == "uvloop")
    if driver == "trio":
        from .trio_driver import TrioDriver

        return TrioDriver(conns, work)
    raise ValueError(unavailable(driver) or f"unknown driver {driver!r}")
