"""The peer: the other side of every workload, in its own process.

It listens on an ephemeral port, prints one JSON readiness line on stdout, and serves each
client connection in a thread: it reads the bytes of each operation, answers what the
workload asks, and after each timed value reports the bytes it received and the CPU time
its thread spent. It exits when stdin closes (its parent died) or on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
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
from . import protocol, sockopts
from .faults import Fault

FAULT = Fault.from_env()  # tests only: see faults.py
RECV_CHUNK = 1 << 20
IDLE_TIMEOUT = 120.0  # seconds a connection may sit idle before the peer drops it


class ByteBudget:
    """Bytes the peer process may still move (received + replied) over all its connections.

    Optional (``--max-bytes``): an agent's peer listens on a reachable address, so the bytes a
    session may push through it are bounded. Charged per timed value, before it starts.
    """

    def __init__(self, limit: int) -> None:
        self.limit = self.left = limit
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if n > self.left:
                if self.left:
                    print(f"peer: byte limit of {self.limit} reached (--max-bytes); refusing "
                          "further values", file=sys.stderr, flush=True)
                self.left = 0
                return False
            self.left -= n
            return True


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
                  rcvbuf=num("rcvbuf", 0, 1 << 30))
        if job.msg_size * job.batch > MAX_SIZE:
            raise ProtocolError(f"msg_size x batch must be <= {MAX_SIZE}")
        return job


def _serve_connection(conn: socket.socket, budget: ByteBudget | None = None) -> None:
    with conn:
        sockopts.set_timeouts(conn, IDLE_TIMEOUT)
        sockopts.set_nodelay(conn, True)  # replies go out at once
        try:
            job = Job.from_hello(protocol.recv_frame(conn))
        except ProtocolError as exc:
            with contextlib.suppress(OSError):
                protocol.send_frame(conn, {"ok": False, "error": str(exc)})
            return
        rcvbuf_eff = sockopts.set_rcvbuf(conn, job.rcvbuf)
        protocol.send_frame(conn, {"ok": True, "rcvbuf_eff": rcvbuf_eff, "pid": os.getpid()})
        _serve_values(conn, job, budget)


def _serve_values(conn: socket.socket, job: Job, budget: ByteBudget | None = None) -> None:
    fault = FAULT if FAULT and FAULT.matches(job.workload, job.msg_size) else None
    values = 0
    per_op = job.msg_size * job.batch
    buf = bytearray(max(RECV_CHUNK if job.workload in ONE_WAY_WORKLOADS else per_op, 1))
    view = memoryview(buf)
    reply = b"r" * job.reply
    head = bytearray(protocol.GO.size)
    while True:
        protocol.recv_into_exact(conn, memoryview(head))
        magic, n = protocol.GO.unpack(head)
        if magic == protocol.BYE_MAGIC:
            return
        if magic != protocol.GO_MAGIC or not 1 <= n <= MAX_OPS:
            raise ProtocolError(f"bad GO frame {bytes(head)!r}")
        replied = 0 if job.workload in ONE_WAY_WORKLOADS else n * job.reply
        if budget is not None and not budget.take(n * per_op + replied):
            raise PeerError("byte limit reached (--max-bytes)")
        values += 1
        if fault and values == fault.value:
            fault.strike(conn)
        conn.sendall(protocol.READY)
        cpu0 = time.thread_time_ns()
        if job.workload in ONE_WAY_WORKLOADS:
            left = n * per_op
            recv_into = conn.recv_into
            while left:
                k = recv_into(buf, min(left, len(buf)))
                if not k:
                    raise PeerError("client closed the connection mid-value")
                left -= k
        else:
            _answer_requests(conn, view[:per_op], reply, n)
        conn.sendall(protocol.DONE.pack(n * per_op, time.thread_time_ns() - cpu0))


def _answer_requests(conn: socket.socket, op_view: memoryview, reply: bytes, n: int) -> None:
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


def _handle(conn: socket.socket, budget: ByteBudget | None = None) -> None:
    try:
        _serve_connection(conn, budget)
    except (OSError, PeerError):
        pass  # the client went away or broke the protocol: drop this connection only


def serve(listener: socket.socket, stop: threading.Event, budget: ByteBudget | None = None,
          allow_from: str | None = None) -> None:
    """Accept connections until ``stop`` is set; one thread per connection.

    ``allow_from``: serve only clients from this IP address (others are closed at once).
    """
    allowed = _plain_ip(allow_from) if allow_from else None
    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, addr = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            if stop.is_set():
                return
            raise
        if allowed is not None and _plain_ip(addr[0]) != allowed:
            conn.close()
            continue
        conn.settimeout(None)
        threading.Thread(target=_handle, args=(conn, budget), daemon=True).start()


def bind_listener(host: str, port: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SetupError(f"peer cannot listen on {host}:{port}: {exc.strerror or exc}") from None
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
    args = parser.parse_args(argv)
    if args.max_seconds is not None and not 0 < args.max_seconds <= 30 * 86400:
        parser.error("--max-seconds must be in (0, 2592000]")
    if args.max_bytes is not None and args.max_bytes < 1:
        parser.error("--max-bytes must be >= 1")
    if args.allow_from is not None:
        try:
            _plain_ip(args.allow_from)
        except ValueError:
            parser.error(f"--allow-from {args.allow_from!r} is not an IP address")
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        listener = bind_listener(args.bind, args.port)
    except SetupError as exc:
        print(json.dumps({"ready": False, "error": str(exc)}), flush=True)
        return 2
    from ..metadata import collect_host

    host, port = listener.getsockname()[:2]
    print(json.dumps({"ready": True, "host": host, "port": port, "pid": os.getpid(),
                      "meta": collect_host()}), flush=True)

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
    with listener:
        serve(listener, stop, budget, args.allow_from)
    return 0


if __name__ == "__main__":
    sys.exit(main())
