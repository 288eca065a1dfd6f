"""The peer: the other side of every workload, in its own process.

It reads its ticket from the first line of stdin (the parent made it; never on the command
line), listens on an ephemeral port, prints one JSON readiness line on stdout, and serves each
client connection in a thread: it reads the bytes of each operation, answers what the
workload asks, and after each timed value reports the bytes it received and the CPU time
its thread spent. It exits when stdin closes (its parent died) or on SIGTERM.

Whoever can reach the port is a stranger until its hello presents the ticket: until then it
holds one of MAX_PENDING slots (a newcomer pushes the oldest out), may send HELLO_CAP bytes
within HELLO_TIMEOUT, and gets nothing allocated. Past the ticket, at most MAX_CONNECTIONS
(2048: a case's 1,000 connections and the previous case's still closing) are served at once,
each in a thread with a 1 MiB stack and a receive buffer of at most RECV_CHUNK bytes (larger
requests are read in a loop); replies are sent from one shared buffer, whatever sizes the
hello announces. Worst-case memory at 2048 connections (peerlimits.py has the arithmetic):
receive buffers 143 MiB (up to 1 MiB for the first 16 served at once, up to 64 KiB beyond;
a request's buffer at most the request), and 2 GiB of stack address space of which a few
pages per thread are resident. Where the hard RLIMIT_NOFILE is too low for 2048, the peer
serves fewer and says so on stderr at start-up.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..case import MAX_BATCH, MAX_OPS, MAX_SIZE, ONE_WAY_WORKLOADS, WORKLOADS
from ..errors import PeerError, ProtocolError, SetupError
from . import protocol, sink, sockopts, unixsock
from .faults import Fault
from .peerlimits import MAX_CONNECTIONS as MAX_CONNECTIONS  # re-exported: tests import them
from .peerlimits import MAX_PENDING as MAX_PENDING
from .peerlimits import (
    RECV_CHUNK,
    ByteBudget,
    Slots,
    recv_buffer_size,
    served_cap,
    small_thread_stacks,
)
from .peerloop import LoopConn, PeerLoop

FAULT = Fault.from_env()  # tests only: see faults.py
REPLY = memoryview(b"r" * RECV_CHUNK)  # every reply is sent from this one buffer
IDLE_TIMEOUT = 120.0  # seconds a connection may sit idle before the peer drops it
TICKET_WAIT = 20.0  # seconds the peer waits for its ticket on stdin
# The path of the peer's TLS certificate and key (one PEM file in the run's private 0700
# directory): in the environment, not the command line. Without it the peer serves no TLS.
TLS_CERT_ENV = "FLUSHBENCH_TLS_CERT"
TLS_CONTEXT: Any = None  # the peer's ssl.SSLContext, made in main() when it has a certificate
LOOP: PeerLoop | None = None  # serves driver cases' connections; started in main()
SINK = sink.DEFAULT  # how one-way data is taken in (sink.py); --sink sets it, a hello's
# "sink" overrides it for that connection (a cell with a TLS or unix case asks for "copy")


def _plain_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address, with an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) as plain IPv4."""
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


@dataclass(frozen=True, slots=True)
class Job:
    """A validated HELLO: what one connection will do."""

    workload: str
    msg_size: int
    reply: int
    batch: int
    rcvbuf: int
    tls: bool = False  # after the hello's answer, the connection switches to TLS
    many: bool = False  # one of a driver case's connections: served by the peer's loop
    sink: str = ""  # how to take in one-way data (sink.py); "": the peer's --sink

    @classmethod
    def from_hello(cls, hello: dict[str, Any]) -> Job:
        if hello.get("v") != protocol.PROTOCOL_VERSION:
            raise ProtocolError(f"protocol version {hello.get('v')!r} not supported; "
                                f"this peer speaks {protocol.PROTOCOL_VERSION}")
        if hello.get("workload") not in WORKLOADS:
            raise ProtocolError(f"unknown workload {hello.get('workload')!r}")

        def num(key: str, lo: int, hi: int) -> int:
            value = hello.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ProtocolError(f"{key} must be an integer in [{lo}, {hi}], got {value!r}")
            return value

        job = cls(workload=hello["workload"], msg_size=num("msg_size", 1, MAX_SIZE),
                  reply=num("reply", 0, MAX_SIZE), batch=num("batch", 1, MAX_BATCH),
                  rcvbuf=num("rcvbuf", 0, 1 << 30), tls=hello.get("tls", False),
                  many=hello.get("many", False), sink=hello.get("sink", ""))
        for key in ("tls", "many"):
            if not isinstance(getattr(job, key), bool):
                raise ProtocolError(f"{key} must be true or false, got "
                                    f"{protocol.short(getattr(job, key))}")
        if job.sink != "" and not sink.known(job.sink):
            raise ProtocolError(f"sink must be one of {', '.join(sink.SINKS)}, got "
                                f"{protocol.short(job.sink)}")
        if job.msg_size * job.batch > MAX_SIZE:
            raise ProtocolError(f"msg_size x batch must be <= {MAX_SIZE}")
        return job


