"""Conformance checks for send strategies, like ``trio.testing``'s (standard library only).

    from flushbench.testing import check_strategy
    check_strategy(MyStrategy)  # returns None, or raises AssertionError saying what is wrong
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import itertools
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, NamedTuple

from .case import Case
from .errors import SetupError
from .measure import strategies, unixsock
from .measure.aiosession import flush_transport
from .measure.loops import make_parts
from .measure.strategies import AsyncStrategy, Buffer, Strategy

__all__ = ["DEFAULT_TIMEOUT", "TRANSPORTS", "NotApplicable", "StrategyUnavailable",
           "check_session", "check_strategy", "deliver", "interrupting_timer", "messages",
           "socket_pair"]

DEFAULT_TIMEOUT = 30.0  # seconds, for one whole run (one strategy, transport and buffer)
TRANSPORTS = ("socketpair", "unix", "tcp")
SHAPES = ((64, 1), (64, 2), (1000, 5), (67, 64), (70_000, 2), (300_000, 3), (5, 2))
FILE_SIZE = 200_003  # three 64 KiB chunks and a bit
QUIET = 2.0  # seconds without progress after which bytes are taken as held back
StrategyClass = type[Strategy] | type[AsyncStrategy]


class StrategyUnavailable(SetupError):
    """The strategy cannot run on this platform (its ``unavailable()`` gave this reason)."""


class NotApplicable(Exception):
    """The strategy cannot run on this transport (a TCP option on a Unix socketpair)."""


class _FileSend(NamedTuple):
    fh: io.BufferedRandom
    data: bytes


_Unit = Sequence[Buffer] | _FileSend


def _pattern(n: int, salt: int) -> bytes:
    """``n`` bytes with period 251 (so a dropped 4 or 64 KiB block shows), shifted by salt."""
    return (bytes((i + salt) % 256 for i in range(251)) * (n // 251 + 1))[:n]


def messages(rounds: int = 1) -> list[Sequence[Buffer]]:
    """Messages of several shapes, ``rounds`` times; each part's bytes differ from its
    neighbours', so a dropped, repeated or reordered part shows."""
    out: list[Sequence[Buffer]] = []
    for r in range(rounds):
        for k, (size, nparts) in enumerate(SHAPES):
            parts = make_parts(Case("stream", "send", msg_size=size, parts=nparts))
            parts = [p if i == 0 else _pattern(len(p), 1 + (r * 97 + k * 31 + i * 13) % 250)
                     for i, p in enumerate(parts)]
            mixed = tuple(bytearray(p) if i % 2 else memoryview(p) for i, p in enumerate(parts))
            out.append(mixed if k == 2 else parts)  # any buffer type, in a tuple
    return out


