"""Conformance: every strategy passes flushbench.testing.check_strategy, and the kit can fail.

The checks themselves (exact bytes in order over socketpair() and TCP, tiny send buffers, a
slow reader and a 1 ms interval timer so blocking sends return short counts) live in
:mod:`flushbench.testing`, the one implementation that plugin authors use too.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Sequence

import pytest

from flushbench import testing
from flushbench.case import Case
from flushbench.errors import UsageError
from flushbench.measure import plugins, strategies
from flushbench.measure.loops import make_parts
from flushbench.measure.strategies import Buffer

ALL = sorted(strategies.BUILTIN)


def available(name: str) -> type[strategies.Strategy] | type[strategies.AsyncStrategy]:
    cls = strategies.get(name)
    reason = cls.unavailable()
    if reason:
        pytest.skip(reason)
    return cls


@pytest.mark.parametrize("name", ALL)
def test_builtin_strategy_conforms(name: str) -> None:
    """Each built-in strategy delivers every byte of every message (and file), in order."""
    testing.check_strategy(available(name))


@pytest.mark.parametrize("name", ALL)
def test_session_runs_each_strategy_over_a_socketpair(name: str) -> None:
    """A Session takes its socket: it runs against the peer's handler over a socketpair."""
    testing.check_session(available(name))


@pytest.mark.parametrize("name", ["send", "msg_more", "sendmsg"])
def test_partial_sends_really_happen(name: str) -> None:
    """With a tiny buffer and interrupted sends, the loop strategies see short counts."""
    assert threading.current_thread() is threading.main_thread()  # the timer needs it
    calls = testing.deliver(available(name), "tcp", tiny=True)
    msgs = testing.messages(3)
    without_partials = sum(len(m) for m in msgs) if name != "sendmsg" else len(msgs)
    assert calls > without_partials, "no partial send was exercised"


def test_async_strategy_counts_one_call_per_message() -> None:
    """asyncio: one writelines + drain per message."""
    assert testing.deliver(strategies.get("asyncio"), "socketpair") == len(testing.messages(3))


def test_tcp_only_strategy_is_not_applicable_on_a_socketpair() -> None:
    """cork sets TCP_CORK: on a Unix socketpair that is 'not applicable', not a failure."""
    with pytest.raises(testing.NotApplicable, match="socketpair"):
        testing.deliver(available("cork"), "socketpair")


def test_unavailable_strategy_is_reported() -> None:
    """A strategy that cannot run here is refused with its reason (not an AssertionError)."""

    class Elsewhere(strategies.SendStrategy):
        name = "elsewhere"

        @classmethod
        def unavailable(cls) -> str | None:
            return "needs another kernel"

    with pytest.raises(testing.StrategyUnavailable, match="needs another kernel"):
        testing.check_strategy(Elsewhere)