def _serve_connection(conn: socket.socket, budget: ByteBudget | None = None,
                      ticket: str | None = None, slots: Slots | None = None,
                      tls: Any = None) -> None:
    """One data connection, closed at the end. ``ticket`` None: no check (in-process use).
    ``tls``: the ssl.SSLContext for a hello that asks for TLS (default: TLS_CONTEXT)."""
    served = 0  # connections served with this one once promoted (0: not counted)
    tls = tls if tls is not None else TLS_CONTEXT
    adopted = False
    try:
        sockopts.set_timeouts(conn, IDLE_TIMEOUT)
        sockopts.set_nodelay(conn, True)  # replies go out at once
        try:
            hello = protocol.recv_frame(conn, protocol.HELLO_CAP,
                                        time.monotonic() + protocol.HELLO_TIMEOUT)
            conn.settimeout(None)  # blocking again: the timed path relies on it
            if ticket is not None and not protocol.ticket_ok(ticket, hello.get("ticket")):
                raise ProtocolError("the hello's ticket was refused: this peer serves only the "
                                    "workers of the run (or agent session) that started it")
            if slots is not None:
                served = slots.promote(conn)
                if not served:
                    raise ProtocolError(f"the peer serves at most {slots.cap} connections at once")
            job = Job.from_hello(hello)
            if job.tls and tls is None:
                raise ProtocolError("this peer serves no TLS (it was started without a "
                                    "certificate)")
        except ProtocolError as exc:
            with contextlib.suppress(OSError, ProtocolError):
                protocol.send_frame(conn, {"ok": False, "error": str(exc)},
                                    time.monotonic() + 1.0)
            return
        rcvbuf_eff = sockopts.set_rcvbuf(conn, job.rcvbuf)
        one_way = job.workload in ONE_WAY_WORKLOADS
        flags = sink.recv_flags(conn, job.sink or SINK) if one_way and not job.tls else 0
        protocol.send_frame(conn, {"ok": True, "rcvbuf_eff": rcvbuf_eff, "pid": os.getpid(),
                                   **({"tls": True} if job.tls else {}),
                                   **({"sink": "discard" if flags else "copy"}
                                      if one_way else {})})
        if job.many and not job.tls and LOOP is not None and not \
                (FAULT and FAULT.matches(job.workload, job.msg_size)):
            def leave() -> None:
                if slots is not None:
                    slots.leave(conn, served > 0)

            LOOP.adopt(LoopConn(conn, job.msg_size * job.batch, job.reply, one_way, budget,
                                leave, flags))
            adopted = True  # the loop closes it and frees its slot
        elif job.tls:  # the handshake (bounded in time), then the values over TLS
            from .tls import wrap_server

            with wrap_server(conn, tls) as tls_conn:
                _serve_values(tls_conn, job, budget, served)
        else:
            _serve_values(conn, job, budget, served, flags)
    finally:
        if not adopted:
            if slots is not None:
                slots.leave(conn, served > 0)
            conn.close()


