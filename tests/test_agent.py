"""The agent: control protocol, authentication, limits and peers, with real processes."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flushbench.case import Case
from flushbench.errors import PeerError, ProtocolError, SetupError, UsageError
from flushbench.measure import protocol as wire
from flushbench.measure.session import Session
from flushbench.remote import protocol as proto
from flushbench.remote.client import RemotePeer, SshAgent, read_token

SRC = str(Path(proto.__file__).parents[2])
PR_SET_PDEATHSIG = 1  # linux/prctl.h
TOKEN = secrets.token_hex(32).encode()  # what `flushbench agent --new-token` writes


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    return env


def die_with_parent() -> None:
    """preexec_fn: the agent gets SIGTERM when this test process goes away, even when it is
    killed (its fixtures' clean-up never runs then); the agent's peers follow it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def write_token(path: Path, token: bytes = TOKEN) -> Path:
    path.write_bytes(token + b"\n")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return path


def children(pid: int) -> list[int]:
    """Live child pids of *pid* (the agent's peers)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(p) for p in (task / "children").read_text().split()]
    return out


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """True once /proc/PID is gone (exited *and* reaped), polling up to *timeout*."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.02)
    return False


class AgentProc:
    """``python -m flushbench.agent --port 0 …`` as a child; ready when it says so; reaped."""

    def __init__(self, log: Path, *args: str, prefix: tuple[str, ...] = ()) -> None:
        self.log_path = log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [*prefix, sys.executable, "-m", "flushbench", "agent", "--port", "0", *args],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=child_env(),
                preexec_fn=die_with_parent)
        try:
            assert self.proc.stdout is not None
            readable, _, _ = select.select([self.proc.stdout], [], [], 30)
            line = self.proc.stdout.readline() if readable else b""
            ready = json.loads(line) if line else {}
            if not ready.get("ready"):
                raise RuntimeError(f"agent did not start: {line!r} {self.log()!r}")
        except BaseException:
            self.close()
            raise
        self.host: str = ready["host"]
        self.port: int = ready["port"]
        self.pid: int = ready["pid"]

    @property
    def addr(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def peers(self) -> list[int]:
        return children(self.pid)

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream:
                stream.close()
        return self.proc.returncode


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProc]]:
    """Factory: start agents with the given arguments; all reaped at the end."""
    started: list[AgentProc] = []

    def start(*args: str, token: bytes | None = TOKEN,
              prefix: tuple[str, ...] = ()) -> AgentProc:
        if token is not None:
            args = ("--token-file", str(write_token(tmp_path / f"token{len(started)}", token)),
                    *args)
        agent = AgentProc(tmp_path / f"agent{len(started)}.log", *args, prefix=prefix)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.close()
        assert "Traceback" not in agent.log() and "internal error" not in agent.log()


@pytest.fixture(scope="module")
def token_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProc]:
    """One agent with a token, shared by the tests that leave it as they found it."""
    tmp = tmp_path_factory.mktemp("agent")
    agent = AgentProc(tmp / "agent.log", "--token-file", str(write_token(tmp / "token")))
    yield agent
    agent.close()
    assert "Traceback" not in agent.log() and "internal error" not in agent.log()


