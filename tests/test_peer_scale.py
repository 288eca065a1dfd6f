"""The peer at scale: 1,000 connections of one case at once, then the next case's 1,000 while
the first ones still close, with bounded receive buffers, small thread stacks and a served
cap that follows RLIMIT_NOFILE. Real peer processes and sockets on 127.0.0.1."""

from __future__ import annotations

import random
import socket
import sys
import time
from pathlib import Path

import pytest

from flushbench.case import Case
from flushbench.errors import SetupError
from flushbench.measure import fdlimit
from flushbench.measure import protocol as wire
from flushbench.measure.peerlimits import (
    FULL_BUFFERS_UP_TO,
    MAX_CONNECTIONS,
    RECV_CHUNK,
    SMALL_CHUNK,
    Slots,
    recv_buffer_size,
)
from flushbench.procs import PeerProcess
from flushbench.run.tlsca import RunCA
from test_agent import data_hello
from test_peer_attacks import local_peer, refused, rss_kib
from test_tls import ca, measure, tls_peer

__all__ = ["ca", "local_peer", "tls_peer"]  # fixtures, imported for the tests below
KiB, MiB = 1 << 10, 1 << 20
CONNS = 1000
MSG, MSGS = 16 * KiB, 4  # one value per connection: 4 messages of 16 KiB
# The peer's resident memory with 1,000 stream connections held: buffers of 16 x 1 MiB +
# 984 x 64 KiB = 78 MiB, per thread a few stack pages, its state and a socket (~40 KiB,
# 40 MiB), the interpreter (~25 MiB): ~145 MiB expected. A 1 MiB buffer each (before) would
# be over 1 GiB; 300 MB leaves room for allocator slack on another machine.
RSS_BOUND_KIB = 300 * 1000 * 1000 // KiB
LOW_HARD = 300  # RLIMIT_NOFILE of the peer that must lower its cap
# Runs the peer (the rest of argv) with RLIMIT_NOFILE (LOW_HARD, LOW_HARD), its stderr in a file.
LOW_LIMIT_SHIM = (
    "import os, resource, sys; "
    "os.dup2(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2); "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({LOW_HARD}, {LOW_HARD})); "
    "os.execv(sys.argv[2], sys.argv[2:])")


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no Threads for pid {pid}")


def open_batch(peer: PeerProcess, n: int, workload: str = "stream",
               **hello: int) -> list[socket.socket]:
    """``n`` connections opened one after another (each hello answered before the next), as
    the client side of a many-connections case does; all closed again if one fails."""
    socks: list[socket.socket] = []
    try:
        for i in range(n):
            sock, ack = data_hello(peer.addr, peer.ticket, workload, **hello)
            socks.append(sock)
            assert ack["ok"], (i, ack)
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def one_value(sock: socket.socket) -> None:
    """GO, MSGS messages of MSG bytes, and the DONE that confirms every byte."""
    sock.sendall(wire.pack_go(MSGS))
    wire.check_ready(sock.recv(1))
    sock.sendall(bytes(MSG * MSGS))
    confirmed, cpu_ns = wire.DONE.unpack(wire.recv_exact(sock, wire.DONE.size))
    assert confirmed == MSG * MSGS and cpu_ns >= 0


def bye_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.sendall(wire.BYE)
        sock.close()


# ------------------------------------------------------------------------------ the rules


def test_receive_buffer_rule() -> None:
    """One-way connections: RECV_CHUNK while at most FULL_BUFFERS_UP_TO are served (or when
    not counted), SMALL_CHUNK beyond; requests: at most the request, too."""
    assert (FULL_BUFFERS_UP_TO, RECV_CHUNK, SMALL_CHUNK) == (16, MiB, 64 * KiB)
    for served in (0, 1, FULL_BUFFERS_UP_TO):
        assert recv_buffer_size(True, MSG, served) == RECV_CHUNK
    for served in (FULL_BUFFERS_UP_TO + 1, CONNS, MAX_CONNECTIONS):
        assert recv_buffer_size(True, MSG, served) == SMALL_CHUNK
        assert recv_buffer_size(True, 8 * MiB, served) == SMALL_CHUNK
    for served in (1, CONNS):
        assert recv_buffer_size(False, 64, served) == 64
    assert recv_buffer_size(False, 3 * MiB, 1) == RECV_CHUNK
    assert recv_buffer_size(False, 3 * MiB, CONNS) == SMALL_CHUNK  # read in pieces