def _serve_values(conn: socket.socket, job: Job, budget: ByteBudget | None = None,
                  served: int = 0, flags: int = 0) -> None:
    """The connection's values; ``flags``: of its one-way reads (MSG_TRUNC: discard)."""
    fault = FAULT if FAULT and FAULT.matches(job.workload, job.msg_size) else None
    values = 0
    per_op = job.msg_size * job.batch
    one_way = job.workload in ONE_WAY_WORKLOADS
    view = sink.page_aligned(recv_buffer_size(one_way, per_op, served))
    head = bytearray(protocol.GO.size)
    while True:
        protocol.recv_into_exact(conn, memoryview(head))
        magic, n = protocol.GO.unpack(head)
        if magic == protocol.BYE_MAGIC:
            return
        if magic != protocol.GO_MAGIC or not 1 <= n <= MAX_OPS:
            raise ProtocolError(f"bad GO frame {bytes(head)!r}")
        replied = 0 if one_way else n * job.reply
        if budget is not None and not budget.take(n * per_op + replied):
            raise PeerError("byte limit reached (--max-bytes)")
        values += 1
        if fault and values == fault.value:
            fault.strike(conn)
        conn.sendall(protocol.READY)
        cpu0 = time.thread_time_ns()
        if one_way:
            _read_exactly(conn, view, n * per_op, flags)
        elif per_op <= len(view) and job.reply <= len(REPLY):
            _answer_requests(conn, view[:per_op], REPLY[:job.reply], n)
        else:
            for _ in range(n):  # requests or replies over RECV_CHUNK: in pieces
                _read_exactly(conn, view, per_op)
                for start in range(0, job.reply, len(REPLY)):
                    conn.sendall(REPLY[:min(len(REPLY), job.reply - start)])
        conn.sendall(protocol.DONE.pack(n * per_op, time.thread_time_ns() - cpu0))


def _read_exactly(conn: socket.socket, view: memoryview, left: int, flags: int = 0) -> None:
    """Take ``left`` bytes, a buffer-full at a time (dropped uncopied with MSG_TRUNC)."""
    if not sink.drain(conn, view, left, flags):
        raise PeerError("client closed the connection mid-value")


def _answer_requests(conn: socket.socket, op_view: memoryview, reply: memoryview, n: int) -> None:
    """Read each request whole, answer it. Its cost is on every measured RTT: keep it lean
    (one recv_into and one send per request in the common case)."""
    recv_into, send, want, rlen = conn.recv_into, conn.send, len(op_view), len(reply)
    for _ in range(n):
        got = recv_into(op_view)
        if got != want:
            if not got:
                raise PeerError("client closed the connection mid-value")
            protocol.recv_into_exact(conn, op_view[got:])
        sent = send(reply)
        if sent != rlen:
            conn.sendall(reply[sent:])


def _handle(conn: socket.socket, budget: ByteBudget | None = None, ticket: str | None = None,
            slots: Slots | None = None) -> None:
    try:
        _serve_connection(conn, budget, ticket, slots)
    except (OSError, PeerError):
        pass  # the client went away or broke the protocol: drop this connection only


def serve(listener: socket.socket, stop: threading.Event, budget: ByteBudget | None = None,
          allow_from: str | None = None, ticket: str | None = None,
          slots: Slots | None = None) -> None:
    """Accept connections until ``stop`` is set; one thread per connection.

    ``allow_from``: serve only clients from this IP address (others are closed at once).
    ``ticket``: serve only connections whose hello presents it. ``slots``: shared with the
    other listener of the process (TCP and AF_UNIX share the caps).
    """
    allowed = _plain_ip(allow_from) if allow_from else None
    slots = slots or Slots()
    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, addr = listener.accept()
        except TimeoutError:
            continue
        except OSError as exc:
            if stop.is_set():
                return
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(0.05)  # out of descriptors for a moment: closing ones free them
                continue
            raise
        if allowed is not None and _plain_ip(addr[0]) != allowed:
            conn.close()
            continue
        conn.settimeout(None)
        slots.admit(conn)
        try:
            threading.Thread(target=_handle, args=(conn, budget, ticket, slots),
                             daemon=True).start()
        except RuntimeError:  # no thread to be had (memory, a limit): drop this one only
            slots.leave(conn, False)
            conn.close()


