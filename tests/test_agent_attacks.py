"""Issue 12, findings 1, 8 and 9: the attacks on the agent, replayed against a real agent.

Every connection here is real TCP on loopback. 127.0.0.0/8 is all local on Linux, so an
"attacker" binds 127.0.0.x as its source address where it should not share the client's.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flushbench.errors import SetupError, UsageError
from flushbench.remote import protocol as proto
from flushbench.remote.client import AgentBusy, RemotePeer, read_token
from test_agent import TOKEN, AgentProc, Raw, assert_serves, child_env, start_agent, write_token

__all__ = ["start_agent"]  # the fixture, imported for the tests below


def flushbench(*args: str, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    def set_umask() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run([sys.executable, "-m", "flushbench", *args], capture_output=True,
                          text=True, timeout=60, env=child_env(), preexec_fn=set_umask)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("flushbench: error: ")
    return proc.stderr


@pytest.fixture
def idle_connections() -> Iterator[list[Raw]]:
    """A list the test fills with connections; all closed at the end."""
    held: list[Raw] = []
    yield held
    for raw in held:
        raw.close()


def last_word(raw: Raw) -> dict[str, object]:
    """The agent's last frame to ``raw`` before it closed (reads at most 3 frames)."""
    last: dict[str, object] = {}
    for _ in range(3):
        frame = raw.recv()
        if frame is None:
            return last
        last = frame
    raise AssertionError(f"the agent kept talking: {last}")


# ------------------------------------------------------------------- 1: handshake slots


def test_idle_connections_do_not_lock_out_the_client(
        start_agent: Callable[..., AgentProc], idle_connections: list[Raw]) -> None:
    """Finding 1: five idle connections (here eight, from the client's own address, and the
    attacker reconnecting all along) no longer lock out a client with the token: each
    newcomer pushes out the oldest unauthenticated connection."""
    agent = start_agent()
    idle_connections += [Raw(agent) for _ in range(8)]
    stop = threading.Event()

    def reconnect() -> None:  # the attacker keeps opening idle connections (bounded)
        for _ in range(100):
            if stop.wait(0.2):
                return
            idle_connections.append(Raw(agent))

    attacker = threading.Thread(target=reconnect, daemon=True)
    attacker.start()
    try:
        t0 = time.monotonic()
        for _ in range(3):  # every time, not once by luck
            with RemotePeer(agent.addr, TOKEN) as peer:
                assert peer.port > 0
        assert time.monotonic() - t0 < 20
    finally:
        stop.set()
        attacker.join(10)
    words = [last_word(r) for r in idle_connections[:6]]
    assert all(w.get("code") == proto.SLOTS for w in words), words  # the oldest went first
    assert agent.peers() == []


def test_attacker_address_has_its_own_slots(start_agent: Callable[..., AgentProc],
                                            idle_connections: list[Raw]) -> None:
    """Twenty idle connections from 127.0.0.2 take nothing from a client on 127.0.0.1: it
    gets in at once, without a retry; the attacker keeps two slots, the rest are pushed out
    with a distinct "handshake slots full" error."""
    agent = start_agent("--handshake-timeout", "10")
    idle_connections += [Raw(agent, source="127.0.0.2") for _ in range(20)]
    with RemotePeer(agent.addr, TOKEN, retry=0) as peer:
        assert peer.port > 0
    words = [last_word(r) for r in idle_connections]
    assert all(w.get("code") == proto.SLOTS for w in words[:18]), words
    assert all("handshake slots full" in str(w.get("error")) for w in words[:18])
    for word in words[18:]:  # the newest two kept their slots: cut off later for silence
        assert word.get("code") in (proto.TIMEOUT, proto.BUSY), word  # (or told "busy")
    log = agent.log()
    assert len(re.findall("handshake slots full", log)) <= 2, log  # rate-limited log lines


def test_first_byte_due_within_a_second(start_agent: Callable[..., AgentProc]) -> None:
    """A connection that says nothing after the greeting is cut off after about 1 s, though
    the whole handshake may take --handshake-timeout (10 s here)."""
    agent = start_agent("--handshake-timeout", "10")
    t0 = time.monotonic()
    with Raw(agent) as silent:
        assert (silent.recv() or {}).get("op") == "hello"
        reply = silent.recv(timeout=10)
        elapsed = time.monotonic() - t0
        assert reply and reply["code"] == proto.TIMEOUT and "1 s" in reply["error"], reply
        assert 0.95 <= elapsed < 6, elapsed  # not the 10 s of --handshake-timeout
        assert silent.closed()
    assert_serves(agent)