def test_slots_count_the_served_and_bound_the_full_buffers() -> None:
    """promote() says how many are served with the newcomer (0: refused); over any order of
    joins and leaves, at most FULL_BUFFERS_UP_TO live one-way connections hold RECV_CHUNK."""
    assert MAX_CONNECTIONS == 2048 and Slots().cap == MAX_CONNECTIONS
    slots = Slots(cap=40)
    conns = [object() for _ in range(41)]
    for i, conn in enumerate(conns[:40], 1):
        slots.admit(conn)  # type: ignore[arg-type]
        assert slots.promote(conn) == i  # type: ignore[arg-type]
    slots.admit(conns[40])  # type: ignore[arg-type]
    assert slots.promote(conns[40]) == 0  # type: ignore[arg-type]
    slots.leave(conns[40], False)  # type: ignore[arg-type]
    for conn in conns[:40]:
        slots.leave(conn, True)  # type: ignore[arg-type]
    assert slots.served == 0
    rng, live, worst = random.Random(7), {}, 0  # conn -> its buffer size
    for _ in range(5000):
        if live and (len(live) >= slots.cap or rng.random() < 0.5):
            conn = rng.choice(list(live))
            del live[conn]
            slots.leave(conn, True)  # type: ignore[arg-type]
        else:
            conn = object()
            slots.admit(conn)  # type: ignore[arg-type]
            served = slots.promote(conn)  # type: ignore[arg-type]
            assert served == len(live) + 1
            live[conn] = recv_buffer_size(True, MSG, served)
        worst = max(worst, sum(size == RECV_CHUNK for size in live.values()))
    assert worst == FULL_BUFFERS_UP_TO


# --------------------------------------------------------------------- a real peer process


def test_a_thousand_connections_then_a_thousand_more(local_peer: PeerProcess) -> None:
    """1,000 stream connections of one case held at once, each confirming its value; then
    BYE on each and, at once, the next case's 1,000: all served, the peer's memory bounded,
    and its threads gone once all are closed."""
    try:
        fdlimit.ensure(CONNS, "the test process")
    except SetupError as exc:
        pytest.skip(f"this test holds {CONNS} connections at once: {exc}")
    pid, t0, rss = local_peer.proc.pid, time.monotonic(), []
    for _ in range(2):
        socks = open_batch(local_peer, CONNS, msg_size=MSG)
        try:
            for sock in socks:
                one_value(sock)
            rss.append(rss_kib(pid))
            assert threads_of(pid) > CONNS
        finally:
            bye_all(socks)  # right after: the next batch opens while these still close
    assert max(rss) < RSS_BOUND_KIB, f"the peer holds {max(rss)} KiB with {CONNS} connections"
    deadline = time.monotonic() + 30
    while threads_of(pid) > 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threads_of(pid) <= 20, "connection threads outlived their connections"
    print(f"peer RSS at {CONNS} connections: {[r // KiB for r in rss]} MiB, "
          f"{time.monotonic() - t0:.1f} s for both batches")


