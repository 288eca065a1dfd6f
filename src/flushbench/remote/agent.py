"""``flushbench agent``: the remote side. Starts a peer on request, one session at a time.

    flushbench agent --new-token ~/.flushbench-token                     # once; copy the file
    flushbench agent --bind 0.0.0.0 --token-file ~/.flushbench-token     # on the remote host
    flushbench run --peer HOST:7420 --token-file ~/.flushbench-token     # on the client

The control protocol is in :mod:`flushbench.remote.protocol`. A token is always required,
on loopback too (any local user could otherwise hold the one session). A session is one
control connection: hello and authentication, then ``start_peer`` (a
:class:`~flushbench.procs.PeerProcess` bound to the address the connection arrived on, port 0,
serving only the session's client address and only data hellos with the session's ticket),
``status`` or ``stop``. The peer is reaped whenever the session ends: stop, close, timeout,
error, agent shutdown. Limits: handshake slots per address and the login backoff
(:mod:`.admission`), a first byte within FIRST_BYTE and the whole handshake within
``--handshake-timeout``, frame size, session duration (``--max-duration``) and bytes through
the peer (``--max-bytes``). A bad client gets one error frame and is closed; the agent goes
on serving the next one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FlushbenchError, SetupError, UsageError
from ..measure import sink as sinks
from ..measure.protocol import format_addr
from ..metadata import collect_host
from ..procs import PeerProcess
from . import protocol as proto
from .admission import Admission, Pending, address_key
from .protocol import Channel, Closed, Refused

MAX_THREADS = 128  # connections being served or closed; past it a newcomer is refused at once
FRAME_TIMEOUT = 10.0  # seconds an authenticated client may take to finish a started frame
POLL = 0.25  # seconds between checks of the session's deadline, peer and shutdown
DRAIN_BYTES, DRAIN_TIME = 64 * 1024, 0.5  # read what a refused client sent, so close is a FIN
MAX_DURATION = 7 * 86400.0
DEFAULT_DURATION = 6 * 3600.0  # a full suite against one peer fits comfortably
DEFAULT_HANDSHAKE = 5.0  # seconds from the greeting to authenticated: slow clients are cut off
PUSHED_OUT = ("handshake slots full: this was the oldest unauthenticated connection from your "
              "address; try again")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one session may use."""

    max_duration: float = DEFAULT_DURATION
    max_bytes: int | None = None  # None: no cap (a long 10 Gbit/s run moves terabytes)
    handshake_timeout: float = DEFAULT_HANDSHAKE
    frame_cap: int = proto.AGENT_FRAME_CAP

    def __post_init__(self) -> None:
        if not 0 < self.max_duration <= MAX_DURATION:
            raise UsageError(f"--max-duration must be in (0, {MAX_DURATION:.0f}] seconds, "
                             f"got {self.max_duration}")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise UsageError(f"--max-bytes must be >= 1, got {self.max_bytes}")
        if not 0.05 <= self.handshake_timeout <= 60:
            raise UsageError("--handshake-timeout must be in [0.05, 60] seconds, "
                             f"got {self.handshake_timeout}")


def _plain_host(addr: str) -> str:
    """An IPv4-mapped IPv6 address as plain IPv4 (a dual-stack listener reports those)."""
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        if mapped:
            return str(mapped)
    return addr


def _who(addr: Any) -> str:
    return format_addr(str(addr[0]), int(addr[1]))