def test_client_retries_busy_with_backoff(start_agent: Callable[..., AgentProc]) -> None:
    """A client told "busy" asks again, backing off, until the session ends (and for no
    longer than its retry window)."""
    agent = start_agent()
    first = RemotePeer(agent.addr, TOKEN)
    closer = threading.Timer(1.5, first.close)
    closer.start()
    try:
        t0 = time.monotonic()
        with RemotePeer(agent.addr, TOKEN, retry=20) as second:
            waited = time.monotonic() - t0
            refused = second.status()["errors"]
        assert 1.3 <= waited < 15, waited
        assert 2 <= refused <= 12, refused  # asked a few times (backoff), not spinning
    finally:
        closer.join(15)
        first.close()
    with RemotePeer(agent.addr, TOKEN) as holder:
        t0 = time.monotonic()
        with pytest.raises(AgentBusy, match="busy with another session"):
            RemotePeer(agent.addr, TOKEN, retry=1.0)
        # the whole window is used (it once gave up after 0.35 s: the next pause would
        # have passed the window's end), and no more than that
        assert 1.0 <= time.monotonic() - t0 < 5
        assert holder.port > 0


# ------------------------------------------------------------------- 8: authentication


def test_new_token(tmp_path: Path) -> None:
    """`agent --new-token F` writes 32 random bytes as hex, mode 0600 whatever the umask;
    it never overwrites a file; agent and client accept what it wrote."""
    path = tmp_path / "token"
    proc = flushbench("agent", "--new-token", str(path), umask=0)
    assert proc.returncode == 0, proc.stderr
    assert str(path) in proc.stdout
    assert (path.stat().st_mode & 0o777) == 0o600
    text = path.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}\n", text)
    assert read_token(path) == text.strip().encode()
    assert one_line_error(flushbench("agent", "--new-token", str(path)))
    assert path.read_text() == text  # untouched
    other = tmp_path / "other"
    assert flushbench("agent", "--new-token", str(other)).returncode == 0
    assert other.read_text() != text
    assert "cannot create token file" in one_line_error(
        flushbench("agent", "--new-token", str(tmp_path / "no" / "dir")))


def test_passphrase_token_refused(tmp_path: Path) -> None:
    """Finding 8: a sniffed handshake let a 28-byte passphrase be confirmed offline. Only
    random tokens of 128 bits or more are taken now, by the agent and by the client."""
    path = write_token(tmp_path / "token", b"correct horse battery staple")  # 28 bytes
    err = one_line_error(flushbench("agent", "--port", "0", "--token-file", str(path)))
    assert "does not hold a token" in err and f"--new-token {path}" in err
    err = one_line_error(flushbench("run", "--suite", "smoke", "--peer", "127.0.0.1:9",
                                    "--token-file", str(path), "--quiet"))
    assert "does not hold a token" in err


def test_token_file_open_to_others_refused_at_both_ends(tmp_path: Path) -> None:
    """A token file group or others may read: both ends refuse it, saying chmod 600."""
    path = write_token(tmp_path / "token")
    path.chmod(0o640)
    err = one_line_error(flushbench("agent", "--port", "0", "--token-file", str(path)))
    assert f"chmod 600 {path}" in err
    err = one_line_error(flushbench("run", "--suite", "smoke", "--peer", "127.0.0.1:9",
                                    "--token-file", str(path), "--quiet"))
    assert f"chmod 600 {path}" in err
    with pytest.raises(UsageError, match="chmod 600"):
        read_token(path)


def test_wrong_logins_back_off(start_agent: Callable[..., AgentProc]) -> None:
    """Finding 8: 20 wrong logins took 10 ms. Each failure from an address now delays that
    address's next greeting; the log gets a line now and then, not one per attempt; the
    holder of the token still gets in."""
    agent = start_agent()
    wrong = secrets.token_hex(32).encode()
    t0 = time.monotonic()
    for _ in range(20):
        with pytest.raises(SetupError, match="refused the token"):
            RemotePeer(agent.addr, wrong, retry=0)
    elapsed = time.monotonic() - t0
    assert elapsed > 1.0, elapsed  # 100 times the old 10 ms (about 4 s: 10 ms doubling to 0.25)
    lines = [ln for ln in agent.log().splitlines() if "login refused" in ln]
    assert 1 <= len(lines) <= 3 and "in a row" in lines[0], lines
    assert_serves(agent)


