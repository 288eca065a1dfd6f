"""Issue 12, finding 2: the attacks on the data port, replayed against real peer processes.

A peer serves only data hellos that carry its ticket: an agent's peer (the ticket is the
session's, sent to the client in the authenticated "peer" reply) and the local peer of a
plain loopback run alike (the manager's ticket, also handed to each worker on its stdin).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flushbench.case import MAX_SIZE, Case
from flushbench.errors import SetupError
from flushbench.measure import fdlimit
from flushbench.measure import protocol as wire
from flushbench.measure.peer import MAX_CONNECTIONS, MAX_PENDING, RECV_CHUNK
from flushbench.procs import PeerProcess
from flushbench.remote.client import RemotePeer
from flushbench.run.visits import VisitSpec, run_visit, worker_env
from test_agent import TOKEN, AgentProc, data_hello, start_agent, wait_gone

__all__ = ["start_agent"]  # the fixture, imported for the tests below
MiB = 1 << 20


@pytest.fixture
def local_peer() -> Iterator[PeerProcess]:
    """The peer a plain loopback run starts (procs.PeerProcess, with a fresh ticket)."""
    with PeerProcess("127.0.0.1") as peer:
        yield peer


def rss_kib(pid: int) -> int:
    """Resident memory of a real process, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def refused(ack: dict[str, Any], why: str) -> bool:
    return ack.get("ok") is False and why in str(ack.get("error"))


