"""Conformance: every strategy delivers exactly the bytes of each message, in order.

Over ``socketpair()`` and real TCP, and with a tiny send buffer plus a slow reader and a
1 ms interval timer, so blocking sends are interrupted part-way and return short counts:
the partial-send paths run for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import signal
import socket
import tempfile
import threading
import time

import pytest

from flushbench import strategies
from flushbench.errors import UsageError
from flushbench.suite import Case
from flushbench.workloads import make_parts

BLOCKING = [n for n, c in strategies.REGISTRY.items()
            if not c.is_async and "stream" in c.workloads and not c.unavailable()]
ASYNC = [n for n, c in strategies.REGISTRY.items() if c.is_async]


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        a = socket.create_connection(srv.getsockname())
        b, _ = srv.accept()
    return a, b


PAIRS = {"socketpair": socket.socketpair, "tcp": tcp_pair}


def messages() -> list[list[bytes]]:
    """Messages of several shapes: one part, header+body, many parts, large bodies."""
    out = []
    for size, parts in ((64, 1), (64, 2), (1000, 5), (70_000, 2), (300_000, 3), (5, 2)):
        case = Case("stream", "sendall", msg_size=size, parts=parts)
        body = make_parts(case)
        out.append([bytes([i % 251]) * len(p) if i % 2 else p for i, p in enumerate(body)])
    return out


class Reader(threading.Thread):
    """Reads everything from a socket, slowly if asked, and hashes it."""

    def __init__(self, sock: socket.socket, expect: int, slow: bool) -> None:
        super().__init__(daemon=True)
        self.sock, self.expect, self.slow = sock, expect, slow
        self.digest = hashlib.sha256()
        self.got = 0

    def run(self) -> None:
        deadline = time.monotonic() + 30
        while self.got < self.expect and time.monotonic() < deadline:
            data = self.sock.recv(4096 if self.slow else 1 << 20)
            if not data:
                break
            self.digest.update(data)
            self.got += len(data)
            if self.slow:
                time.sleep(0.0002)


@contextlib.contextmanager
def interrupting_timer():
    """SIGALRM every millisecond: blocked sends return short counts instead of waiting."""
    old = signal.signal(signal.SIGALRM, lambda *a: None)
    signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)


def run_blocking(name: str, pair: str, tiny: bool) -> tuple[strategies.Strategy, Reader, bytes]:
    a, b = PAIRS[pair]()
    msgs = messages() * 3
    expect = b"".join(b"".join(m) for m in msgs)
    try:
        if tiny:
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # Linux: ~4.5 KiB
        reader = Reader(b, len(expect), slow=tiny)
        reader.start()
        strat = strategies.get(name)(a)
        with interrupting_timer() if tiny else contextlib.nullcontext():
            for m in msgs:
                strat.send_message(m)
        strat.close()
        reader.join(30)
    finally:
        a.close()
        b.close()
    return strat, reader, expect


@pytest.mark.parametrize("pair", sorted(PAIRS))
@pytest.mark.parametrize("tiny", [False, True], ids=["default-buffer", "tiny-buffer"])
@pytest.mark.parametrize("name", BLOCKING)
def test_blocking_strategy_delivers_exact_bytes(name: str, pair: str, tiny: bool) -> None:
    """Each blocking strategy delivers every byte of every message, in order."""
    if name == "cork" and pair == "socketpair":
        pytest.skip("TCP_CORK is a TCP option; a Unix socketpair has no such level")
    strat, reader, expect = run_blocking(name, pair, tiny)
    assert reader.got == len(expect)
    assert reader.digest.hexdigest() == hashlib.sha256(expect).hexdigest()
    assert strat.calls >= len(messages()) * 3


@pytest.mark.parametrize("name", ["send", "msg_more", "sendmsg"])
def test_partial_sends_really_happen(name: str) -> None:
    """With a tiny buffer and interrupted sends, the loop strategies see short counts."""
    strat, reader, expect = run_blocking(name, "tcp", tiny=True)
    parts = sum(len(m) for m in messages()) * 3
    calls_without_partials = parts if name != "sendmsg" else len(messages()) * 3
    assert strat.calls > calls_without_partials, "no partial send was exercised"
    assert reader.digest.hexdigest() == hashlib.sha256(expect).hexdigest()


@pytest.mark.parametrize("pair", sorted(PAIRS))
@pytest.mark.parametrize("name", ASYNC)
def test_async_strategy_delivers_exact_bytes(name: str, pair: str) -> None:
    """The asyncio strategy delivers every byte of every message, in order."""
    a, b = PAIRS[pair]()
    msgs = messages() * 3
    expect = b"".join(b"".join(m) for m in msgs)
    reader = Reader(b, len(expect), slow=False)
    reader.start()

    async def main() -> strategies.Strategy:
        strat = strategies.get(name)(a)
        await strat.open()  # type: ignore[attr-defined]
        for m in msgs:
            await strat.send_message(m)
        strat.writer.close()  # type: ignore[attr-defined]
        await strat.writer.wait_closed()  # type: ignore[attr-defined]  # flushes the buffer
        return strat

    try:
        strat = asyncio.run(main())
        reader.join(30)
    finally:
        a.close()
        b.close()
    assert reader.digest.hexdigest() == hashlib.sha256(expect).hexdigest()
    assert strat.calls == len(msgs)


@pytest.mark.parametrize("name", ["sendall", "makefile", "sendfile", "send"])
def test_send_file_sends_the_file(name: str) -> None:
    """send_file() delivers the file's bytes, whatever the strategy."""
    data = bytes(range(256)) * 1500
    a, b = tcp_pair()
    reader = Reader(b, len(data), slow=False)
    reader.start()
    try:
        with tempfile.TemporaryFile() as fh:
            fh.write(data)
            fh.flush()
            strat = strategies.get(name)(a)
            strat.send_file(fh, len(data))
            strat.close()
        reader.join(30)
    finally:
        a.close()
        b.close()
    assert reader.digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_makefile_counts_writes_and_buffers() -> None:
    """makefile writes small parts once per flush; a small buffer means more writes."""
    a, b = tcp_pair()
    try:
        big = strategies.get("makefile")(a, buffer=8192)
        big.send_message([b"h" * 4, b"b" * 60])
        assert big.calls == 1  # one write() reached the socket per message
        big.close()
        small = strategies.get("makefile")(a, buffer=16)
        small.send_message([b"h" * 4, b"b" * 60])
        assert small.calls >= 2
        small.close()
        assert a.fileno() != -1  # the strategy never closes the caller's socket
    finally:
        a.close()
        b.close()


