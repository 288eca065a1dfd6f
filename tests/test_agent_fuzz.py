"""Fuzzing the agent's control protocol with hypothesis, against a real agent process.

Examples per target: FLUSHBENCH_FUZZ_EXAMPLES (default 60, a few seconds; ``nox -s fuzz`` runs
10,000). Every target checks that the agent stays up, answers each bad client with an error
frame or a close, and never welcomes (or starts a peer for) a client without a valid HMAC;
the module's teardown checks the agent's own count of started peers against the peers the
fuzz clients legitimately got, that a valid client is still served, and that nothing leaked.
Fuzz clients connect from addresses spread over 127.0.0.0/8, so that the agent's per-address
login backoff (tested in test_agent_attacks.py) does not slow the fuzzing down.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from flushbench.measure import protocol as wire
from flushbench.remote import protocol as proto
from flushbench.remote.client import RemotePeer
from test_agent import TOKEN, AgentProc, assert_serves, wait_gone, write_token

EXAMPLES = int(os.environ.get("FLUSHBENCH_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
HANDSHAKE_S = 2.0  # main agent: generous, so a loaded CI machine does not cut valid clients
TRICKLE_S = 0.1  # trickle agent: short, so trickled handshakes land on both sides of it
READ_S = 5.0  # how long a fuzz client waits for the agent's last word


class Tally:
    """What the fuzz clients legitimately got: the agent's own counters must agree."""

    def __init__(self) -> None:
        self.peers = 0
        self.peer_pids: set[int] = set()
        self.recorded_hello: dict[str, Any] = {}


@pytest.fixture(scope="module")
def fuzz_agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[AgentProc, AgentProc, Tally]]:
    """The main and the trickle agent (token required); checked and reaped at the end."""
    tmp = tmp_path_factory.mktemp("fuzz")
    token = str(write_token(tmp / "token"))
    main = AgentProc(tmp / "main.log", "--token-file", token,
                     "--handshake-timeout", str(HANDSHAKE_S))
    try:
        trickle = AgentProc(tmp / "trickle.log", "--token-file", token,
                            "--handshake-timeout", str(TRICKLE_S))
    except BaseException:
        main.close()
        raise
    tally = Tally()
    try:
        with Conn(main) as conn:  # a valid hello to replay in later sessions
            nonce = conn.greeting()
            tally.recorded_hello = proto.client_hello(nonce, proto.new_nonce(), TOKEN)
            conn.send(tally.recorded_hello)
            assert conn.recv()["op"] == "welcome"  # type: ignore[index]
        yield main, trickle, tally
        for agent in (main, trickle):
            check_agent(agent)
        for agent in (main, trickle):
            assert_serves(agent, TOKEN)
            tally.peers += agent is main
        with RemotePeer(main.addr, TOKEN) as peer:
            status = peer.status()
        assert status["peers_started"] == tally.peers + 1, (status, tally.peers)
    finally:
        pids = [main.pid, trickle.pid]
        codes = [main.close(), trickle.close()]
    assert codes == [0, 0], "an agent crashed or did not stop on SIGTERM"
    assert all(wait_gone(pid, 5) for pid in pids)
    leaked = [pid for pid in tally.peer_pids if not wait_gone(pid, 1)]
    assert not leaked, f"peers still running: {leaked}"
    for agent in (main, trickle):
        log = agent.log()
        assert "Traceback" not in log and "internal error" not in log, log[-2000:]


def check_agent(agent: AgentProc) -> None:
    """The agent is up, and every peer it started has been reaped."""
    assert agent.alive(), agent.log()[-2000:]
    end = time.monotonic() + 10
    while agent.peers() and time.monotonic() < end:
        time.sleep(0.02)
    assert agent.peers() == []


SOURCES = (f"127.{a}.{b}.{c}" for a, b, c in itertools.cycle(
    itertools.product(range(1, 255), range(0, 256), range(1, 255))))