def socket_pair(transport: str) -> tuple[socket.socket, socket.socket]:
    """A connected (sender, receiver) pair: ``"socketpair"``, ``"unix"`` or ``"tcp"``."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
    if transport != "tcp":  # AF_UNIX: a socketpair, or a listener in a private directory
        return socket.socketpair() if transport == "socketpair" else unixsock.pair(DEFAULT_TIMEOUT)
    with socket.create_server(("127.0.0.1", 0)) as srv:
        srv.settimeout(DEFAULT_TIMEOUT)
        a = socket.create_connection(srv.getsockname()[:2], timeout=DEFAULT_TIMEOUT)
        try:
            b, _ = srv.accept()
        except BaseException:
            a.close()
            raise
    a.settimeout(None)  # ``b`` is blocking already
    return a, b


@contextlib.contextmanager
def interrupting_timer(interval: float = 0.001) -> Iterator[bool]:
    """SIGALRM every ``interval`` s (ITIMER_REAL): blocked sends return short counts. Only
    in the main thread and when no ITIMER_REAL runs yet; yields whether it was installed."""
    if (not hasattr(signal, "setitimer") or threading.current_thread() is not
            threading.main_thread() or signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0)):
        yield False
        return
    old = signal.signal(signal.SIGALRM, lambda *_: None)  # only to interrupt the call
    try:
        signal.setitimer(signal.ITIMER_REAL, interval, interval)
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old if old is not None else signal.SIG_DFL)


def _shut(*socks: socket.socket) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked on it; close() would not


class _Reader(threading.Thread):
    """Reads until EOF (slowly if asked) and keeps the bytes; at the deadline it shuts both
    sockets down, which wakes a sender blocked in the kernel."""

    def __init__(self, sock: socket.socket, sender: socket.socket, slow: bool,
                 deadline: float, expect: bytes) -> None:
        super().__init__(name="flushbench.testing reader", daemon=True)
        self.sock, self.sender, self.slow, self.deadline, self.expect = (
            sock, sender, slow, deadline, expect)
        self.data, self.got, self.timed_out = bytearray(), 0, False
        self.error: OSError | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        if hasattr(signal, "pthread_sigmask"):  # SIGALRM is for the sending thread
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        try:
            self.sock.settimeout(0.1)
            while not self.halt.is_set():
                if time.monotonic() > self.deadline:
                    self.timed_out = True
                    return _shut(self.sender, self.sock)
                try:
                    chunk = self.sock.recv(4096 if self.slow else 1 << 20)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                self.got += len(chunk)
                if len(self.data) <= len(self.expect):  # and a little more
                    self.data += chunk
                if self.slow:
                    time.sleep(0.0002)
        except OSError as exc:
            self.error = exc

    def judge(self, label: str, when: str, units: Sequence[_Unit], hint: str = "") -> None:
        """AssertionError unless exactly ``expect`` arrived, naming the first wrong byte."""
        expect = self.expect
        n = min(len(self.data), len(expect))
        got = bytes(self.data[:n])
        if got != expect[:n]:
            at = next(i for i in range(0, n, 4096) if got[i:i + 4096] != expect[i:i + 4096])
            at += next(i for i, (x, y) in enumerate(zip(got[at:], expect[at:])) if x != y)
            raise AssertionError(f"{label}: wrong byte at offset {at} ({_where(units, at)}) "
                                 f"{when}: expected {expect[at:at + 8]!r}..., got "
                                 f"{got[at:at + 8]!r}...")
        if self.got != len(expect):
            raise AssertionError(f"{label}: {self.got} bytes of {len(expect)} arrived {when}"
                                 + (hint if self.got < len(expect) else ""))

    def wait(self) -> None:
        """Until every byte arrived, the reader stopped, nothing came for QUIET s, or (after
        a pause) what arrived already differs from what was sent."""
        expect, last, since, compared = self.expect, -1, time.monotonic(), -1
        while self.got < len(expect) and self.is_alive():
            now = time.monotonic()
            if self.got != last:
                last, since = self.got, now
            elif now - since > QUIET or now > self.deadline:
                return
            elif now - since > 0.1 and compared != last:
                compared = last
                if self.data[:last] != expect[:last]:
                    return
            time.sleep(0.005)


def _where(units: Sequence[_Unit], off: int) -> str:
    for k, unit in enumerate(units, 1):
        lengths = [len(unit.data)] if isinstance(unit, _FileSend) else [len(p) for p in unit]
        for j, n in enumerate(lengths, 1):
            if off < n:
                return f"send {k} of {len(units)}, part {j} of {len(lengths)}, byte {off} of {n}"
            off -= n
    return "past the end"


def _send(strat: Strategy | AsyncStrategy, unit: _Unit) -> Any:  # None, or a coroutine
    if isinstance(unit, _FileSend):
        return strat.send_file(unit.fh, len(unit.data))
    return strat.send_message(unit)


async def _send_async(strat: AsyncStrategy, units: Sequence[_Unit]) -> None:
    await strat.open()
    for unit in units:
        await _send(strat, unit)
    await flush_transport(strat.streams[1])  # drain() returns at the high-water mark


def _run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None], end: float) -> None:
    loop.run_until_complete(asyncio.wait_for(coro, max(end - time.monotonic(), 0.01)))


def _tcp_only(transport: str, exc: BaseException) -> bool:
    return transport in ("socketpair", "unix") and isinstance(exc, OSError) and \
        exc.errno in (errno.ENOPROTOOPT, errno.EOPNOTSUPP)  # TCP_CORK on AF_UNIX, say


def _exercise(cls: StrategyClass, what: str, transport: str, tiny: bool, timeout: float,
              units: Sequence[_Unit]) -> int:
    """Send ``units`` with a fresh ``cls`` over a fresh pair, check them; return its calls."""
    label = (f"{cls.__name__} ({cls.name!r}): {what} over {transport}, "
             + ("SO_SNDBUF=1 and a slow reader" if tiny else "default buffers"))
    deadline = time.monotonic() + timeout
    expect = b"".join(u.data if isinstance(u, _FileSend) else b"".join(u) for u in units)
    a, b = socket_pair(transport)
    reader = _Reader(b, a, tiny, deadline, expect)
    strat: Strategy | AsyncStrategy | None = None
    loop: asyncio.AbstractEventLoop | None = None
    closed = False
    try:
        if tiny:
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # Linux: ~4.5 KiB
        reader.start()
        try:
            strat = cls(a)
            if isinstance(strat, AsyncStrategy):
                loop = asyncio.new_event_loop()
                _run(loop, _send_async(strat, units), deadline)
            else:
                with interrupting_timer() if tiny else contextlib.nullcontext(False):
                    for unit in units:
                        _send(strat, unit)
            reader.wait()
            if reader.timed_out:
                raise TimeoutError
            reader.judge(label, "by the time the last send returned", units,
                         "; a send must not return while bytes wait in user space")
            closed = True
            strat.close()
            if a.fileno() == -1:
                raise AssertionError("close() closed the caller's socket")
            if loop is not None and isinstance(strat, AsyncStrategy):
                _run(loop, asyncio.sleep(0), deadline)  # a close() the strategy scheduled
                if strat.streams[1].transport.is_closing():
                    raise AssertionError("close() closed the stream and the caller's socket")
                strat.streams[1].write_eof()
            else:
                a.shutdown(socket.SHUT_WR)  # the reader sees EOF
        except Exception as exc:
            if str(exc).startswith(label):
                raise
            if reader.timed_out or time.monotonic() >= deadline:
                raise AssertionError(f"{label}: did not finish within {timeout:g} s "
                                     f"({reader.got} of {len(expect)} bytes arrived)") from exc
            if _tcp_only(transport, exc):
                raise NotApplicable(f"{label}: {exc}") from exc
            kind = "" if isinstance(exc, AssertionError) else f"{type(exc).__name__}: "
            raise AssertionError(f"{label}: {kind}{exc}") from exc
        reader.join(max(deadline - time.monotonic(), 0.0))
        if reader.is_alive() or reader.timed_out or reader.error:
            raise AssertionError(f"{label}: the stream did not end cleanly within {timeout:g} s"
                                 f" ({reader.error or 'no EOF'})")
        reader.judge(label, "after close()", units)
        if strat.calls < len(units):
            raise AssertionError(f"{label}: calls is {strat.calls} after {len(units)} sends; "
                                 "count every call into the socket API in self.calls")
        return strat.calls
    finally:
        reader.halt.set()
        if reader.is_alive():
            reader.join(5.0)
        if strat is not None and not closed:
            _shut(a)  # so that a flush in close() fails instead of blocking
            with contextlib.suppress(Exception):
                strat.close()
        if loop is not None:
            if isinstance(strat, AsyncStrategy) and strat.writer is not None:
                strat.writer.close()
                with contextlib.suppress(Exception):
                    loop.run_until_complete(asyncio.sleep(0))
            loop.close()
        a.close()
        b.close()


def deliver(cls: StrategyClass, transport: str = "tcp", *, tiny: bool = False,
            file: bool = False, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Send ``messages(3)`` with a fresh ``cls`` (``file``: ``send_file`` a 200 KB file twice,
    its position left at the end, so each send must start at offset 0), check what arrives and
    return its calls. AssertionError on failure; NotApplicable: TCP only, on AF_UNIX."""
    if not file:
        return _exercise(cls, "messages", transport, tiny, timeout, messages(3))
    data = _pattern(FILE_SIZE, 1)
    with tempfile.TemporaryFile() as fh:
        fh.write(data)
        fh.flush()
        return _exercise(cls, "send_file", transport, tiny, timeout, [_FileSend(fh, data)] * 2)


