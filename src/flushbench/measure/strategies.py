"""Send strategies: how the client hands the bytes of one message to the kernel.

A message is a list of *parts* (a 4-byte length header and a body, say), because real
protocols write several pieces, and that is exactly where strategies differ. Each strategy
is one small class with one job: ``send_message(parts)`` returns once every byte of the
message has been handed to the kernel (nothing left in a user-space buffer). It counts the
calls it makes into the socket API in ``self.calls``.

Write your own by subclassing :class:`Strategy` (or :class:`AsyncStrategy`; both share
:class:`StrategyBase`), check it with :func:`flushbench.testing.check_strategy`, and pass it
with ``--strategy-plugin module:Class`` or a ``flushbench.strategies`` entry point.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO, ClassVar, TypeVar

if TYPE_CHECKING:
    import asyncio

    from _typeshed import ReadableBuffer

from ..case import Case
from ..errors import UsageError, did_you_mean
from .scratch import SMALL, CopyScratch
from .scratch import Buffer as Buffer  # re-exported: plugins import it from here

FILE_CHUNK = 64 * 1024
ALL_WORKLOADS = frozenset({"stream", "rr", "wwr", "pipeline", "file"})


class StrategyBase:
    """What every send path has: a name, the workloads it runs, a call counter.

    Subclass :class:`Strategy` (blocking) or :class:`AsyncStrategy` (asyncio), not this.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    workloads: ClassVar[frozenset[str]] = ALL_WORKLOADS
    is_async: ClassVar[bool] = False
    tls_note: ClassVar[str] = ""  # how it differs over TLS (said in the report)
    tls_unavailable: ClassVar[str] = ""  # why it cannot send through TLS (an ssl.SSLSocket)

    def __init__(self, sock: socket.socket, buffer: int = 0) -> None:
        self.sock = sock
        self.buffer = buffer or io.DEFAULT_BUFFER_SIZE
        self.calls = 0  # calls into the socket API so far

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this strategy cannot run on this platform, or None."""
        return None

    @classmethod
    def unavailable_on(cls, transport: str) -> str | None:
        """Why this strategy cannot run over ``transport`` (e.g. ``"unix"``), or None."""
        return None

    def close(self) -> None:
        """Release what the strategy holds (the socket itself belongs to the caller)."""


class Strategy(StrategyBase):
    """Interface of a blocking send path. Subclasses set ``name`` and ``send_message``."""

    def __init__(self, sock: socket.socket, buffer: int = 0) -> None:
        super().__init__(sock, buffer)
        self._chunk = bytearray(FILE_CHUNK)

    def send_message(self, parts: Sequence[Buffer]) -> None:
        """Return once every byte of the message is in the kernel (none left in user space)."""
        raise NotImplementedError

    def send_file(self, fh: io.BufferedIOBase, size: int) -> None:
        """Send ``size`` bytes of ``fh`` from offset 0 (default: read + send_message).

        ``fh`` is a buffered binary file, as ``open(path, "rb")`` or ``TemporaryFile()`` give.
        """
        fh.seek(0)
        view = memoryview(self._chunk)
        left = size
        while left > 0:
            n = fh.readinto(view[: min(left, FILE_CHUNK)])
            if not n:
                raise EOFError(f"file ended {left} bytes early")
            self.send_message((view[:n],))
            left -= n


class SendStrategy(Strategy):
    name = "send"
    summary = "sock.send() in a loop over a memoryview, handling partial sends"

    def send_message(self, parts: Sequence[Buffer]) -> None:
        send = self.sock.send
        for part in parts:
            n = len(part)
            sent = send(part)
            self.calls += 1
            if sent < n:
                view = memoryview(part)
                while sent < n:
                    sent += send(view[sent:])
                    self.calls += 1


class SendallStrategy(Strategy):
    name = "sendall"
    summary = "sock.sendall() per part"

    def send_message(self, parts: Sequence[Buffer]) -> None:
        sendall = self.sock.sendall
        for part in parts:
            sendall(part)
        self.calls += len(parts)


class _CountingSocketIO(socket.SocketIO):
    """The raw file under ``sock.makefile('wb')``, counting the writes that reach the socket."""

    def __init__(self, sock: socket.socket, owner: Strategy) -> None:
        super().__init__(sock, "wb")
        self._owner = owner

    def write(self, b: ReadableBuffer) -> int | None:
        self._owner.calls += 1
        return super().write(b)


class MakefileStrategy(Strategy):
    name = "makefile"
    summary = "sock.makefile('wb', buffering=B): write() per part, flush() per message"

    def __init__(self, sock: socket.socket, buffer: int = 0) -> None:
        super().__init__(sock, buffer)
        # Exactly what sock.makefile("wb", buffering=B) builds, with a counting raw layer.
        self.file = io.BufferedWriter(_CountingSocketIO(sock, self), self.buffer)

    def send_message(self, parts: Sequence[Buffer]) -> None:
        write = self.file.write
        for part in parts:
            write(part)
        self.file.flush()

    def send_file(self, fh: io.BufferedIOBase, size: int) -> None:
        fh.seek(0)
        shutil.copyfileobj(fh, self.file, FILE_CHUNK)
        self.file.flush()

    def close(self) -> None:
        try:
            self.file.flush()
        finally:
            self.file.detach()  # leave the socket open: it belongs to the caller


class SendmsgStrategy(Strategy):
    name = "sendmsg"
    summary = "sock.sendmsg(parts): one gather call per message, partial sends handled"
    tls_unavailable = "ssl.SSLSocket refuses sendmsg() (NotImplementedError)"

    def send_message(self, parts: Sequence[Buffer]) -> None:
        sent = self.sock.sendmsg(parts)
        self.calls += 1
        total = sum(map(len, parts))
        while sent < total:
            # resend what is left: skip the parts (and the part of a part) already sent
            skip, rest = sent, []
            for part in parts:
                if skip >= len(part):
                    skip -= len(part)
                    continue
                rest.append(memoryview(part)[skip:] if skip else part)
                skip = 0
            sent += self.sock.sendmsg(rest)
            self.calls += 1


class CoalesceStrategy(Strategy):
    name = "coalesce"
    summary = "copy the parts into one reused buffer, one sendall()"

    def __init__(self, sock: socket.socket, buffer: int = 0) -> None:
        super().__init__(sock, buffer)
        self.small, self.scratch = bytearray(), CopyScratch()  # the latter: see scratch.py

    def send_message(self, parts: Sequence[Buffer]) -> None:
        if len(parts[-1]) >= SMALL:  # a long copy (the body comes last): the placed buffer
            self.sock.sendall(self.scratch.fill(parts))
        else:
            buf = self.small
            del buf[:]
            for part in parts:
                buf += part  # copies under 2 KiB are as fast wherever they land
            self.sock.sendall(buf)
        self.calls += 1


class CorkStrategy(Strategy):
    name = "cork"
    summary = "TCP_CORK on, sendall() the parts, TCP_CORK off (Linux)"

    @classmethod
    def unavailable(cls) -> str | None:
        return None if hasattr(socket, "TCP_CORK") else "TCP_CORK does not exist on this platform"

    @classmethod
    def unavailable_on(cls, transport: str) -> str | None:
        return "TCP_CORK is a TCP option (an AF_UNIX socket is not a TCP socket)" \
            if transport == "unix" else None

    def send_message(self, parts: Sequence[Buffer]) -> None:
        sock = self.sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        try:
            for part in parts:
                sock.sendall(part)
        finally:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)  # uncork: push it out
        self.calls += len(parts)


class MsgMoreStrategy(Strategy):
    name = "msg_more"
    summary = "send(part, MSG_MORE) for all parts but the last (Linux)"
    tls_unavailable = "ssl.SSLSocket.send() refuses flags (ValueError): no MSG_MORE"

    @classmethod
    def unavailable(cls) -> str | None:
        return None if hasattr(socket, "MSG_MORE") else "MSG_MORE does not exist on this platform"

    def send_message(self, parts: Sequence[Buffer]) -> None:
        send = self.sock.send
        last = len(parts) - 1
        for i, part in enumerate(parts):
            flags = socket.MSG_MORE if i < last else 0
            n = len(part)
            sent = send(part, flags)
            self.calls += 1
            if sent < n:
                view = memoryview(part)
                while sent < n:
                    sent += send(view[sent:], flags)
                    self.calls += 1


class SendfileStrategy(Strategy):
    name = "sendfile"
    summary = "zero-copy os.sendfile() loop from a file, as socket.sendfile() does on Linux"
    workloads = frozenset({"file"})
    tls_note = "over TLS: SSLSocket.sendfile() falls back to send() of 8 KiB blocks (CPython)"

    def send_message(self, parts: Sequence[Buffer]) -> None:
        raise UsageError("sendfile sends files only: use it with the file workload")

    def send_file(self, fh: io.BufferedIOBase, size: int) -> None:
        # The same os.sendfile() calls socket.sendfile() makes on a blocking socket, but a
        # send timeout (SO_SNDTIMEO) ends it: socket.sendfile() would select() forever.
        if hasattr(self.sock, "cipher"):  # an ssl.SSLSocket: tls_note, as CPython does it
            self.sock.sendfile(fh, fh.seek(0), size)  # it reads from fh's position at offset 0
            self.calls += 1
            return
        out, src, offset = self.sock.fileno(), fh.fileno(), 0
        while offset < size:
            try:
                sent = os.sendfile(out, src, offset, size - offset)
            except BlockingIOError:
                raise TimeoutError("sendfile: no progress within the send timeout") from None
            if not sent:
                raise EOFError(f"file ended {size - offset} bytes early")
            offset += sent
            self.calls += 1


class AsyncStrategy(StrategyBase):
    """Interface of an asyncio send path: ``open``, ``send_message`` and ``send_file`` are
    coroutines, run on the session's event loop."""

    is_async = True

    def __init__(self, sock: socket.socket, buffer: int = 0) -> None:
        super().__init__(sock, buffer)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Wrap the connected socket in asyncio streams (inside the running loop)."""
        import asyncio  # here: blocking strategies' workers never pay for importing it

        self.reader, self.writer = await asyncio.open_connection(sock=self.sock)

    @property
    def streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The reader and writer made by :meth:`open`."""
        if self.reader is None or self.writer is None:
            raise RuntimeError(f"strategy {self.name!r} was not opened")
        return self.reader, self.writer

    async def send_message(self, parts: Sequence[Buffer]) -> None:
        raise NotImplementedError

    async def send_file(self, fh: BinaryIO, size: int) -> None:
        import asyncio

        _, writer = self.streams
        await writer.drain()  # seek(0): over TLS asyncio's fallback reads from fh's position
        await asyncio.get_running_loop().sendfile(writer.transport, fh, fh.seek(0), size)
        self.calls += 1