class Conn:
    """One fuzz client connection, from the next source address; reads bounded in time."""

    def __init__(self, agent: AgentProc) -> None:
        # before connecting: the agent may accept and start its handshake clock before
        # create_connection returns here (seen under load: a timeout 88.6 ms after a t0 taken
        # just after the connect, with a 100 ms handshake timeout)
        self.t0 = time.monotonic()
        self.sock = socket.create_connection((agent.host, agent.port), timeout=READ_S,
                                             source_address=(next(SOURCES), 0))

    def recv(self, timeout: float = READ_S) -> dict[str, Any] | None:
        try:
            return proto.recv_frame(self.sock, proto.CLIENT_FRAME_CAP, time.monotonic() + timeout)
        except (proto.Closed, ConnectionResetError, BrokenPipeError):
            return None

    def greeting(self) -> bytes:
        msg = self.recv()
        assert msg is not None
        if msg.get("op") == "error":  # a previous example's session is still winding down
            assert msg["code"] in proto.RETRY_CODES, msg
            raise Busy
        assert msg["op"] == "hello" and msg["v"] == proto.VERSION and set(msg) == {
            "op", "v", "nonce"}
        return bytes.fromhex(msg["nonce"])

    def send(self, obj: dict[str, Any]) -> None:
        self.send_raw(proto.encode(obj))

    def send_raw(self, data: bytes) -> bool:
        """Send; False when the agent has already closed (it may, at any point)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def rest(self, shutdown: bool = True) -> list[dict[str, Any]]:
        """Stop sending (FIN unless told not to) and read until the agent closes (bounded)."""
        if shutdown:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
        frames: list[dict[str, Any]] = []
        for _ in range(8):
            try:
                msg = self.recv()
            except proto.Refused as exc:  # the agent never leaves a client hanging
                raise AssertionError(f"agent did not close: {exc}") from None
            if msg is None:
                return frames
            frames.append(msg)
        raise AssertionError(f"agent kept talking: {frames}")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Busy(Exception):
    """The agent was still ending an earlier session: a correct answer, nothing to check."""


def check_answers(frames: list[dict[str, Any]], authed: bool) -> None:
    """Bad clients get at most one error frame, last; never a welcome or a peer. (Frames of
    an authenticated session are checked before: they arrive here without seq and mac.)"""
    ops = [f.get("op") for f in frames]
    event(f"answer: {', '.join(f.get('code', f.get('op')) for f in frames) or 'close'}")
    errors = [f for f in frames if f.get("op") == "error"]
    assert len(errors) <= 1 and (not errors or frames[-1] is errors[0]), frames
    for err in errors:
        assert err["code"] in {proto.BUSY, proto.SLOTS, proto.AUTH, proto.VERSION_MISMATCH,
                               proto.FRAME, proto.PROTOCOL, proto.TIMEOUT}, err
        assert isinstance(err["error"], str) and err["error"].isprintable(), err
    if not authed:
        assert not {"welcome", "peer", "status", "bye"} & set(ops), frames


# ----------------------------------------------------------------------------- strategies

json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=24))
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
hexes = st.text("0123456789abcdefABCDEF", min_size=0, max_size=70)
ops = st.sampled_from(["hello", "start_peer", "status", "stop", "welcome", "error", "", "HELLO"])
proto_dicts = st.fixed_dictionaries({}, optional={
    "op": ops | json_values, "v": st.sampled_from([1, 2, 0, -1, True, 1.0, "1"]) | json_values,
    "cnonce": hexes | json_values, "mac": hexes | json_values, "nonce": hexes,
    "cpu": st.integers(-2, 4) | json_values, "extra": json_values})


def frame_bytes(body: bytes, delta: int) -> bytes:
    """A frame whose length field is off by *delta* (0: honest); huge values overflow the cap."""
    return wire.FRAME_HEAD.pack(max(0, min(len(body) + delta, 0xFFFFFFFF))) + body


bodies = (json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=300)
          | proto_dicts.map(lambda d: json.dumps(d).encode()))
frames = st.tuples(bodies, st.sampled_from([0, 0, 0, -1, 1, 7, proto.AGENT_FRAME_CAP,
                                            0xFFFFFFFF]))


# -------------------------------------------------------------------------------- targets


@FUZZ
@given(data=st.binary(max_size=6000), read_greeting=st.booleans())
@example(data=b"\x00\x00\x00\x05hello", read_greeting=True)
@example(data=b"\xff" * 4, read_greeting=False)
def test_fuzz_random_bytes(fuzz_agents: tuple[AgentProc, AgentProc, Tally], data: bytes,
                           read_greeting: bool) -> None:
    """Random bytes, before or after the greeting: an error frame or a close, never a peer."""
    agent = fuzz_agents[0]
    with Conn(agent) as conn:
        try:
            if read_greeting:
                conn.greeting()
            conn.send_raw(data)
            check_answers(conn.rest(), authed=False)
        except Busy:
            pass
    assert agent.alive() and agent.peers() == []


@FUZZ
@given(sequence=st.lists(frames, min_size=1, max_size=4))
@example(sequence=[(b"[" * 4000, 0)])
@example(sequence=[(b"1" * 4000, 0)])
@example(sequence=[(b'{"op":"hello","v":1}', 5)])
def test_fuzz_frames(fuzz_agents: tuple[AgentProc, AgentProc, Tally],
                     sequence: list[tuple[bytes, int]]) -> None:
    """Frames of any JSON, wrong types, truncated or oversized: refused, never a peer."""
    agent = fuzz_agents[0]
    with Conn(agent) as conn:
        try:
            conn.greeting()
            for body, delta in sequence:
                if not conn.send_raw(frame_bytes(body, delta)):
                    break
            check_answers(conn.rest(), authed=False)
        except Busy:
            pass
    assert agent.alive() and agent.peers() == []


MUTATIONS = ["none", "flip-mac", "agent-label", "other-nonce", "replay", "no-mac", "v2",
             "swap-nonces", "cnonce-is-nonce", "upper-hex"]
after_auth = st.lists(st.sampled_from(["start_peer", "status", "stop", "hello", "welcome",
                                       "unknown", "garbage", "cpu-bad", "unsealed", "forged",
                                       "replayed", "skipped-seq", "reflected"]), max_size=4)
FORGERIES = {"unsealed", "forged", "replayed", "skipped-seq", "reflected"}


def hello_for(nonce: bytes, mutation: str, tally: Tally) -> tuple[dict[str, Any], bool]:
    """A client hello for this session, mutated; True when it should be accepted."""
    cnonce = proto.new_nonce()
    msg = proto.client_hello(nonce, cnonce, TOKEN)
    if mutation == "flip-mac":
        msg["mac"] = ("0" if msg["mac"][0] != "0" else "1") + msg["mac"][1:]
    elif mutation == "agent-label":  # reflect the agent's proof back
        msg["mac"] = proto.mac(TOKEN, "agent", nonce, cnonce)
    elif mutation == "other-nonce":
        msg["mac"] = proto.mac(TOKEN, "client", proto.new_nonce(), cnonce)
    elif mutation == "replay":
        msg = dict(tally.recorded_hello)
    elif mutation == "no-mac":
        msg["mac"] = None
    elif mutation == "v2":
        msg["v"] = proto.VERSION + 1
    elif mutation == "swap-nonces":
        msg["mac"] = proto.mac(TOKEN, "client", cnonce, nonce)
    elif mutation == "cnonce-is-nonce":
        msg = proto.client_hello(nonce, nonce, TOKEN)
    elif mutation == "upper-hex":
        msg["mac"] = msg["mac"].upper()
    return msg, mutation == "none"


OPS = {"start_peer": {"op": "start_peer"}, "status": {"op": "status"}, "stop": {"op": "stop"},
       "hello": {"op": "hello", "v": 1}, "welcome": {"op": "welcome", "mac": None},
       "unknown": {"op": "rm -rf /"}, "cpu-bad": {"op": "start_peer", "cpu": "../../etc"}}


def op_frame(step: str) -> bytes:
    """A frame as sent before the handshake (nothing to seal it with)."""
    return b"\x00\x00\x00\x02{]" if step == "garbage" else proto.encode(OPS[step])


class Sealer:
    """The genuine client's side of a session, and the forgeries tried against it."""

    def __init__(self, nonce: bytes, cnonce: bytes) -> None:
        self.key = proto.session_key(TOKEN, nonce, cnonce)
        self.channel = proto.Channel(self.key, "client")
        self.last = b""

    def frame(self, step: str) -> bytes:
        """``step`` sealed with the session key, or one of the FORGERIES."""
        if step == "garbage":
            return op_frame(step)
        if step == "unsealed":
            return proto.encode({"op": "status"})
        if step == "forged":  # a MAC under some other key
            return proto.encode(proto.Channel(os.urandom(32), "client").seal({"op": "status"}))
        if step == "replayed":  # the last sealed frame again (or a status sealed, sent twice)
            if not self.last:
                self.last = proto.encode(self.channel.seal({"op": "status"}))
                return self.last + self.last
            return self.last
        if step == "skipped-seq":
            self.channel.sent += 1
            return proto.encode(self.channel.seal({"op": "status"}))
        if step == "reflected":  # sealed as if the agent sent it
            return proto.encode(proto.Channel(self.key, "agent").seal({"op": "status"}))
        self.last = proto.encode(self.channel.seal(OPS[step]))
        return self.last