def _require(cls: StrategyClass) -> None:
    if not (isinstance(cls, type) and issubclass(cls, (Strategy, AsyncStrategy))):
        raise TypeError(f"{cls!r} is not a Strategy or AsyncStrategy subclass")
    reason = cls.unavailable()
    if reason:
        raise StrategyUnavailable(f"strategy {cls.name!r} cannot run here: {reason}")


def check_strategy(cls: StrategyClass, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check a strategy class: return None, or raise AssertionError saying what is wrong.

    :func:`messages` and, if ``"file" in cls.workloads``, ``send_file``, over each of
    TRANSPORTS with default buffers, then with SO_SNDBUF=1 (Linux: ~4.5 KiB), a slow reader
    and, for blocking strategies called from the main thread, a 1 ms SIGALRM timer. Wanted:
    exact bytes in order, every byte sent when the last send returns (asyncio: when the
    transport is flushed), ``calls`` >= one per send, the socket open after ``close()``.
    Async strategies ``open()`` on a fresh event loop. TCP-only strategies (ENOPROTOOPT or
    EOPNOTSUPP on AF_UNIX) are checked over TCP only. StrategyUnavailable, not an
    AssertionError, if ``cls.unavailable()`` gives a reason. ``timeout`` bounds each run.
    """
    _require(cls)
    for transport, tiny, file in itertools.product(TRANSPORTS, (False, True), (False, True)):
        if ("file" in cls.workloads) if file else bool(cls.workloads - {"file"}):
            with contextlib.suppress(NotApplicable):
                deliver(cls, transport, tiny=tiny, file=file, timeout=timeout)


def _one_session(case: Case, transport: str, timeout: float) -> None:
    from .measure.peer import _serve_connection
    from .measure.session import Session

    label = f"{case.strategy!r}: a Session for {case.id} over {transport}"
    a, b = socket_pair(transport)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            _serve_connection(b)  # what the peer's _handle runs, without hiding its errors
        except BaseException as exc:
            errors.append(exc)

    peer = threading.Thread(target=serve, name="flushbench.testing peer", daemon=True)
    try:
        peer.start()
        try:  # the Session sets SO_SNDTIMEO/SO_RCVTIMEO (io_timeout): every call is bounded
            session = Session(case, a, io_timeout=timeout)  # it owns ``a`` from here on
            try:
                for _ in range(2):
                    session.run_value(session.ops_for(case.op_count, 0.2))
            finally:
                session.close()
        except Exception as exc:
            if _tcp_only(transport, exc):
                raise NotApplicable(f"{label}: {exc}") from exc
            raise AssertionError(f"{label}: {type(exc).__name__}: {exc}") from exc
        peer.join(timeout)
        if a.fileno() != -1:
            raise AssertionError(f"{label}: Session.close() left its socket open")
        if peer.is_alive() or errors:
            raise AssertionError(f"{label}: the peer did not end cleanly: {errors or 'hangs'}")
        if any(v.calls is None or v.calls < v.msgs for v in session.values):
            raise AssertionError(f"{label}: fewer calls than messages in {session.values}")
    finally:
        if peer.is_alive():
            _shut(a, b)
            peer.join(5.0)
        a.close()
        b.close()


def check_session(cls: StrategyClass, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Run a Session with ``cls`` over a socketpair and a Unix socket (TCP for a TCP-only
    strategy) against the peer's connection handler in a thread: a stream, an rr and a file
    case, as far as ``cls.workloads`` has them. A Session finds its strategy by name, so ``cls`` is
    registered under ``cls.name`` during the check (the registry is restored after it)."""
    _require(cls)
    previous = strategies.REGISTRY.get(cls.name)
    strategies.register_strategy(cls)  # in place if the name is there: the order is kept
    try:
        for workload, size in (("stream", 1000), ("rr", 100), ("file", 100_000)):
            if workload in cls.workloads:
                case = Case(workload, cls.name, msg_size=size, ops=50)
                try:
                    _one_session(case, "socketpair", timeout)
                    _one_session(case, "unix", timeout)  # a listening AF_UNIX socket
                except NotApplicable:
                    _one_session(case, "tcp", timeout)
    finally:
        if previous is None:
            del strategies.REGISTRY[cls.name]
        else:
            strategies.REGISTRY[cls.name] = previous