def test_plugin_strategy_conforms(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin the CLI tests load (tests/plugin_strategy.py) passes the kit as well."""
    monkeypatch.delenv("FLUSHBENCH_TEST_RECORD", raising=False)
    from plugin_strategy import RecordingStrategy

    testing.check_strategy(RecordingStrategy)


# -- the kit must be able to fail --------------------------------------------------------------

class DropsLastByte(strategies.Strategy):
    name = "drops-last-byte"

    def send_message(self, parts: Sequence[Buffer]) -> None:
        self.sock.sendall(b"".join(parts)[:-1])
        self.calls += 1


class SwapsParts(strategies.Strategy):
    name = "swaps-parts"

    def send_message(self, parts: Sequence[Buffer]) -> None:
        for part in reversed(parts):
            self.sock.sendall(part)
            self.calls += 1


class HoldsBack(strategies.Strategy):
    """Buffers everything in user space and sends it only in close()."""

    name = "holds-back"

    def __init__(self, sock: socket.socket, buffer: int = 0) -> None:
        super().__init__(sock, buffer)
        self.pending = bytearray()

    def send_message(self, parts: Sequence[Buffer]) -> None:
        for part in parts:
            self.pending += part
        self.calls += 1

    def close(self) -> None:
        self.sock.sendall(self.pending)


class ClosesSocket(strategies.SendallStrategy):
    name = "closes-socket"

    def close(self) -> None:
        self.sock.close()


class Uncounted(strategies.Strategy):
    name = "uncounted"

    def send_message(self, parts: Sequence[Buffer]) -> None:
        for part in parts:
            self.sock.sendall(part)


class AsyncDropsParts(strategies.AsyncStrategy):
    name = "async-drops-parts"

    async def send_message(self, parts: Sequence[Buffer]) -> None:
        _, writer = self.streams
        writer.write(parts[0])
        await writer.drain()
        self.calls += 1


class BadFile(strategies.SendallStrategy):
    """send_file from the file's current position instead of offset 0."""

    name = "bad-file"

    def send_file(self, fh: io.BufferedIOBase, size: int) -> None:
        self.sock.sendall(fh.read(size))
        self.calls += 1


@pytest.mark.parametrize(("cls", "match"), [
    (DropsLastByte, r"wrong byte at offset 63 \(send 1 of 21, part 1 of 1, byte 63"),
    (SwapsParts, r"wrong byte at offset 64 \(send 2 of 21, part 1 of 2"),
    (HoldsBack, r"0 bytes of \d+ arrived by the time the last send returned"),
    (ClosesSocket, "close\\(\\) closed the caller's socket"),
    (Uncounted, "calls is 0 after 21 sends"),
    (AsyncDropsParts, r"wrong byte at offset 68 \(send 2 of 21, part 2 of 2"),
    (BadFile, "send_file over socketpair.*0 bytes of 400006 arrived"),
], ids=lambda v: getattr(v, "name", None))
def test_check_strategy_fails_broken_strategies(cls: type[strategies.StrategyBase],
                                                match: str) -> None:
    """A strategy that loses, reorders, holds back bytes or closes the socket fails."""
    with pytest.raises(AssertionError, match=match):
        testing.check_strategy(cls)  # type: ignore[arg-type]


# -- the rest of the strategy layer ---------------------------------------------------------

def test_makefile_counts_writes_and_buffers() -> None:
    """makefile writes small parts once per flush; a small buffer means more writes."""
    a, b = testing.socket_pair("tcp")
    try:
        big = strategies.get("makefile")(a, buffer=8192)
        assert isinstance(big, strategies.Strategy)
        big.send_message([b"h" * 4, b"b" * 60])
        assert big.calls == 1  # one write() reached the socket per message
        big.close()
        small = strategies.get("makefile")(a, buffer=16)
        assert isinstance(small, strategies.Strategy)
        small.send_message([b"h" * 4, b"b" * 60])
        assert small.calls >= 2
        small.close()
        assert a.fileno() != -1  # the strategy never closes the caller's socket
    finally:
        a.close()
        b.close()


def test_make_parts_splits_header_and_body() -> None:
    """A message is a 4-byte length header and the body in parts-1 pieces."""
    parts = make_parts(Case("stream", "send", msg_size=100, parts=4))
    assert [len(p) for p in parts] == [4, 32, 32, 32]
    assert int.from_bytes(parts[0], "big") == 96


def test_sendfile_refuses_messages() -> None:
    """sendfile only sends files; using it for messages is a clear error."""
    a, b = socket.socketpair()
    with a, b, pytest.raises(UsageError, match="file workload"):
        strat = strategies.get("sendfile")(a)
        assert isinstance(strat, strategies.Strategy)
        strat.send_message([b"x"])


def test_check_refuses_impossible_combinations() -> None:
    """Unknown strategies and sendfile on a non-file workload are refused up front."""
    with pytest.raises(UsageError, match="unknown strategy 'nope'"):
        strategies.check("nope", "stream")
    with pytest.raises(UsageError, match="does not run the stream workload"):
        strategies.check("sendfile", "stream")


def test_register_rejects_non_strategies() -> None:
    """Only Strategy subclasses with a proper name can be registered."""
    with pytest.raises(UsageError):
        strategies.register_strategy(io.BytesIO)  # type: ignore[type-var]

    class Nameless(strategies.Strategy):
        pass

    with pytest.raises(UsageError, match="needs a name"):
        strategies.register_strategy(Nameless)


def test_load_plugin_errors_are_one_line() -> None:
    """A bad --strategy-plugin names what is wrong."""
    with pytest.raises(UsageError, match="expected module:Class"):
        plugins.load_plugin("nocolon")
    with pytest.raises(UsageError, match="cannot import"):
        plugins.load_plugin("no_such_module_xyz:Thing")
    with pytest.raises(UsageError, match="has no Missing"):
        plugins.load_plugin("flushbench.measure.strategies:Missing")