def session_end(steps: list[str]) -> str | None:
    """How a session given ``steps`` must end: "bye", an error code, or None (client left)."""
    started = False
    for step in steps:
        if step in FORGERIES:
            return proto.AUTH
        if step == "stop":
            return "bye"
        if step == "garbage":
            return proto.FRAME
        if step == "start_peer" and not started:
            started = True
        elif step != "status":
            return proto.PROTOCOL  # a second peer, a hello, a welcome, an unknown op, a bad cpu
    return None


@FUZZ
@given(before=st.just([]) | st.lists(st.sampled_from(["start_peer", "status", "stop",
                                                      "welcome"]), min_size=1, max_size=2),
       mutation=st.just("none") | st.sampled_from(MUTATIONS), steps=after_auth)
@example(before=[], mutation="replay", steps=["start_peer"])
@example(before=["start_peer"], mutation="none", steps=["start_peer"])
@example(before=[], mutation="none", steps=["start_peer", "status", "stop"])
def test_fuzz_handshake(fuzz_agents: tuple[AgentProc, AgentProc, Tally], before: list[str],
                        mutation: str, steps: list[str]) -> None:
    """Reordered, replayed, reflected or forged handshakes: only the genuine one gets in."""
    agent, _, tally = fuzz_agents
    with Conn(agent) as conn:
        try:
            nonce = conn.greeting()
        except Busy:
            return
        for step in before:  # out of order: anything before the hello is refused
            conn.send_raw(op_frame(step))
        hello, genuine = hello_for(nonce, mutation, tally)
        conn.send(hello)
        authed = genuine and not before
        frames: list[dict[str, Any]] = []
        if authed:
            reply = conn.recv()
            if reply is not None and reply.get("op") == "error":  # busy after the handshake
                assert reply["code"] == "busy", reply
                return
            assert reply is not None and reply["op"] == "welcome", reply
            cnonce = bytes.fromhex(hello["cnonce"])
            assert proto.mac_ok(TOKEN, "agent", nonce, cnonce, reply["mac"])
            sealer = Sealer(nonce, cnonce)
            for step in steps:
                if not conn.send_raw(sealer.frame(step)):
                    break
            agent_side = proto.Channel(sealer.key, "client")  # every answer carries its MAC
            frames += [agent_side.check(f) for f in conn.rest()]
            end = session_end(steps)
            event(f"session ends with: {end}")
            last = frames[-1] if frames else {}
            if end == "bye":
                assert last.get("op") == "bye", frames
            elif end is None:
                assert "error" not in [f.get("op") for f in frames], frames
            else:
                assert last.get("op") == "error" and last["code"] == end, (steps, frames)
        else:
            frames += conn.rest()
    check_answers(frames, authed)
    event(f"authenticated: {authed}")
    tally.peers += sum(f.get("op") == "peer" for f in frames)
    tally.peer_pids.update(f["pid"] for f in frames if f.get("op") == "peer")
    assert agent.alive()
    if not authed:
        assert agent.peers() == []