def test_forged_and_replayed_frames_refused(start_agent: Callable[..., AgentProc]) -> None:
    """Finding 8: control frames after the handshake were not authenticated. Now a frame
    without the session's MAC, or a replayed one (same session or an earlier one), is
    refused with an authenticated "auth" error, and the session (with its peer) ends."""
    agent = start_agent()
    with Raw(agent) as old:
        old.login()
        recorded = old.channel.seal({"op": "start_peer"})  # type: ignore[union-attr]
        old.send(recorded)
        assert (old.recv_sealed() or {}).get("op") == "peer"
        old.send_sealed({"op": "stop"})
        assert (old.recv_sealed() or {}).get("op") == "bye"

    def attempt(tamper: Callable[[Raw], None]) -> dict[str, object]:
        with Raw(agent) as raw:
            raw.login()
            raw.send_sealed({"op": "start_peer"})
            peer = raw.recv_sealed()
            assert peer and peer["op"] == "peer"
            tamper(raw)
            reply = raw.recv_sealed()  # the agent's last word carries its MAC too
            assert reply is not None and raw.closed()
        assert wait_no_peers(agent)
        return reply

    def replayed(raw: Raw) -> None:
        frame = raw.channel.seal({"op": "status"})  # type: ignore[union-attr]
        raw.send(frame)
        assert (raw.recv_sealed() or {}).get("op") == "status"
        raw.send(frame)

    def flipped(raw: Raw) -> None:
        raw.send({**raw.channel.seal({"op": "status"}), "op": "stop"})  # type: ignore[union-attr]

    def reflected(raw: Raw) -> None:
        assert raw.channel is not None
        mirror = proto.Channel(raw.channel.key, "agent")
        mirror.sent = raw.channel.sent
        raw.send(mirror.seal({"op": "status"}))

    forgeries: dict[str, Callable[[Raw], None]] = {
        "unsealed": lambda raw: raw.send({"op": "status"}),
        "other key": lambda raw: raw.send(proto.Channel(os.urandom(32), "client").seal(
            {"op": "status"})),
        "earlier session": lambda raw: raw.send(recorded),
        "replayed": replayed, "flipped op": flipped, "reflected": reflected}
    for name, tamper in forgeries.items():
        reply = attempt(tamper)
        assert reply["op"] == "error" and reply["code"] == proto.AUTH, (name, reply)
    assert_serves(agent)


def wait_no_peers(agent: AgentProc, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while agent.peers() and time.monotonic() < end:
        time.sleep(0.02)
    return not agent.peers()


# --------------------------------------------------------------------- 9: tokenless agent


def test_tokenless_agent_refused(tmp_path: Path) -> None:
    """Finding 9: a tokenless agent on loopback let any local user hold the one session for
    up to 6 h. There is no tokenless agent any more, on loopback either."""
    for bind in ("127.0.0.1", "::1", "0.0.0.0"):
        err = one_line_error(flushbench("agent", "--bind", bind, "--port", "0"))
        assert "--token-file" in err and "--new-token" in err
    err = one_line_error(flushbench("run", "--suite", "smoke", "--peer", "127.0.0.1:9"))
    assert "--token-file" in err


def test_local_user_without_token_cannot_hold_the_session(
        start_agent: Callable[..., AgentProc]) -> None:
    """Another local user (no token) connecting to a loopback agent gets no session: the
    one who holds the token still does."""
    agent = start_agent()
    with Raw(agent, source="127.0.0.3") as intruder:
        intruder.hello(mac=None)
        reply = intruder.recv()
        assert reply and reply["code"] == proto.AUTH and intruder.closed()
    with Raw(agent, source="127.0.0.3") as intruder:
        assert (intruder.recv() or {}).get("op") == "hello"
        intruder.send({"op": "start_peer"})
        reply = intruder.recv()
        assert reply and reply["code"] == proto.PROTOCOL and intruder.closed()
    assert agent.peers() == []
    with RemotePeer(agent.addr, TOKEN, retry=0) as peer:
        assert peer.port > 0
    with pytest.raises(SetupError, match="refused the token"):
        RemotePeer(agent.addr, secrets.token_hex(32).encode(), retry=0)
