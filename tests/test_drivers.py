"""The many-connection drivers against a checking peer on 127.0.0.1: exact bytes, in order,
on every connection; rr replies stamped; DONE read; sockets usable after a value."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from flushbench.measure import protocol, sockopts
from flushbench.measure.drivers import (
    DRIVERS,
    LOOP_STRATEGIES,
    Work,
    misfit,
    open_driver,
    unavailable,
)

CONNS = 8
PARTS = [b"\x00\x00\x01\x00", bytes(range(256)) * 2 + b"tail", b"!end"]
MESSAGE = b"".join(PARTS)


@dataclass
class CheckingPeer:
    """Accepts connections and plays the peer's side of GO/READY/DONE, comparing every
    byte it receives with the message repeated; remembers what went wrong."""

    listener: socket.socket
    reply_size: int
    errors: list[str] = field(default_factory=list)
    received: dict[int, int] = field(default_factory=dict)  # connection index -> bytes
    threads: list[threading.Thread] = field(default_factory=list)

    def serve(self, count: int) -> None:
        for i in range(count):
            conn, _ = self.listener.accept()
            conn.settimeout(30)
            t = threading.Thread(target=self._one, args=(i, conn), daemon=True)
            t.start()
            self.threads.append(t)

    def _one(self, i: int, conn: socket.socket) -> None:
        with conn:
            try:
                while True:
                    magic, n = protocol.GO.unpack(protocol.recv_exact(conn, protocol.GO.size))
                    if magic == protocol.BYE_MAGIC:
                        return
                    conn.sendall(protocol.READY)
                    for k in range(n):
                        got = protocol.recv_exact(conn, len(MESSAGE))
                        if got != MESSAGE:
                            self.errors.append(f"connection {i}: message {k} differs")
                            return
                        self.received[i] = self.received.get(i, 0) + len(got)
                        if self.reply_size:
                            conn.sendall(b"r" * self.reply_size)
                    conn.sendall(protocol.DONE.pack(n * len(MESSAGE), 0))
            except (OSError, protocol.ProtocolError) as exc:
                self.errors.append(f"connection {i}: {exc!r}")


@pytest.fixture
def connections(request: pytest.FixtureRequest) -> Iterator[tuple[list[socket.socket],
                                                                    CheckingPeer]]:
    reply_size = getattr(request, "param", 0)
    listener = socket.create_server(("127.0.0.1", 0), backlog=CONNS)
    peer = CheckingPeer(listener, reply_size)
    server = threading.Thread(target=peer.serve, args=(CONNS,), daemon=True)
    server.start()
    socks = [socket.create_connection(listener.getsockname(), timeout=10) for _ in range(CONNS)]
    for s in socks:  # blocking, each call bounded by the kernel (as a Session leaves them)
        s.settimeout(None)
        sockopts.set_timeouts(s, 30.0)
    server.join(10)
    try:
        yield socks, peer
    finally:
        for s in socks:
            s.close()
        for t in peer.threads:
            t.join(10)
        listener.close()


def _needs(driver: str) -> None:
    why = unavailable(driver)
    if why:
        pytest.skip(f"driver {driver}: {why}")


CASES = [(d, s) for d in DRIVERS for s in (("sendall", "makefile", "sendmsg", "coalesce")
                                           if d == "threads" else LOOP_STRATEGIES[d])]


@pytest.mark.parametrize(("driver", "strategy"), CASES)
def test_stream_exact_bytes_on_every_connection(
        driver: str, strategy: str,
        connections: tuple[list[socket.socket], CheckingPeer]) -> None:
    _needs(driver)
    socks, peer = connections
    d = open_driver(driver, socks, Work("stream", strategy, PARTS, io_timeout=20))
    try:
        for n in (1, 300):  # two values on the same connections
            t0, results = d.run(n)
            assert len(results) == CONNS
            for r in results:
                got, _cpu = protocol.DONE.unpack(r.done)
                assert got == n * len(MESSAGE)
                assert r.end_ns > t0
    finally:
        d.close()
    for t in peer.threads:
        t.join(10)
    assert peer.errors == []
    assert peer.received == {i: 301 * len(MESSAGE) for i in range(CONNS)}


@pytest.mark.parametrize("connections", [64], indirect=True)
@pytest.mark.parametrize(("driver", "strategy"), [(d, "sendall") for d in DRIVERS])
def test_rr_stamps_every_reply(driver: str, strategy: str,
                               connections: tuple[list[socket.socket], CheckingPeer]) -> None:
    _needs(driver)
    socks, peer = connections
    d = open_driver(driver, socks, Work("rr", strategy, PARTS, reply_size=64, nodelay=True,
                                        io_timeout=20))
    try:
        t0, results = d.run(50)
    finally:
        d.close()
    assert peer.errors == []
    for r in results:
        stamps = list(r.stamps)
        assert len(stamps) == 50 and stamps == sorted(stamps) and stamps[0] > t0
        assert r.end_ns == stamps[-1]
        assert protocol.DONE.unpack(r.done)[0] == 50 * len(MESSAGE)


def test_misfits_and_unknown_drivers_are_explained() -> None:
    assert misfit("threads", "sendall", "stream", is_async=False) is None
    assert "use driver asyncio" in str(misfit("threads", "asyncio", "stream", is_async=True))
    assert "use driver threads" in str(misfit("selectors", "makefile", "stream", False))
    assert "not file" in str(misfit("trio", "sendall", "file", False))
    assert "unknown driver 'fibers'" in str(unavailable("fibers"))
    assert unavailable("threads") is None and unavailable("selectors") is None