def _readable(sock: socket.socket, timeout: float) -> bool:
    """Data (or an EOF) waits on ``sock`` within ``timeout`` (poll: no FD_SETSIZE limit)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))


class Agent:
    """The accept loop and the sessions; a thread per connection, one session at a time."""

    def __init__(self, listener: socket.socket, token: bytes, limits: Limits,
                 log: Callable[[str], None] | None = None) -> None:
        self.listener = listener
        self.token = token
        self.limits = limits
        self.log = log or (lambda line: print(f"agent: {line}", file=sys.stderr, flush=True))
        self.admission = Admission(self.log)
        self.stop = threading.Event()
        self._session = threading.Lock()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self.stats = {"connections": 0, "sessions": 0, "peers_started": 0, "errors": 0}

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    # -- accept loop
    def serve_forever(self) -> None:
        self.listener.settimeout(POLL)
        while not self.stop.is_set():
            try:
                conn, addr = self.listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self.stop.is_set():
                    return
                self.log(f"accept failed: {exc.strerror or exc}")
                time.sleep(POLL)  # e.g. out of file descriptors: do not spin
                continue
            self._count("connections")
            with self._lock:
                crowded = len(self._threads) >= MAX_THREADS
            if crowded:
                self._refuse_now(conn, addr)
                continue
            pending = self.admission.admit(conn, _plain_host(str(addr[0])))
            thread = threading.Thread(target=self._handle, args=(conn, addr, pending),
                                      daemon=True)
            with self._lock:
                self._threads.add(thread)
            thread.start()

    def _refuse_now(self, conn: socket.socket, addr: Any) -> None:
        """Too many connections: one non-blocking error frame, then close."""
        self._count("errors")
        self.admission.note(address_key(_plain_host(str(addr[0]))), proto.SLOTS,
                            f"{_who(addr)}: refused (slots): {MAX_THREADS} connections open")
        with conn, contextlib.suppress(OSError):
            conn.setblocking(False)
            conn.send(proto.encode(proto.error_frame(
                proto.SLOTS, "handshake slots full: too many connections; try again")))

    def shutdown(self, grace: float = 10.0) -> None:
        """Stop accepting, end the sessions (their peers are reaped) and wait for them."""
        self.stop.set()
        end = time.monotonic() + grace
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))

    # -- one connection
    def _handle(self, conn: socket.socket, addr: Any, pending: Pending) -> None:
        who = _who(addr)
        final: dict[str, Any] | None = None
        try:
            final = self._serve(conn, who, pending)
        except Refused as exc:
            final = proto.error_frame(exc.code, str(exc))
        except (Closed, OSError) as exc:
            if not pending.evicted.is_set():
                self.log(f"{who}: connection lost: {proto.one_line(exc, 80)}")
        except Exception as exc:  # a bug: say so, keep serving others
            self.log(f"{who}: internal error: {type(exc).__name__}: {proto.one_line(exc, 120)}")
            final = proto.error_frame(proto.INTERNAL, "internal error in the agent")
        finally:
            self.admission.release(pending)  # before the socket is closed
            if pending.evicted.is_set():  # pushed out before it authenticated
                final = proto.error_frame(proto.SLOTS, PUSHED_OUT)
            if final is not None and final.get("op") == "error":
                self._count("errors")
                if final["code"] not in (proto.AUTH, proto.SLOTS) or "seq" in final:
                    self.admission.note(pending.key, str(final["code"]),
                                        f"{who}: refused ({final['code']}): {final['error']}")
            self._finish(conn, final)
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _finish(self, conn: socket.socket, frame: dict[str, Any] | None) -> None:
        """Send the last frame, then close gracefully: FIN, not RST, so it is not lost."""
        with conn, contextlib.suppress(OSError, FlushbenchError):
            if frame is not None:
                conn.settimeout(1.0)
                conn.sendall(proto.encode(frame))
            conn.shutdown(socket.SHUT_WR)
            end, drained = time.monotonic() + DRAIN_TIME, 0
            while drained < DRAIN_BYTES:  # bounded in bytes and time
                left = end - time.monotonic()
                if left <= 0:
                    break
                conn.settimeout(left)
                chunk = conn.recv(16384)
                if not chunk:
                    break
                drained += len(chunk)

    def _serve(self, conn: socket.socket, who: str, pending: Pending) -> dict[str, Any] | None:
        """Handshake, then the session; returns the frame to end with (None: just close)."""
        if self._session.locked():
            raise Refused(proto.BUSY, "agent is busy with another session")
        wait = self.admission.wait_for(pending.key)  # this address failed to log in lately
        if wait > 0 and pending.evicted.wait(wait):
            return None
        if self._session.locked():
            raise Refused(proto.BUSY, "agent is busy with another session")
        deadline = time.monotonic() + self.limits.handshake_timeout
        nonce = proto.new_nonce()
        proto.send_frame(conn, proto.agent_hello(nonce), deadline)
        first = min(proto.FIRST_BYTE, self.limits.handshake_timeout)
        if not _readable(conn, first):
            raise Refused(proto.TIMEOUT, f"no byte of the client's hello within {first:g} s")
        hello = proto.recv_frame(conn, self.limits.frame_cap, deadline)
        try:
            cnonce = proto.check_client_hello(hello, nonce, self.token)
        except Refused as exc:
            if exc.code == proto.AUTH:
                self.admission.failed(pending.key)
            raise
        if not self.admission.release(pending):
            return None  # pushed out just now: it gets the "slots" frame
        self.admission.succeeded(pending.key)
        if not self._session.acquire(blocking=False):
            raise Refused(proto.BUSY, "agent is busy with another session")
        try:
            self._count("sessions")
            self.log(f"{who}: session started")
            proto.send_frame(conn, proto.welcome(self.token, nonce, cnonce), deadline)
            channel = Channel(proto.session_key(self.token, nonce, cnonce), "agent")
            return self._session_loop(conn, who, channel)
        finally:
            self._session.release()  # before the last frame: a client told "bye" may reconnect

    def _session_loop(self, conn: socket.socket, who: str,
                      channel: Channel) -> dict[str, Any] | None:
        limits = self.limits
        end = time.monotonic() + limits.max_duration
        peer: PeerProcess | None = None
        with contextlib.suppress(OSError):  # notice a client host that vanished
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6)):
                if hasattr(socket, name):
                    conn.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
        try:
            while True:  # bounded by the session deadline
                if self.stop.is_set():
                    raise Refused(proto.SHUTDOWN, "the agent is shutting down")
                left = end - time.monotonic()
                if left <= 0:
                    raise Refused(proto.TIMEOUT, "session reached its "
                                  f"{limits.max_duration:g} s limit (--max-duration)")
                if peer is not None and peer.proc.poll() is not None:
                    raise Refused(proto.PEER, f"the peer exited with code {peer.proc.returncode}")
                if not _readable(conn, min(POLL, left)):
                    continue
                msg = channel.check(proto.recv_frame(conn, limits.frame_cap,
                                                     time.monotonic() + FRAME_TIMEOUT))
                op = msg.get("op")
                if op == "start_peer":
                    if peer is not None:
                        raise Refused(proto.PROTOCOL, "a peer is already running in this session")
                    peer = self._start_peer(conn, msg, end, channel)
                    self.log(f"{who}: peer pid {peer.proc.pid} on port {peer.port}")
                elif op == "status":
                    proto.check_fields(msg, {"op"}, "status")
                    with self._lock:
                        reply = {"op": "status", **self.stats, "peer": peer is not None}
                    proto.send_frame(conn, channel.seal(reply), time.monotonic() + FRAME_TIMEOUT)
                elif op == "stop":
                    proto.check_fields(msg, {"op"}, "stop")
                    return channel.seal({"op": "bye"})
                elif op == "hello":
                    raise Refused(proto.PROTOCOL, "hello after the handshake (replayed?)")
                else:
                    raise Refused(proto.PROTOCOL, f"unknown op {proto.short(op)}")
        except Refused as exc:  # the last word is authenticated too
            return channel.seal(proto.error_frame(exc.code, str(exc)))
        except Closed:
            return None
        finally:
            if peer is not None:
                peer.close()
                self.log(f"{who}: session ended, peer pid {peer.proc.pid} reaped")
            else:
                self.log(f"{who}: session ended")

    def _start_peer(self, conn: socket.socket, msg: dict[str, Any], end: float,
                    channel: Channel) -> PeerProcess:
        proto.check_fields(msg, {"op", "cpu", "sink"}, "start_peer")
        sink = msg.get("sink", sinks.DEFAULT)
        if not sinks.known(sink):
            raise Refused(proto.PROTOCOL, f"start_peer: sink must be 'discard' or 'copy', got "
                                          f"{proto.short(sink)}")
        cpu = msg.get("cpu")
        if cpu is not None:
            allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
            if not isinstance(cpu, int) or isinstance(cpu, bool) or cpu not in allowed:
                raise Refused(proto.PROTOCOL, f"start_peer: cpu must be one of "
                                              f"{sorted(allowed)}, got {proto.short(cpu)}")
        local = _plain_host(conn.getsockname()[0])
        client = _plain_host(conn.getpeername()[0])
        try:  # a fresh ticket: PeerProcess makes one and hands it to the peer on its stdin
            peer = PeerProcess(local, cpu=cpu, max_seconds=end - time.monotonic() + 5.0,
                               max_bytes=self.limits.max_bytes, allow_from=client, sink=sink)
        except SetupError as exc:
            raise Refused(proto.PEER, str(exc)) from None
        try:
            self._count("peers_started")
            reply = {"op": "peer", "port": peer.port, "pid": peer.proc.pid,
                     "ticket": peer.ticket, "sink": peer.sink, "meta": _fit(collect_host())}
            proto.send_frame(conn, channel.seal(reply), time.monotonic() + FRAME_TIMEOUT)
        except BaseException:
            peer.close()
            raise
        return peer


def _fit(meta: dict[str, Any]) -> dict[str, Any]:
    """Host metadata that fits one frame (a host with thousands of interfaces would not)."""
    if len(json.dumps(meta)) > proto.CLIENT_FRAME_CAP - 1024:
        meta = {**meta, "interfaces": {"omitted": len(meta.get("interfaces") or {})}}
    return meta


# -------------------------------------------------------------------------- serving

def resolve_bind(bind: str) -> str:
    """``--bind`` as a numeric address (a host name is resolved once, here)."""
    try:
        infos = socket.getaddrinfo(bind, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"--bind {bind!r}: cannot resolve it: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    return str(infos[0][4][0])


def serve(bind: str, port: int, token_file: Path | None, limits: Limits,
          exit_with_stdin: bool = False) -> int:
    """``flushbench agent``: serve until SIGTERM/SIGINT (or stdin closes).

    Bad settings raise FlushbenchError. Prints one JSON readiness line on stdout.
    """
    if token_file is None:
        raise UsageError("flushbench agent needs --token-file F: every client must prove it "
                         "holds that token (make one with: flushbench agent --new-token F, "
                         "then copy F to the client host)")
    token = proto.read_token(token_file)
    host = resolve_bind(bind)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(64)
    except OSError as exc:
        listener.close()
        raise SetupError(f"agent cannot listen on {format_addr(bind, port)}: "
                         f"{exc.strerror or exc}") from None
    agent = Agent(listener, token, limits)
    previous = {sig: signal.signal(sig, lambda *_: agent.stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    if exit_with_stdin:
        threading.Thread(target=_watch_stdin, args=(agent.stop,), daemon=True).start()
    bound = listener.getsockname()
    print(json.dumps({"ready": True, "host": bound[0], "port": bound[1], "pid": os.getpid(),
                      "v": proto.VERSION}), flush=True)
    agent.log(f"listening on {_who(bound)} (protocol {proto.VERSION}, token required)")
    try:
        with listener:
            agent.serve_forever()
    finally:
        agent.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _watch_stdin(stop: threading.Event) -> None:
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    stop.set()