class Raw:
    """A hand-driven control connection, for sending what RemotePeer never would."""

    def __init__(self, agent: AgentProc, source: str | None = None) -> None:
        self.sock = socket.create_connection((agent.host, agent.port), timeout=10,
                                             source_address=(source, 0) if source else None)
        self.channel: proto.Channel | None = None
        self.sent_hello: dict[str, Any] = {}

    def recv(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next frame, or None when the agent closed the connection."""
        try:
            return proto.recv_frame(self.sock, proto.CLIENT_FRAME_CAP, time.monotonic() + timeout)
        except (proto.Closed, ConnectionResetError):
            return None

    def send(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(proto.encode(obj))

    def send_body(self, body: bytes) -> None:
        self.sock.sendall(wire.FRAME_HEAD.pack(len(body)) + body)

    def hello(self, token: bytes = TOKEN, **override: Any) -> tuple[bytes, dict[str, Any]]:
        """Read the greeting and answer it; returns the agent's nonce and the hello sent."""
        greeting = self.recv()
        assert greeting and greeting["op"] == "hello", greeting
        nonce = bytes.fromhex(greeting["nonce"])
        msg = {**proto.client_hello(nonce, proto.new_nonce(), token), **override}
        self.send(msg)
        return nonce, msg

    def login(self, token: bytes = TOKEN) -> proto.Channel:
        """Hello, welcome, and the session's channel (its key from both nonces)."""
        nonce, msg = self.hello(token)
        self.sent_hello = msg
        welcome = self.recv()
        assert welcome and welcome["op"] == "welcome", welcome
        self.channel = proto.Channel(
            proto.session_key(token, nonce, bytes.fromhex(msg["cnonce"])), "client")
        return self.channel

    def send_sealed(self, obj: dict[str, Any]) -> None:
        assert self.channel is not None
        self.send(self.channel.seal(obj))

    def recv_sealed(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next frame, its MAC checked (None: closed)."""
        msg = self.recv(timeout)
        assert self.channel is not None
        return None if msg is None else self.channel.check(msg)

    def closed(self, timeout: float = 10.0) -> bool:
        return self.recv(timeout) is None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def assert_serves(agent: AgentProc, token: bytes = TOKEN) -> None:
    """A valid client gets a peer (retrying briefly while a previous session winds down)."""
    end = time.monotonic() + 10
    while True:
        try:
            with RemotePeer(agent.addr, token) as peer:
                assert peer.port > 0 and peer.meta["hostname"] == socket.gethostname()
                break
        except PeerError as exc:
            if "busy" not in str(exc) or time.monotonic() > end:
                raise
            time.sleep(0.05)
    assert agent.alive()


def data_hello(addr: tuple[str, int], ticket: str | None, workload: str = "rr",
               source: str | None = None, **fields: int) -> tuple[socket.socket, dict[str, Any]]:
    """Connect to a peer and complete its HELLO as a Session does (with ``ticket``)."""
    sock = socket.create_connection(addr, timeout=10,
                                    source_address=(source, 0) if source else None)
    hello: dict[str, Any] = {"v": wire.PROTOCOL_VERSION, "workload": workload, "msg_size": 64,
                             "reply": 1, "batch": 1, "rcvbuf": 0, **fields}
    if ticket is not None:
        hello["ticket"] = ticket
    wire.send_frame(sock, hello)
    return sock, wire.recv_frame(sock)


# ------------------------------------------------------------------------- handshake, peer


def test_handshake_ok(start_agent: Callable[..., AgentProc]) -> None:
    """An agent starts a peer and sends its host metadata and the peer's ticket."""
    agent = start_agent()
    with RemotePeer(agent.addr, TOKEN) as peer:
        assert peer.host == "127.0.0.1" and peer.addr == (peer.host, peer.port)
        assert peer.meta["hostname"] == socket.gethostname()
        assert peer.pid in agent.peers()
        assert peer.status()["peers_started"] == 1
        assert wire.is_ticket(peer.ticket)


def test_the_runs_peer_sink_reaches_the_agents_peer(start_agent: Callable[..., AgentProc]
                                                     ) -> None:
    """start_peer asks for "copy" only when wanted; the agent's reply says what its peer does,
    and a stream value through it is confirmed whole."""
    agent = start_agent()
    for how in ("copy", "discard"):
        with RemotePeer(agent.addr, TOKEN, sink=how) as peer:
            assert peer.sink == how
            session = Session.connect(Case("stream", "sendall", 1 << 20), peer.addr, 10.0,
                                      peer.ticket)
            try:
                session.run_value(2)
                assert session.values[-1].bytes == 2 << 20
            finally:
                session.close()


def test_peer_reachable_then_reaped(start_agent: Callable[..., AgentProc]) -> None:
    """The started peer completes a data HELLO; after close() its process is gone."""
    agent = start_agent()
    peer = RemotePeer(agent.addr, TOKEN)
    try:
        sock, ack = data_hello(peer.addr, peer.ticket)
        sock.close()
        assert ack["ok"] and ack["pid"] == peer.pid
    finally:
        peer.close()
    assert not os.path.exists(f"/proc/{peer.pid}")  # close() waits for the agent's "bye"
    assert agent.peers() == []


def test_peer_reaped_when_client_vanishes(start_agent: Callable[..., AgentProc]) -> None:
    """A client that just drops the control connection still gets its peer reaped."""
    agent = start_agent()
    with Raw(agent) as raw:
        raw.login()
        raw.send_sealed({"op": "start_peer"})
        reply = raw.recv_sealed()
        assert reply and reply["op"] == "peer"
    assert wait_gone(reply["pid"])
    assert_serves(agent)


def test_sigterm_reaps_peer(start_agent: Callable[..., AgentProc]) -> None:
    """SIGTERM ends the agent cleanly (exit 0) and its running peer with it."""
    agent = start_agent()
    peer = RemotePeer(agent.addr, TOKEN)
    try:
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(timeout=15) == 0
        assert wait_gone(peer.pid, 5)
    finally:
        peer.close()


# ---------------------------------------------------------------------------------- auth


def test_token_accepted(start_agent: Callable[..., AgentProc]) -> None:
    """With a token on both ends the session is authenticated both ways and a peer starts."""
    agent = start_agent(token=TOKEN)
    with RemotePeer(agent.addr, TOKEN) as peer:
        assert peer.port > 0
    assert TOKEN.decode() not in agent.log()


def test_wrong_token_refused_then_valid_client(token_agent: AgentProc) -> None:
    """A wrong token is refused without starting a peer; a valid client is served next."""
    agent = token_agent
    with pytest.raises(SetupError, match=r"^agent 127\.0\.0\.1:\d+ refused the token$"):
        RemotePeer(agent.addr, secrets.token_hex(32).encode())
    assert agent.peers() == []
    assert_serves(agent, TOKEN)


def test_agent_needs_a_token(tmp_path: Path) -> None:
    """Finding 9: no tokenless agent, on loopback either (any local user could hold it)."""
    proc = subprocess.run([sys.executable, "-m", "flushbench", "agent", "--port", "0"],
                          capture_output=True, text=True, timeout=30, env=child_env())
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "--token-file" in proc.stderr
    assert "--new-token" in proc.stderr and "Traceback" not in proc.stderr


def test_replayed_hello_refused(token_agent: AgentProc) -> None:
    """A valid hello recorded from one session is refused in the next (fresh nonce)."""
    agent = token_agent
    with Raw(agent) as first:
        first.login()
        recorded = first.sent_hello
        first.send_sealed({"op": "stop"})
        assert first.recv_sealed()["op"] == "bye"  # type: ignore[index]
    with Raw(agent) as second:
        assert (second.recv() or {}).get("op") == "hello"  # "bye" came after the release
        second.send(recorded)
        reply = second.recv()
        assert reply and reply["code"] == "auth" and second.closed()
    assert agent.peers() == []
    assert_serves(agent, TOKEN)


def test_reflected_mac_refused() -> None:
    """The agent's proof is not a client proof: the labels differ per direction."""
    na, nc = proto.new_nonce(), proto.new_nonce()
    agent_mac = proto.mac(TOKEN, "agent", na, nc)
    msg = {"op": "hello", "v": proto.VERSION, "cnonce": nc.hex(), "mac": agent_mac}
    with pytest.raises(proto.Refused, match="token was refused"):
        proto.check_client_hello(msg, na, TOKEN)
    msg["mac"] = proto.mac(TOKEN, "client", na, nc)
    assert proto.check_client_hello(msg, na, TOKEN) == nc


@contextlib.contextmanager
def fake_agent(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A one-connection server on loopback that runs *answer* on the accepted socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(10)


def test_client_refuses_other_version() -> None:
    """An agent greeting with another protocol gets a one-line error naming both versions."""
    other = proto.VERSION + 1

    def answer(conn: socket.socket) -> None:
        conn.sendall(proto.encode({"op": "hello", "v": other, "nonce": "00" * 32}))
        conn.recv(100)

    with fake_agent(answer) as addr, pytest.raises(
            ProtocolError, match=rf"^agent \S+ speaks protocol {other}, this flushbench speaks "
                                 rf"{proto.VERSION}$"):
        RemotePeer(addr, TOKEN)


def test_agent_refuses_other_version(start_agent: Callable[..., AgentProc]) -> None:
    """A client hello with another protocol gets a version error frame naming both."""
    agent = start_agent()
    with Raw(agent) as raw:
        raw.hello(v=proto.VERSION + 1)
        reply = raw.recv()
        assert reply == {"op": "error", "code": "version", "error": "client speaks protocol "
                         f"{proto.VERSION + 1}, this agent speaks {proto.VERSION}"}
        assert raw.closed()
    assert_serves(agent)


def test_client_detects_impostor() -> None:
    """An 'agent' that cannot produce the HMAC over both nonces is not trusted."""
    def answer(conn: socket.socket) -> None:
        conn.sendall(proto.encode(proto.agent_hello(proto.new_nonce())))
        proto.recv_frame(conn, 4096, time.monotonic() + 5)
        conn.sendall(proto.encode({"op": "welcome", "mac": "ab" * 32}))
        conn.recv(100)

    with fake_agent(answer) as addr, pytest.raises(SetupError, match="could not prove"):
        RemotePeer(addr, TOKEN)


# ------------------------------------------------------------------------ sessions, limits


def test_busy(start_agent: Callable[..., AgentProc]) -> None:
    """A second client is told at once that the agent is busy; served once the first ends."""
    agent = start_agent(token=TOKEN)
    first = RemotePeer(agent.addr, TOKEN)
    try:
        t0 = time.monotonic()
        with pytest.raises(PeerError, match=r"^agent \S+ is busy with another session"):
            RemotePeer(agent.addr, TOKEN, retry=0)
        assert time.monotonic() - t0 < 2
    finally:
        first.close()
    with RemotePeer(agent.addr, TOKEN) as second:  # no retry: close() waited for "bye"
        assert second.port > 0


def test_oversized_frame_refused(token_agent: AgentProc) -> None:
    """A frame over the cap gets a frame error and a close; the next client is served."""
    agent = token_agent
    with Raw(agent) as raw:
        raw.recv()
        raw.send_body(b"x" * (proto.AGENT_FRAME_CAP + 1))
        reply = raw.recv()
        assert reply and reply["code"] == "frame" and "cap" in reply["error"]
        assert raw.closed()
    with Raw(agent) as raw:  # only the length: the agent does not wait for the body
        raw.recv()
        raw.sock.sendall(wire.FRAME_HEAD.pack(0xFFFFFFFF))
        reply = raw.recv()
        assert reply and reply["code"] == "frame"
    assert_serves(agent, TOKEN)


def _frame(body: bytes) -> Callable[[Raw], None]:
    return lambda raw: (raw.recv(), raw.send_body(body))  # type: ignore[func-returns-value]


def _hello(**override: Any) -> Callable[[Raw], None]:
    return lambda raw: raw.hello(TOKEN, **override)  # type: ignore[func-returns-value]


def _after_auth(*msgs: dict[str, Any]) -> Callable[[Raw], None]:
    def run(raw: Raw) -> None:
        raw.login()
        for i, msg in enumerate(msgs):
            raw.send_sealed(msg)
            if i < len(msgs) - 1:  # all but the last are valid
                assert raw.recv_sealed()["op"] == "peer"  # type: ignore[index]
    return run


@pytest.mark.parametrize(("how", "code"), [
    (_frame(b"not json"), "frame"),
    (_frame(b"\xff\xfe\x00"), "frame"),
    (_frame(b"[1, 2]"), "frame"),
    (_frame(b"[" * 3000), "frame"),
    (_frame(b'{"op": "hello", "v": NaN}'), "frame"),
    (_frame(b""), "frame"),
    (_hello(v="1"), "protocol"),
    (_hello(v=True), "protocol"),
    (_hello(op="start_peer"), "protocol"),
    (_hello(cnonce="xyz"), "protocol"),
    (_hello(cnonce=["00" * 32]), "protocol"),
    (_hello(mac=12), "auth"),
    (_hello(mac=None), "auth"),
    (_hello(extra=1), "protocol"),
    (_after_auth({"op": "format_disk"}), "protocol"),
    (_after_auth({"op": "hello", "v": 1}), "protocol"),
    (_after_auth({"op": "start_peer", "cpu": "0"}), "protocol"),
    (_after_auth({"op": "start_peer", "cpu": 10_000}), "protocol"),
    (_after_auth({"op": "start_peer", "path": "/etc/passwd"}), "protocol"),
    (_after_auth({"op": "start_peer", "sink": "tee"}), "protocol"),
    (_after_auth({"op": "start_peer", "sink": ["copy"]}), "protocol"),
    (_after_auth({"op": "start_peer"}, {"op": "start_peer"}), "protocol"),
    (_after_auth({"op": ["stop"]}), "protocol"),
], ids=["not-json", "not-utf8", "array", "deep-nesting", "nan", "empty", "v-string", "v-bool",
        "op-before-hello", "bad-nonce", "nonce-list", "mac-int", "no-mac", "extra-field",
        "unknown-op", "second-hello", "cpu-string", "cpu-range", "path-field", "sink-name",
        "sink-list", "two-peers", "op-list"])
def test_malformed_frames(token_agent: AgentProc, how: Callable[[Raw], None],
                          code: str) -> None:
    """Each bad message gets one error frame and a close; the agent serves the next client."""
    agent = token_agent
    with Raw(agent) as raw:
        how(raw)
        reply = raw.recv()
        assert reply and reply["op"] == "error" and reply["code"] == code, reply
        assert isinstance(reply["error"], str) and "\n" not in reply["error"]
        assert raw.closed()
    assert_serves(agent, TOKEN)
    assert "Traceback" not in agent.log()


def test_slow_loris_cut_off(start_agent: Callable[..., AgentProc]) -> None:
    """Trickling or silent clients are cut off after the handshake timeout; others get in."""
    agent = start_agent("--handshake-timeout", "1", token=TOKEN)
    silent = Raw(agent, source="127.0.0.2")  # its own address: no slot taken from the others
    with Raw(agent) as trickle:
        nonce = bytes.fromhex(trickle.recv()["nonce"])  # type: ignore[index]
        data = proto.encode(proto.client_hello(nonce, proto.new_nonce(), TOKEN))
        t0 = time.monotonic()
        assert_serves(agent, TOKEN)  # pending handshakes do not hold the session
        with contextlib.suppress(OSError):
            for i in range(len(data)):  # 0.1 s a byte: would take ~17 s
                trickle.sock.sendall(data[i:i + 1])
                readable, _, _ = select.select([trickle.sock], [], [], 0.1)
                if readable:
                    break
        reply = trickle.recv()
        assert time.monotonic() - t0 < 4
        assert reply and reply["code"] == "timeout" and trickle.closed()
    assert silent.recv()["op"] == "hello"  # type: ignore[index]
    assert (silent.recv() or {}).get("code") == "timeout" and silent.closed()
    silent.close()
    assert agent.peers() == []
    assert_serves(agent, TOKEN)


def test_max_duration_ends_session(start_agent: Callable[..., AgentProc]) -> None:
    """--max-duration ends the session and reaps its peer; the next session starts."""
    agent = start_agent("--max-duration", "1")
    peer = RemotePeer(agent.addr, TOKEN)
    try:
        assert wait_gone(peer.pid, 6)
    finally:
        peer.close()
    assert "limit (--max-duration)" in agent.log()
    assert_serves(agent)


def test_max_bytes_enforced(start_agent: Callable[..., AgentProc]) -> None:
    """--max-bytes: the peer serves values within the budget and drops the one past it."""
    agent = start_agent("--max-bytes", "10000")
    with RemotePeer(agent.addr, TOKEN) as peer:
        sock, ack = data_hello(peer.addr, peer.ticket, "stream", msg_size=4096)
        with sock:
            assert ack["ok"]
            sock.sendall(wire.pack_go(2))
            assert sock.recv(1) == wire.READY
            sock.sendall(b"x" * 8192)
            nbytes, _ = wire.DONE.unpack(wire.recv_exact(sock, wire.DONE.size))
            assert nbytes == 8192
            sock.sendall(wire.pack_go(1))  # 8192 + 4096 > 10000
            with pytest.raises((PeerError, OSError)):
                wire.recv_exact(sock, 1)


def test_peer_serves_only_the_session_client(start_agent: Callable[..., AgentProc]) -> None:
    """The peer drops data connections from any address but the control connection's."""
    agent = start_agent()
    with RemotePeer(agent.addr, TOKEN) as peer:
        with pytest.raises((PeerError, OSError)):
            data_hello(peer.addr, peer.ticket, source="127.0.0.2")
        sock, ack = data_hello(peer.addr, peer.ticket)
        sock.close()
        assert ack["ok"]


# ------------------------------------------------------------------------ binding, tokens


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "localhost.invalid"])
def test_bind_without_token_refuses(tmp_path: Path, bind: str) -> None:
    """--bind anywhere without a token, or to an unresolvable name: one-line error."""
    token = ["--token-file", str(write_token(tmp_path / "t"))] if "invalid" in bind else []
    proc = subprocess.run([sys.executable, "-m", "flushbench", "agent", "--bind", bind, "--port",
                           "0", *token], capture_output=True, text=True, timeout=30,
                          env=child_env())
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("flushbench: error:")
    assert ("--token-file" if "invalid" not in bind else "cannot resolve") in proc.stderr


def test_loopback_alias(start_agent: Callable[..., AgentProc]) -> None:
    """127.0.0.0/8 is loopback: an agent on 127.0.0.2 gets its peer bound there."""
    agent = start_agent("--bind", "127.0.0.2")
    with RemotePeer(agent.addr, TOKEN) as peer:
        assert peer.host == "127.0.0.2"
        sock, ack = data_hello(peer.addr, peer.ticket)
        sock.close()
        assert ack["ok"]


def test_ipv6_loopback(start_agent: Callable[..., AgentProc]) -> None:
    """The agent and its peer work on ::1."""
    if not socket.has_ipv6 or not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("no IPv6 on this host")
    agent = start_agent("--bind", "::1")
    with RemotePeer(agent.addr, TOKEN) as peer:
        assert peer.host == "::1"
        sock, ack = data_hello(peer.addr, peer.ticket)
        sock.close()
        assert ack["ok"]


@pytest.mark.parametrize("addr", ["", ":7420", "host:0", "host:http", "host:99999"])
def test_bad_agent_address(addr: str) -> None:
    """A malformed agent address is a UsageError before anything is sent."""
    with pytest.raises(UsageError, match="agent address"):
        RemotePeer(addr, TOKEN)


def test_read_token(tmp_path: Path) -> None:
    """read_token takes a hex token (whitespace stripped, lower-cased); everything else is a
    UsageError naming the file: missing, empty, huge, a directory, a passphrase, too short,
    repetitive, open to other users (it says chmod 600), a FIFO (without blocking)."""
    assert read_token(write_token(tmp_path / "t", b"  " + TOKEN.upper() + b"  ")) == TOKEN
    for name, content in [
            ("empty", b" \n\t"), ("huge", b"a" * 5000),
            ("passphrase", b"correct horse battery staple and more"),
            ("base64", b"q83vEjRWeJCrze8SNFZ4kA==q83vEjRWeJCrze8SNFZ4kA=="),
            ("short", TOKEN[:31]), ("repetitive", b"deadbeef" * 8)]:
        write_token(tmp_path / name, content)
    (tmp_path / "open").write_bytes(TOKEN)
    (tmp_path / "open").chmod(0o644)
    os.mkfifo(tmp_path / "fifo", 0o600)
    for name, why in [("missing", "cannot read"), ("empty", "is empty"), ("huge", "over"),
                      (".", "not a regular file"), ("passphrase", "does not hold a token"),
                      ("base64", "does not hold"), ("short", "does not hold a token"),
                      ("repetitive", "repetitive"), ("open", "chmod 600"),
                      ("fifo", "not a regular file")]:
        path = tmp_path / name
        if name == ".":
            path.chmod(0o700)
        with pytest.raises(UsageError, match=why) as info:
            read_token(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
        if why in ("does not hold a token", "repetitive", "is empty"):
            assert f"--new-token {path}" in str(info.value)


def test_agent_with_missing_token_file_refuses(tmp_path: Path) -> None:
    """An unreadable --token-file stops the agent before it binds, naming the file."""
    missing = tmp_path / "nope"
    proc = subprocess.run([sys.executable, "-m", "flushbench", "agent", "--port", "0",
                           "--token-file", str(missing)], capture_output=True, text=True,
                          timeout=30, env=child_env())
    assert proc.returncode == 2 and str(missing) in proc.stderr and proc.stdout == ""


def test_help() -> None:
    """python -m flushbench.agent --help lists the options."""
    out = subprocess.run([sys.executable, "-m", "flushbench", "agent", "--help"],
                         capture_output=True, text=True, timeout=30, env=child_env()).stdout
    for option in ("--bind", "--port", "--token-file", "--new-token", "--max-duration",
                   "--max-bytes"):
        assert option in out


@pytest.mark.root
def test_namespace_address_needs_token(start_agent: Callable[..., AgentProc],
                                       tmp_path: Path) -> None:
    """Inside an emulated host, --bind 198.18.x.2 refuses without a token and works with one."""
    from flushbench.netlab import Netlab, check_support, in_netns

    try:
        check_support()
    except SetupError as exc:
        pytest.skip(str(exc))
    with Netlab("none") as lab:
        prefix = ("ip", "netns", "exec", lab.server_ns)
        refused = subprocess.run([*prefix, sys.executable, "-m", "flushbench", "agent", "--bind",
                                  lab.server_addr, "--port", "0"], capture_output=True,
                                 text=True, timeout=30, env=child_env())
        assert refused.returncode == 2 and "--token-file" in refused.stderr
        agent = start_agent("--bind", lab.server_addr, token=TOKEN, prefix=prefix)

        def session() -> tuple[str, bool]:
            with RemotePeer(agent.addr, TOKEN) as peer:
                sock, ack = data_hello(peer.addr, peer.ticket)
                sock.close()
                return peer.host, ack["ok"]

        assert in_netns(lab.client_ns, session) == (lab.server_addr, True)
        agent.close()


# ---------------------------------------------------------------------------------- ssh


def test_ssh_agent_command_line() -> None:
    """SshAgent builds 'ssh -T OPTS -- TARGET <one quoted command>' and refuses odd targets."""
    ssh = SshAgent("bench@host-2", "~/.fb token", port=7420, agent_args=("--max-bytes", "1G"))
    assert ssh.argv() == [
        "ssh", "-T", "-o", "BatchMode=yes", "--", "bench@host-2",
        "flushbench agent --bind 0.0.0.0 --port 7420 --exit-with-stdin "
        "--token-file '~/.fb token' --max-bytes 1G"]
    ssh.ready = {"port": 40000}
    assert ssh.addr == "host-2:40000"
    for target in ("", "-oProxyCommand=evil", "a b", "host\n"):
        with pytest.raises(UsageError):
            SshAgent(target, None)


def test_ssh_agent_with_fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a stand-in ssh that runs the command locally: start, serve, stop, reap."""
    fake = tmp_path / "ssh"
    fake.write_text('#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done\nshift 2\n'
                    'exec sh -c "$1"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])
    token = write_token(tmp_path / "token")
    with SshAgent("localhost", str(token), bind="127.0.0.1", connect_host="127.0.0.1",
                  command=(sys.executable, "-m", "flushbench", "agent"), ssh=str(fake)) as ssh:
        agent_pid = ssh.ready["pid"]
        with RemotePeer(ssh.addr, TOKEN) as peer:
            assert peer.port > 0
    assert wait_gone(agent_pid, 5) and wait_gone(peer.pid, 5)
    with pytest.raises(SetupError, match="did not start"):
        SshAgent("localhost", None, command=(sys.executable, "-m", "flushbench", "agent"),
                 ssh=str(fake)).start()  # 0.0.0.0 without a token: refused remotely


@pytest.mark.slow
def test_smoke_run_against_two_agents(start_agent: Callable[..., AgentProc],
                                      tmp_path: Path) -> None:
    """`run --peer A --peer B` writes one normal run per agent, with that agent's metadata."""
    import flushbench
    from test_run import flushbench_cli

    agents = [start_agent(token=TOKEN), start_agent(token=TOKEN)]
    token = write_token(tmp_path / "client-token")
    out = tmp_path / "runs" / "smoke"
    args = ["run", "--suite", "smoke", "--filter", "rr-,wwr-sendall", "--out", str(out),
            "--token-file", str(token), "--quiet"]
    for agent in agents:
        args += ["--peer", agent.addr]
    proc = flushbench_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = sorted((tmp_path / "runs").iterdir())
    assert [r.name for r in runs] == sorted(f"smoke-127.0.0.1-{a.port}" for a in agents)
    for run_dir, agent in zip(runs, sorted(agents, key=lambda a: f"{a.port}")):
        table = flushbench.load(run_dir)
        assert len(table) == 5 and (table["error"] == "").all()  # 3 cases, 2 A/A twins
        assert set(table["transport"]) == {"remote"}
        meta = json.loads((run_dir / "meta.json").read_text())
        assert meta["transport"] == "remote" and meta["peer"]["hostname"]
        assert "session ended" in agent.log()
    for agent in agents:
        assert wait_gone_peers(agent)


def wait_gone_peers(agent: AgentProc, timeout: float = 10.0) -> bool:
    """True once the agent has no peer child left."""
    deadline = time.monotonic() + timeout
    while agent.peers() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not agent.peers()