class AsyncioStrategy(AsyncStrategy):
    name = "asyncio"
    summary = "StreamWriter.writelines(parts) per message, then await drain()"

    async def send_message(self, parts: Sequence[Buffer]) -> None:
        _, writer = self.streams
        writer.writelines(parts)
        await writer.drain()
        self.calls += 1


# -- registry -----------------------------------------------------------------------------

AnyStrategy = Strategy | AsyncStrategy
REGISTRY: dict[str, type[AnyStrategy]] = {}
S = TypeVar("S", bound=StrategyBase)


def register_strategy(cls: type[S]) -> type[S]:
    """Add a strategy class to the registry (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, (Strategy, AsyncStrategy))):
        raise UsageError(f"{cls!r} is not a flushbench.Strategy subclass")
    if not cls.name or not cls.name.replace("_", "").replace("-", "").isalnum():
        raise UsageError(f"strategy class {cls.__name__} needs a name of letters, digits, _ or -")
    REGISTRY[cls.name] = cls
    return cls


for _cls in (SendStrategy, SendallStrategy, MakefileStrategy, SendmsgStrategy, CoalesceStrategy,
             CorkStrategy, MsgMoreStrategy, SendfileStrategy, AsyncioStrategy):
    register_strategy(_cls)

BUILTIN = tuple(REGISTRY)


def get(name: str) -> type[AnyStrategy]:
    if name not in REGISTRY:
        raise UsageError(f"unknown strategy {name!r}{did_you_mean(name, REGISTRY)}; expected "
                         f"one of {', '.join(sorted(REGISTRY))} (or --strategy-plugin)")
    return REGISTRY[name]


def unavailable_over(case: Case) -> str | None:
    """'unavailable over unix: <reason>' when the case's options or strategy need what its
    transport lacks (a TCP option on an AF_UNIX socket), else None. Not an error: a suite
    skips such cases with this reason."""
    if case.tls and case.transport == "unix":
        return "unavailable over unix: TLS runs over TCP here (AF_UNIX is not a TCP socket)"
    if case.tls and get(case.strategy).tls_unavailable:
        return f"unavailable over TLS: {get(case.strategy).tls_unavailable}"
    reason = case.option_unavailable() or get(case.strategy).unavailable_on(case.transport)
    return f"unavailable over {case.transport}: {reason}" if reason else None


def check(name: str, workload: str) -> None:
    """Raise UsageError when ``name`` cannot run ``workload`` here."""
    cls = get(name)
    reason = cls.unavailable()
    if reason:
        raise UsageError(f"strategy {name!r} cannot run here: {reason}")
    if workload not in cls.workloads:
        raise UsageError(f"strategy {name!r} does not run the {workload} workload; it runs "
                         f"{', '.join(sorted(cls.workloads))}")