def test_sendfile_refuses_messages() -> None:
    """sendfile only sends files; using it for messages is a clear error."""
    a, b = socket.socketpair()
    with a, b, pytest.raises(UsageError, match="file workload"):
        strategies.get("sendfile")(a).send_message([b"x"])


def test_check_refuses_impossible_combinations() -> None:
    """Unknown strategies and sendfile on a non-file workload are refused up front."""
    with pytest.raises(UsageError, match="unknown strategy 'nope'"):
        strategies.check("nope", "stream")
    with pytest.raises(UsageError, match="does not run the stream workload"):
        strategies.check("sendfile", "stream")


def test_register_rejects_non_strategies() -> None:
    """Only Strategy subclasses with a proper name can be registered."""
    with pytest.raises(UsageError):
        strategies.register_strategy(io.BytesIO)  # type: ignore[arg-type]

    class Nameless(strategies.Strategy):
        pass

    with pytest.raises(UsageError, match="needs a name"):
        strategies.register_strategy(Nameless)


def test_load_plugin_errors_are_one_line() -> None:
    """A bad --strategy-plugin names what is wrong."""
    with pytest.raises(UsageError, match="expected module:Class"):
        strategies.load_plugin("nocolon")
    with pytest.raises(UsageError, match="cannot import"):
        strategies.load_plugin("no_such_module_xyz:Thing")
    with pytest.raises(UsageError, match="has no Missing"):
        strategies.load_plugin("flushbench.strategies:Missing")