def test_a_driver_cases_connections_are_served_by_one_loop(local_peer: PeerProcess) -> None:
    """Hellos with "many": the peer's event loop serves all 1,000 at once (no thread each):
    every value interleaved over all connections, stream and rr, confirmed to the byte;
    after BYE their slots are free for the next batch."""
    try:
        fdlimit.ensure(CONNS, "the test process")
    except SetupError as exc:
        pytest.skip(f"this test holds {CONNS} connections at once: {exc}")
    pid = local_peer.proc.pid
    for workload, size, reply in (("stream", MSG, 0), ("rr", 64, 32)):
        socks = open_batch(local_peer, CONNS, workload, msg_size=size, reply=reply, many=True)
        try:
            assert threads_of(pid) < 20, "a thread per connection, not the loop"
            n = MSGS
            for sock in socks:  # every connection's value runs at the same time
                sock.sendall(wire.pack_go(n))
            for sock in socks:
                wire.check_ready(sock.recv(1))
            for _ in range(n if workload == "rr" else 1):
                for sock in socks:
                    sock.sendall(bytes(size * (1 if workload == "rr" else n)))
                if workload == "rr":
                    for sock in socks:
                        assert wire.recv_exact(sock, reply) == b"r" * reply
            for sock in socks:
                confirmed, cpu_ns = wire.DONE.unpack(wire.recv_exact(sock, wire.DONE.size))
                assert confirmed == n * size and cpu_ns >= 0
            assert rss_kib(pid) < RSS_BOUND_KIB
        finally:
            bye_all(socks)


def test_a_low_hard_fd_limit_lowers_the_cap(tmp_path: Path) -> None:
    """A peer whose hard RLIMIT_NOFILE is too low for MAX_CONNECTIONS says so in one line on
    stderr, serves what fits (soft limit - SPARE_FDS) and refuses the next with a reason."""
    err = tmp_path / "stderr"
    cap = LOW_HARD - fdlimit.SPARE_FDS
    with PeerProcess(prefix=[sys.executable, "-c", LOW_LIMIT_SHIM, str(err)]) as peer:
        [line] = err.read_text().splitlines()
        assert f"serves at most {cap} connections at once, not {MAX_CONNECTIONS}" in line
        assert f"hard limit {LOW_HARD}" in line and "ulimit -Hn" in line
        socks = open_batch(peer, cap, msg_size=MSG)
        try:
            one_value(socks[-1])
            extra, ack = data_hello(peer.addr, peer.ticket)
            extra.close()
            assert refused(ack, f"the peer serves at most {cap} connections at once"), ack
        finally:
            bye_all(socks)
        assert peer.proc.poll() is None


def test_deeply_nested_hellos_do_not_overflow_the_small_stacks(local_peer: PeerProcess) -> None:
    """The deepest a connection thread goes: decoding (and, past the ticket, quoting in its
    refusal) a hello that is all nested brackets. Refused, and the peer serves on."""
    depth = (wire.HELLO_CAP - len(f'{{"ticket":"{local_peer.ticket}","v":}}')) // 2
    bodies = [b"[" * wire.HELLO_CAP, b"[" * (wire.HELLO_CAP // 2) + b"]" * (wire.HELLO_CAP // 2),
              f'{{"ticket":"{local_peer.ticket}","v":{"[" * depth}{"]" * depth}}}'.encode()]
    for body in bodies:
        assert len(body) <= wire.HELLO_CAP
        with socket.create_connection(local_peer.addr, timeout=10) as sock:
            sock.sendall(wire.FRAME_HEAD.pack(len(body)) + body)
            assert wire.recv_frame(sock)["ok"] is False
    assert local_peer.proc.poll() is None
    close_all(open_batch(local_peer, 1, msg_size=MSG))


def test_tls_handshakes_fit_the_small_stacks(tls_peer: PeerProcess, ca: RunCA) -> None:
    """TLS handshakes run in the connection threads too (1 MiB stacks)."""
    for workload in ("stream", "rr"):  # nodelay: no Nagle x delayed-ACK stall per request
        case = Case(workload, "sendall", MSG, tls=True, nodelay=True)
        session, _ = measure(tls_peer, ca, case, values=2)
        assert [v.bytes for v in session.values] == [50 * MSG] * 2
    assert tls_peer.proc.poll() is None