def bind_listener(host: str, port: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SetupError(f"peer cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    # Clients connect one after another (each waits for its hello's answer before the
    # next connect), so a few queued connects per worker is all the backlog ever holds.
    sock.listen(64)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flushbench.peer")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, help="pin the peer to this CPU")
    parser.add_argument("--max-seconds", type=float, metavar="S",
                        help="exit after S seconds (agent sessions: a bound if the agent dies)")
    parser.add_argument("--max-bytes", type=int, metavar="N",
                        help="refuse values once N bytes (received + replied) have been moved")
    parser.add_argument("--allow-from", metavar="IP",
                        help="serve only clients from this address (an agent's session client)")
    parser.add_argument("--unix", metavar="PATH", help="also listen on this AF_UNIX path (in a "
                        "private directory the parent made and removes)")
    parser.add_argument("--sink", choices=sink.SINKS, default=sink.DEFAULT,
                        help="one-way data: dropped in the kernel (MSG_TRUNC, where it can) or "
                             "copied into a buffer, unless a connection's hello asks otherwise "
                             "(see flushbench/measure/sink.py)")
    args = parser.parse_args(argv)
    if args.max_seconds is not None and not 0 < args.max_seconds <= 30 * 86400:
        parser.error("--max-seconds must be in (0, 2592000]")
    if args.max_bytes is not None and args.max_bytes < 1:
        parser.error("--max-bytes must be >= 1")
    if args.unix is not None and args.allow_from is not None:
        parser.error("--unix and --allow-from exclude each other (an agent's peer is TCP)")
    if args.allow_from is not None:
        try:
            _plain_ip(args.allow_from)
        except ValueError:
            parser.error(f"--allow-from {args.allow_from!r} is not an IP address")
    try:
        ticket, why = protocol.read_ticket(0, TICKET_WAIT), "no ticket on stdin"
    except ProtocolError as exc:
        ticket, why = None, str(exc)
    if ticket is None:  # the parent writes it first thing: without it, serve nobody
        print(json.dumps({"ready": False, "error": f"{why} (the peer serves only connections "
                                                   "that present its ticket)"}), flush=True)
        return 2
    if os.environ.get(TLS_CERT_ENV):  # ssl only for a peer that serves TLS
        from .tls import server_context

        global TLS_CONTEXT
        try:
            TLS_CONTEXT = server_context(os.environ[TLS_CERT_ENV])
        except SetupError as exc:
            print(json.dumps({"ready": False, "error": str(exc)}), flush=True)
            return 2
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    global SINK
    SINK = args.sink
    cap, note = served_cap(MAX_CONNECTIONS)  # RLIMIT_NOFILE raised for them, or fewer
    if note:
        print(note, file=sys.stderr, flush=True)
    small_thread_stacks()  # before any thread: 2048 of them reserve 2 GiB, not 16 GiB
    stop = threading.Event()
    global LOOP
    LOOP = PeerLoop(stop, IDLE_TIMEOUT)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        listener = bind_listener(args.bind, args.port)
        local = unixsock.listen(args.unix) if args.unix is not None else None
    except SetupError as exc:
        print(json.dumps({"ready": False, "error": str(exc)}), flush=True)
        return 2
    from ..metadata import collect_host

    host, port = listener.getsockname()[:2]
    print(json.dumps({"ready": True, "host": host, "port": port, "pid": os.getpid(),
                      "unix": args.unix, "sink": SINK, "meta": collect_host()}), flush=True)

    def watch_parent() -> None:  # stdin closes when the parent goes away
        with contextlib.suppress(OSError):
            while os.read(0, 4096):  # unbuffered: no lock for shutdown to trip over
                pass
        stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    if args.max_seconds is not None:
        timer = threading.Timer(args.max_seconds, stop.set)
        timer.daemon = True
        timer.start()
    budget = ByteBudget(args.max_bytes) if args.max_bytes is not None else None
    slots = Slots(cap=cap)
    if local is not None:  # the same ticket, slots and caps for AF_UNIX connections
        threading.Thread(target=serve, args=(local, stop, budget, None, ticket, slots),
                         daemon=True).start()
    with listener:
        serve(listener, stop, budget, args.allow_from, ticket, slots)
    if local is not None:
        local.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
