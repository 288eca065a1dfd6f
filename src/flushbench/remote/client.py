"""The client side of ``flushbench agent``: a remote peer used exactly like a PeerProcess.

    with RemotePeer("bench-2:7420", read_token("~/.flushbench-token")) as peer:
        run_against(peer.addr, peer.meta, peer.ticket)

An agent that is busy, or whose handshake slots are full, is asked again with backoff
(0.1 s doubling to 2 s, with jitter; the last pause ends with the window) for ``retry``
seconds. Agents can be started over the system ``ssh`` client with :class:`SshAgent`.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import select
import shlex
import socket
import subprocess
import tempfile
import time
from typing import Any

from .. import procs
from ..errors import FlushbenchError, PeerError, ProtocolError, SetupError, UsageError
from ..measure import sink as sinks
from ..measure.protocol import format_addr, is_ticket, parse_addr
from . import protocol as proto
from .protocol import Channel, Closed, Refused, read_token

__all__ = ["AgentBusy", "RemotePeer", "SshAgent", "read_token"]

RETRY_S = 10.0  # how long to keep asking an agent that is busy or full
RETRY_FIRST, RETRY_MAX, MAX_ATTEMPTS = 0.1, 2.0, 64


class AgentBusy(PeerError):
    """The agent is busy with another session, or its handshake slots are full."""


class RemotePeer:
    """A peer started by a remote agent: connect, authenticate, ``start_peer``; always stopped.

    After construction: ``host``, ``port``, ``addr`` (host, port), ``meta`` (the agent host's
    metadata), ``pid`` (the peer's pid on the agent host), ``ticket`` (what every data hello
    to it must carry), ``sink`` (how the peer takes in one-way data: measure/sink.py; an
    agent from before the sink was sent copies). ``close()`` ends the session; the agent
    reaps the peer before it answers, so the agent is free again when it returns.
    """

    def __init__(self, addr: str, token: bytes, timeout: float = 10.0, *,
                 cpu: int | None = None, retry: float = RETRY_S, sink: str = sinks.DEFAULT
                 ) -> None:
        try:
            host, port = parse_addr(addr.strip(), proto.DEFAULT_PORT)
        except ValueError as exc:
            raise UsageError(f"agent address: {exc}") from None
        if not host:
            raise UsageError(f"agent address {addr!r} has no host; expected HOST[:PORT]")
        self.agent = format_addr(host, port)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._channel: Channel | None = None
        self.host, self.port, self.pid, self.ticket = host, 0, 0, ""
        self.sink = sink
        self.meta: dict[str, Any] = {}
        end, delay = time.monotonic() + retry, RETRY_FIRST
        for _ in range(MAX_ATTEMPTS):  # bounded in attempts and in time
            try:
                self._attempt(host, port, token, cpu, sink)
                return
            except AgentBusy:
                self.close()
                left = end - time.monotonic()
                if left <= 0:
                    raise
                # the last pause is cut to the window's end: the window is used whole
                time.sleep(min(delay * random.uniform(0.5, 1.0), left))
                delay = min(2 * delay, RETRY_MAX)
            except BaseException:
                self.close()
                raise
        raise AgentBusy(f"agent {self.agent} stayed busy for {MAX_ATTEMPTS} attempts")

    def _attempt(self, host: str, port: int, token: bytes, cpu: int | None,
                 sink: str = sinks.DEFAULT) -> None:
        try:
            self._sock = socket.create_connection((host, port), timeout=self.timeout)
        except OSError as exc:
            raise PeerError(f"cannot reach agent {self.agent}: "
                            f"{exc.strerror or exc}") from None
        self._start(self._sock, token, cpu, time.monotonic() + self.timeout, sink)

    @property
    def addr(self) -> tuple[str, int]:
        return self.host, self.port

    def _recv(self, sock: socket.socket, deadline: float, expect: str) -> dict[str, Any]:
        try:
            msg = proto.recv_frame(sock, proto.CLIENT_FRAME_CAP, deadline)
        except Refused as exc:
            if exc.code == proto.TIMEOUT:
                raise PeerError(f"agent {self.agent} did not answer within "
                                f"{self.timeout:g} s") from None
            raise ProtocolError(f"agent {self.agent} sent a bad frame: {exc}") from None
        except Closed:
            raise PeerError(f"agent {self.agent} closed the connection") from None
        except OSError as exc:
            raise PeerError(f"agent {self.agent}: {exc.strerror or exc}") from None
        if self._channel is not None:  # after the welcome: every frame is MACed
            try:
                msg = self._channel.check(msg)
            except Refused as exc:
                raise ProtocolError(f"agent {self.agent}: {exc}") from None
        if msg.get("op") == "error":
            raise self._error(msg)
        if msg.get("op") != expect:
            raise ProtocolError(f"agent {self.agent} answered {proto.short(msg.get('op'))}, "
                                f"expected {expect}")
        return msg

    def _error(self, msg: dict[str, Any]) -> Exception:
        code, text = msg.get("code"), proto.one_line(msg.get("error", "no message"))
        if code == proto.BUSY:
            return AgentBusy(f"agent {self.agent} is busy with another session; "
                             "try again when it ends")
        if code == proto.SLOTS:
            return AgentBusy(f"agent {self.agent}: handshake slots full (other clients are "
                             "connecting); try again")
        if code == proto.AUTH:
            return SetupError(f"agent {self.agent} refused the token")
        if code == proto.VERSION_MISMATCH:
            return ProtocolError(f"agent {self.agent} refused the hello: {text}")
        return PeerError(f"agent {self.agent}: {text}")

    def _send(self, sock: socket.socket, obj: dict[str, Any], deadline: float) -> None:
        if self._channel is not None:
            obj = self._channel.seal(obj)
        try:
            proto.send_frame(sock, obj, deadline)
        except Refused:
            raise PeerError(f"agent {self.agent} did not read within {self.timeout:g} s") from None
        except OSError as exc:
            raise PeerError(f"agent {self.agent}: {exc.strerror or exc}") from None

    def _start(self, sock: socket.socket, token: bytes, cpu: int | None,
               deadline: float, sink: str = sinks.DEFAULT) -> None:
        greeting = self._recv(sock, deadline, "hello")
        v = greeting.get("v")
        if v != proto.VERSION:
            raise ProtocolError(f"agent {self.agent} speaks protocol {proto.short(v, 24)}, "
                                f"this flushbench speaks {proto.VERSION}")
        try:
            nonce = proto.parse_nonce(greeting.get("nonce"), "nonce")
        except Refused as exc:
            raise ProtocolError(f"agent {self.agent} sent a bad hello: {exc}") from None
        cnonce = proto.new_nonce()
        self._send(sock, proto.client_hello(nonce, cnonce, token), deadline)
        welcome = self._recv(sock, deadline, "welcome")
        if not proto.mac_ok(token, "agent", nonce, cnonce, welcome.get("mac")):
            raise SetupError(f"agent {self.agent} could not prove it holds the token "
                             "(a different token, or not your agent)")
        self._channel = Channel(proto.session_key(token, nonce, cnonce), "client")
        self._send(sock, {"op": "start_peer", **({"cpu": cpu} if cpu is not None else {}),
                          **({"sink": sink} if sink != sinks.DEFAULT else {})}, deadline)
        reply = self._recv(sock, deadline, "peer")
        port, pid, meta = reply.get("port"), reply.get("pid"), reply.get("meta")
        if (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536
                or not isinstance(meta, dict) or not is_ticket(reply.get("ticket"))):
            raise ProtocolError(f"agent {self.agent} sent a bad peer reply "
                                f"(port {proto.short(port)})")
        self.host = sock.getpeername()[0]  # the address that reached the agent, resolved
        self.port, self.meta, self.ticket = port, meta, str(reply["ticket"])
        self.pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else 0
        said = reply.get("sink")
        self.sink = str(said) if sinks.known(said) else sinks.UNRECORDED
        sock.settimeout(None)

    def status(self) -> dict[str, Any]:
        """The agent's counters: connections, sessions, peers_started, errors (frames sent)."""
        if self._sock is None:
            raise PeerError(f"the session with agent {self.agent} is closed")
        deadline = time.monotonic() + self.timeout
        self._send(self._sock, {"op": "status"}, deadline)
        reply = self._recv(self._sock, deadline, "status")
        self._sock.settimeout(None)
        return reply

    def close(self) -> None:
        """End the session: ``stop``, wait for the agent's ``bye`` (peer reaped), close."""
        sock, self._sock = self._sock, None
        channel, self._channel = self._channel, None
        if sock is None:
            return
        with sock, contextlib.suppress(OSError, FlushbenchError):
            deadline = time.monotonic() + max(self.timeout, 8.0)  # the agent waits 5 s for it
            if self.port and channel is not None:  # a session: say goodbye; else just close
                proto.send_frame(sock, channel.seal({"op": "stop"}), deadline)
                for _ in range(4):  # bounded: bye, or an error frame, or close
                    if proto.recv_frame(sock, proto.CLIENT_FRAME_CAP, deadline).get("op") in (
                            "bye", "error"):
                        break

    def __enter__(self) -> RemotePeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SshAgent:
    """``flushbench agent`` started on ``target`` through the system ssh client.

    ``token_file`` is a path *on the remote host*. The agent runs with ``--exit-with-stdin``:
    closing ssh's stdin (``close()``) makes it reap its peers and exit, and a dropped ssh
    connection does the same. ``addr`` is the ``HOST:PORT`` to give :class:`RemotePeer`.
    """

    def __init__(self, target: str, token_file: str | None, *, bind: str = "0.0.0.0",
                 port: int = 0, connect_host: str | None = None,
                 command: tuple[str, ...] = ("flushbench", "agent"),
                 agent_args: tuple[str, ...] = (), ssh: str = "ssh",
                 ssh_options: tuple[str, ...] = ("-o", "BatchMode=yes"),
                 ready_timeout: float = 30.0) -> None:
        if not target or target.startswith("-") or any(c.isspace() or not c.isprintable()
                                                        for c in target):
            raise UsageError(f"ssh target {target!r}: expected [USER@]HOST")
        self.target = target
        self.token_file, self.bind, self.port = token_file, bind, port
        self.connect_host = connect_host or target.rpartition("@")[2]
        self.command, self.agent_args = command, agent_args
        self.ssh, self.ssh_options, self.ready_timeout = ssh, ssh_options, ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self._stderr: io.BufferedRandom | None = None

    def remote_command(self) -> list[str]:
        argv = [*self.command, "--bind", self.bind, "--port", str(self.port),
                "--exit-with-stdin"]
        if self.token_file is not None:
            argv += ["--token-file", self.token_file]
        return argv + list(self.agent_args)

    def argv(self) -> list[str]:
        """The local command line: ssh's options, ``--``, the target, one quoted command."""
        return [self.ssh, "-T", *self.ssh_options, "--", self.target,
                shlex.join(self.remote_command())]

    @property
    def addr(self) -> str:
        return format_addr(self.connect_host, int(self.ready["port"]))

    def start(self) -> SshAgent:
        self._stderr = tempfile.TemporaryFile()  # the agent logs here; closed in close()
        try:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._stderr)
        except OSError as exc:
            raise SetupError(f"cannot run {self.ssh}: {exc.strerror or exc}") from None
        try:
            self.ready = self._read_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _read_ready(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        assert self._stderr is not None  # start() made both
        readable, _, _ = select.select([self.proc.stdout], [], [], self.ready_timeout)
        line = self.proc.stdout.readline(4096) if readable else b""
        with contextlib.suppress(ValueError):
            ready = json.loads(line)
            if isinstance(ready, dict) and ready.get("ready") and isinstance(
                    ready.get("port"), int):
                return ready
        self.proc.poll()
        self._stderr.seek(0)
        lines = self._stderr.read(65536).decode(errors="replace").strip().splitlines()
        why = proto.one_line(lines[-1]) if lines else (
            f"no readiness line within {self.ready_timeout:g} s" if not line
            else f"unexpected output {line[:80]!r}")
        raise SetupError(f"agent on {self.target} did not start: {why}")

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()  # the agent's --exit-with-stdin: it reaps and exits
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                procs.stop(proc)
            with contextlib.suppress(OSError):
                if proc.stdout:
                    proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> SshAgent:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()