def push(sock: socket.socket, nbytes: int) -> int:
    """One stream value of ``nbytes`` in 1 MiB messages; the bytes the peer confirms."""
    sock.sendall(wire.pack_go(nbytes // MiB))
    assert sock.recv(1) == wire.READY
    chunk = bytes(MiB)
    for _ in range(nbytes // MiB):
        sock.sendall(chunk)
    confirmed, _ = wire.DONE.unpack(wire.recv_exact(sock, wire.DONE.size))
    return int(confirmed)


# ----------------------------------------------------------------- the session's own peer


def test_second_connection_without_ticket_spends_nothing(
        start_agent: Callable[..., AgentProc]) -> None:
    """Finding 2: a second connection from the client's own address pushed 18 MiB through a
    session's peer, spending its --max-bytes, and the client's next value was refused. Now
    it is refused at its hello, before a byte is counted or a buffer allocated."""
    agent = start_agent("--max-bytes", str(20 * MiB))
    with RemotePeer(agent.addr, TOKEN) as peer:
        for ticket in (None, "0" * 64, peer.ticket[:-1] + "x", peer.ticket.upper(), 7):
            sock, ack = data_hello(peer.addr, ticket, "stream", msg_size=MiB)  # type: ignore[arg-type]
            with sock:
                assert refused(ack, "ticket was refused"), (ticket, ack)
                with contextlib.suppress(OSError):  # the peer hung up: nothing goes through
                    sock.sendall(wire.pack_go(18) + bytes(MiB))
                try:
                    answer = sock.recv(1)
                except ConnectionResetError:  # our bytes hit a closed socket
                    answer = b""
                assert answer == b""
        sock, ack = data_hello(peer.addr, peer.ticket, "stream", msg_size=MiB)
        with sock:
            assert ack["ok"]
            assert push(sock, 18 * MiB) == 18 * MiB  # the whole budget was still there


def test_ticket_is_on_no_command_line(start_agent: Callable[..., AgentProc],
                                      local_peer: PeerProcess) -> None:
    """The ticket reaches a peer on its stdin: not in its argv or environment, which other
    local users (argv) or the process's owner (environ) can read in /proc."""
    agent = start_agent()
    with RemotePeer(agent.addr, TOKEN) as remote:
        for pid, ticket in ((remote.pid, remote.ticket), (local_peer.proc.pid, local_peer.ticket)):
            assert wire.is_ticket(ticket)
            for what in ("cmdline", "environ"):
                assert ticket.encode() not in Path(f"/proc/{pid}/{what}").read_bytes()
        assert remote.ticket != local_peer.ticket
    assert wait_gone(remote.pid)


# -------------------------------------------------------------------- memory and capacity


def test_idle_hellos_announcing_64_mib_do_not_grow_the_peer(local_peer: PeerProcess) -> None:
    """Finding 2: two idle rr connections announcing 64 MiB sizes took the peer from 20 MB to
    281 MB resident. Buffers are at most 1 MiB now, and replies come from one fixed buffer."""
    pid = local_peer.proc.pid
    warm, ack = data_hello(local_peer.addr, local_peer.ticket)  # threads and imports warmed up
    before = rss_kib(pid)
    socks = []
    try:
        for _ in range(2):
            sock, ack = data_hello(local_peer.addr, local_peer.ticket, "rr",
                                   msg_size=MAX_SIZE, reply=MAX_SIZE)
            socks.append(sock)
            assert ack["ok"], ack
        time.sleep(0.3)
        grown = rss_kib(pid) - before
        assert grown < 16 * 1024, f"the peer grew by {grown} KiB"  # was ~260 MiB
    finally:
        for sock in (warm, *socks):
            sock.close()


def test_large_requests_are_read_in_a_loop(local_peer: PeerProcess) -> None:
    """Requests and replies over the 1 MiB buffer still move whole, byte for byte."""
    size, reply, n = 3 * MiB + 5, 2 * MiB + 3, 2
    before = rss_kib(local_peer.proc.pid)
    sock, ack = data_hello(local_peer.addr, local_peer.ticket, "rr", msg_size=size, reply=reply)
    with sock:
        assert ack["ok"]
        sock.sendall(wire.pack_go(n))
        assert sock.recv(1) == wire.READY
        for _ in range(n):
            sock.sendall(os.urandom(size))
            assert wire.recv_exact(sock, reply) == b"r" * reply
        confirmed, _ = wire.DONE.unpack(wire.recv_exact(sock, wire.DONE.size))
        assert confirmed == n * size
    assert rss_kib(local_peer.proc.pid) - before < 16 * 1024
    assert RECV_CHUNK == MiB


def test_idle_connections_cannot_shut_out_a_worker(local_peer: PeerProcess) -> None:
    """Connections that never send a hello take a few slots at most: each newcomer pushes
    the oldest out, so a worker's connection is served; a silent one is cut off after
    HELLO_TIMEOUT; a hello over HELLO_CAP is refused before its body is read."""
    idle = [socket.create_connection(local_peer.addr, timeout=10) for _ in range(3 * MAX_PENDING)]
    try:
        sock, ack = data_hello(local_peer.addr, local_peer.ticket)
        sock.close()
        assert ack["ok"]
        assert all(s.recv(1) == b"" for s in idle[:2 * MAX_PENDING])  # pushed out: closed
        t0 = time.monotonic()
        answer = wire.recv_frame(idle[-1])  # the newest: cut off for saying nothing
        assert refused(answer, "timed out") and 0 < time.monotonic() - t0 < 30
        with socket.create_connection(local_peer.addr, timeout=10) as big:
            big.sendall(wire.FRAME_HEAD.pack(wire.HELLO_CAP + 1))
            assert refused(wire.recv_frame(big), "cap")
    finally:
        for s in idle:
            s.close()


def test_connections_per_peer_are_capped(local_peer: PeerProcess) -> None:
    """Past MAX_CONNECTIONS served at once (tickets and all), a newcomer is refused with
    a reason; a slot that frees up is taken again."""
    try:  # this process holds MAX_CONNECTIONS + 1 sockets
        fdlimit.ensure(MAX_CONNECTIONS + 1, "this test")
    except SetupError as exc:
        pytest.skip(str(exc))
    held: list[socket.socket] = []
    try:
        for _ in range(MAX_CONNECTIONS):
            sock, ack = data_hello(local_peer.addr, local_peer.ticket)
            held.append(sock)
            assert ack["ok"], ack
        extra, ack = data_hello(local_peer.addr, local_peer.ticket)
        extra.close()
        assert refused(ack, f"at most {MAX_CONNECTIONS} connections"), ack
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:  # the peer notices the close within a moment
            sock, ack = data_hello(local_peer.addr, local_peer.ticket)
            sock.close()
            if ack["ok"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert ack["ok"], ack
    finally:
        for sock in held:
            sock.close()


# ------------------------------------------------------------ the local peer of a plain run


def test_local_peer_checks_the_ticket(local_peer: PeerProcess) -> None:
    """Finding 2: on plain loopback runs the local peer had no filter at all. It takes
    only hellos with its ticket now."""
    for ticket in (None, "", "f" * 64, local_peer.ticket + "0"):
        sock, ack = data_hello(local_peer.addr, ticket)
        sock.close()
        assert refused(ack, "ticket was refused"), (ticket, ack)
    sock, ack = data_hello(local_peer.addr, local_peer.ticket)
    sock.close()
    assert ack["ok"] and ack["pid"] == local_peer.proc.pid


def test_workers_get_the_ticket_on_stdin(local_peer: PeerProcess, tmp_path: Path) -> None:
    """The manager's workers reach the local peer with its ticket, which they read on their
    stdin: it is in no worker's argv or environment, nor in the visit's file; a worker sent
    without it is refused by the peer."""
    case = Case("rr", "sendall", 64, nodelay=True, ops=200)
    spec = VisitSpec(round=0, cases=(case,), loops={}, values=2, warmups=0, value_time=0.01,
                     io_timeout=10.0, epoch=time.time())
    addr = wire.format_addr(*local_peer.addr)
    seen: list[bytes] = []
    stop = threading.Event()

    def watch() -> None:  # what any local user could read about the worker, while it runs
        for _ in range(20000):  # bounded: 1 ms apart
            if stop.is_set():
                return
            for entry in Path("/proc").iterdir():
                with contextlib.suppress(OSError):
                    cmdline = (entry / "cmdline").read_bytes()
                    if b"flushbench.measure.visit" in cmdline:
                        seen.append(cmdline + (entry / "environ").read_bytes())
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        [(record, lat)] = run_visit(spec, tmp_path / "ok", addr, [], worker_env(None), 60,
                                    ticket=local_peer.ticket)
    finally:
        stop.set()
        watcher.join(30)
    assert record["error"] == "" and len(record["values"]) == 2 and len(lat) > 0, record
    assert seen, "the worker was never seen running"
    assert not [s for s in seen if local_peer.ticket.encode() in s]
    assert local_peer.ticket not in (tmp_path / "ok" / "visit.json").read_text()
    [(record, _)] = run_visit(spec, tmp_path / "none", addr, [], worker_env(None), 60)
    assert "ticket was refused" in record["error"], record
    [(record, _)] = run_visit(spec, tmp_path / "wrong", addr, [], worker_env(None), 60,
                              ticket="0" * 64)
    assert "ticket was refused" in record["error"], record
    assert json.loads((tmp_path / "wrong" / f"{case.id}.json").read_text())["values"] == []