@FUZZ
@given(genuine=st.booleans(), cuts=st.lists(st.integers(0, 260), max_size=6),
       delays=st.lists(st.floats(0, 0.03), min_size=7, max_size=7), stop_early=st.booleans())
@example(genuine=True, cuts=[1, 2, 3, 4, 5, 6], delays=[0.03] * 7, stop_early=False)
@example(genuine=True, cuts=[], delays=[0.0] * 7, stop_early=False)
@example(genuine=False, cuts=[3], delays=[0.0] * 7, stop_early=True)
def test_fuzz_trickle(fuzz_agents: tuple[AgentProc, AgentProc, Tally], genuine: bool,
                      cuts: list[int], delays: list[float], stop_early: bool) -> None:
    """Handshakes trickled in pieces: in only if genuine; cut off (timeout) when too slow."""
    _, agent, _ = fuzz_agents
    with Conn(agent) as conn:
        try:
            nonce = conn.greeting()
        except Busy:
            return
        cnonce = proto.new_nonce()
        hello = proto.client_hello(nonce, cnonce, TOKEN if genuine else b"0" * 64)
        sealer = Sealer(nonce, cnonce)
        data = proto.encode(hello) + sealer.frame("status") + sealer.frame("stop")
        end = len(proto.encode(hello)) // 2 if stop_early else len(data)  # early: half a hello
        points = sorted({min(c, end) for c in cuts} | {0, end})
        for (a, b), pause in zip(pairwise(points), delays, strict=False):  # <= 7 pairs
            if not conn.send_raw(data[a:b]):
                break  # the agent has closed: it may cut a slow client off at any point
            time.sleep(pause)
        frames = conn.rest(shutdown=not stop_early)
        elapsed = time.monotonic() - conn.t0
    ops = [f.get("op") for f in frames]
    codes = [f.get("code") for f in frames if f.get("op") == "error"]
    if "welcome" in ops:
        event("answer: welcome, status, bye")
        assert genuine and not stop_early and ops == ["welcome", "status", "bye"], frames
    else:
        check_answers(frames, authed=False)
        # busy and slots: the answers worth a retry (proto.RETRY_CODES); "slots" when earlier
        # examples' connections still hold the handshake slots and this one is the oldest.
        retry = [[code] for code in proto.RETRY_CODES]
        allowed = [[], ["timeout"], *retry] + ([["auth"]] if not genuine else [])
        if stop_early:
            allowed = [["timeout"], *retry]  # silence is always cut off, with a frame
        assert codes in allowed, (genuine, stop_early, frames)
    if codes == ["timeout"]:
        assert TRICKLE_S * 0.9 <= elapsed < TRICKLE_S + 5.0, (elapsed, frames)
    assert agent.alive() and agent.peers() == []

