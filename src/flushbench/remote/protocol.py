"""The agent's control protocol: capped JSON frames, a versioned hello, HMAC challenge-response,
then a MAC on every frame.

    client                                        agent
    connect                                   →
                                              ←  {"op":"hello","v":2,"nonce":Na}
                                                 (or {"op":"error","code":"busy"|"slots",…}, close)
    {"op":"hello","v":2,"cnonce":Nc,"mac":Mc} →  (its first byte within FIRST_BYTE seconds)
                                              ←  {"op":"welcome","mac":Ma}
    from here on every frame, both ways, also carries "seq" and "mac" (see below):
    {"op":"start_peer"}  (optional "cpu": N, "sink": "copy")  →
                           ←  {"op":"peer","port":P,"pid":…,"ticket":T,"sink":S,"meta":{…}}
    … the benchmark runs against the agent's address, port P, each data hello carrying T …
    {"op":"stop"}                             →
                                              ←  {"op":"bye"}   (peer reaped; close)

    Mc = HMAC-SHA256(token, "flushbench-agent/2 client\\0" + Na + Nc)
    Ma = HMAC-SHA256(token, "flushbench-agent/2 agent\\0"  + Na + Nc)
    K  = HMAC-SHA256(token, "flushbench-agent/2 session\\0" + Na + Nc)
    a frame's mac = HMAC-SHA256(K, side + "\\0" + canonical JSON of the frame without "mac"),
    side "client" or "agent" (who sends it); seq counts 0, 1, 2, … per direction.

Frames are a u32 big-endian length and a JSON object, hardened in one place
(:mod:`flushbench.measure.protocol`, shared with the data connection). Nonces are 32 fresh
random bytes, sent as hex; the token itself never crosses the wire, and it is a random token
of at least 128 bits (:mod:`.token`), so a recorded handshake gives no foothold for guessing
it offline. The agent's fresh nonce stops a recorded client answer from being replayed; the
client's nonce stops a recorded agent answer from being replayed by an impostor; the direction
labels stop one side's MAC being reflected as the other's. The session key K binds every later
frame to this session, its seq to its place in it: a forged, replayed (from this session or
another), reordered or reflected frame is refused (code "auth") and the session ends.
The ticket T is the peer's (see :mod:`flushbench.measure.protocol`); frames are authenticated,
not encrypted, like the benchmark's own data, which is plain TCP.
Any error is one ``{"op":"error","code":…,"error":…}`` frame (MACed once the session has a key),
then the agent closes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from ..measure import protocol as framing
from ..measure.protocol import FRAME, TIMEOUT, Closed, Refused, one_line, recv_frame, short
from .token import read_token

__all__ = ["FRAME", "TIMEOUT", "Closed", "Refused", "one_line", "read_token", "recv_frame",
           "send_frame", "short"]

VERSION = 2  # 2: a token always, a MAC on every frame after the handshake, the peer's ticket
DEFAULT_PORT = 7420
AGENT_FRAME_CAP = 4096  # client -> agent: hello and ops are tiny
CLIENT_FRAME_CAP = 64 * 1024  # agent -> client: the peer reply carries host metadata
NONCE_BYTES = 32
FIRST_BYTE = 1.0  # seconds from the agent's hello to the first byte of the client's

# error codes (FRAME and TIMEOUT come with the framing); "slots": handshake slots full
BUSY, SLOTS, AUTH, VERSION_MISMATCH, PROTOCOL, LIMIT, PEER, SHUTDOWN, INTERNAL = (
    "busy", "slots", "auth", "version", "protocol", "limit", "peer", "shutdown", "internal")
ERROR_CODES = (BUSY, SLOTS, AUTH, VERSION_MISMATCH, FRAME, PROTOCOL, TIMEOUT, LIMIT, PEER,
               SHUTDOWN, INTERNAL)
RETRY_CODES = (BUSY, SLOTS)  # worth another try a little later


def send_frame(sock: Any, obj: dict[str, Any], deadline: float) -> None:
    """A control frame (capped at what a client accepts), sent before ``deadline``."""
    framing.send_frame(sock, obj, deadline, CLIENT_FRAME_CAP)


def encode(obj: dict[str, Any], cap: int = CLIENT_FRAME_CAP) -> bytes:
    return framing.encode(obj, cap)


def error_frame(code: str, message: str) -> dict[str, Any]:
    return {"op": "error", "code": code, "error": one_line(message)}


# ----------------------------------------------------------------------------- handshake

def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def mac(token: bytes, side: str, agent_nonce: bytes, client_nonce: bytes) -> str:
    """The proof one side ('client' or 'agent') sends: hex HMAC-SHA256 over both nonces."""
    label = f"flushbench-agent/{VERSION} {side}\0".encode()
    return hmac.new(token, label + agent_nonce + client_nonce, hashlib.sha256).hexdigest()


def mac_ok(token: bytes, side: str, agent_nonce: bytes, client_nonce: bytes, got: Any) -> bool:
    if not isinstance(got, str) or len(got) != 2 * hashlib.sha256().digest_size:
        return False
    return hmac.compare_digest(mac(token, side, agent_nonce, client_nonce).encode(),
                               got.encode("ascii", "replace"))


def parse_nonce(value: Any, what: str) -> bytes:
    if (not isinstance(value, str) or len(value) != 2 * NONCE_BYTES
            or value.strip("0123456789abcdef")):
        raise Refused(PROTOCOL, f"{what} must be {2 * NONCE_BYTES} lower-case hex digits, "
                                f"got {short(value)}")
    return bytes.fromhex(value)


def check_fields(msg: dict[str, Any], allowed: set[str], what: str) -> None:
    extra = sorted(str(k) for k in msg if k not in allowed)
    if extra:
        raise Refused(PROTOCOL, f"{what}: unexpected field(s) {short(', '.join(extra), 60)}")


def agent_hello(nonce: bytes) -> dict[str, Any]:
    return {"op": "hello", "v": VERSION, "nonce": nonce.hex()}


def client_hello(greeting_nonce: bytes, client_nonce: bytes, token: bytes,
                 version: int = VERSION) -> dict[str, Any]:
    return {"op": "hello", "v": version, "cnonce": client_nonce.hex(),
            "mac": mac(token, "client", greeting_nonce, client_nonce)}


def check_client_hello(msg: dict[str, Any], nonce: bytes, token: bytes) -> bytes:
    """Validate the client's hello against this session's nonce; return the client nonce."""
    op = msg.get("op")
    if op != "hello":
        raise Refused(PROTOCOL, f"expected the client's hello first, got op {short(op)}")
    v = msg.get("v")
    if not isinstance(v, int) or isinstance(v, bool):
        raise Refused(PROTOCOL, f"hello: v must be an integer protocol version, got {short(v)}")
    if v != VERSION:
        raise Refused(VERSION_MISMATCH,
                      f"client speaks protocol {short(v, 24)}, this agent speaks {VERSION}")
    check_fields(msg, {"op", "v", "cnonce", "mac"}, "hello")
    cnonce = parse_nonce(msg.get("cnonce"), "hello: cnonce")
    if cnonce == nonce:
        raise Refused(PROTOCOL, "hello: cnonce repeats the agent's nonce")
    if msg.get("mac") is None:
        raise Refused(AUTH, "this agent requires a token (the client sent none)")
    if not mac_ok(token, "client", nonce, cnonce, msg.get("mac")):
        raise Refused(AUTH, "the token was refused")
    return cnonce


def welcome(token: bytes, nonce: bytes, cnonce: bytes) -> dict[str, Any]:
    return {"op": "welcome", "mac": mac(token, "agent", nonce, cnonce)}


# ------------------------------------------------------------------- frames after the handshake

def session_key(token: bytes, agent_nonce: bytes, client_nonce: bytes) -> bytes:
    label = f"flushbench-agent/{VERSION} session\0".encode()
    return hmac.new(token, label + agent_nonce + client_nonce, hashlib.sha256).digest()


def frame_mac(key: bytes, side: str, msg: dict[str, Any]) -> str:
    """HMAC-SHA256 under the session key over the frame's canonical JSON (sorted keys, no
    spaces, ASCII), its ``mac`` left out; ``side`` is the sender."""
    body = json.dumps({k: v for k, v in msg.items() if k != "mac"}, sort_keys=True,
                      separators=(",", ":"), allow_nan=False).encode()
    return hmac.new(key, side.encode() + b"\0" + body, hashlib.sha256).hexdigest()


class Channel:
    """One side of an authenticated session: seals what it sends, checks what it receives.

    ``seal`` adds ``seq`` (0, 1, … per direction) and ``mac``; ``check`` refuses (code
    "auth") a frame whose MAC is missing or wrong (forged, from another session, reflected
    from the other direction) or whose seq is not the next one (replayed, dropped, reordered),
    and returns it without the two fields.
    """

    def __init__(self, key: bytes, side: str) -> None:
        if side not in ("client", "agent"):
            raise ValueError(f"side must be 'client' or 'agent', got {side!r}")
        self.key, self.side = key, side
        self.other = "agent" if side == "client" else "client"
        self.sent = self.received = 0

    def seal(self, obj: dict[str, Any]) -> dict[str, Any]:
        msg = {**obj, "seq": self.sent}
        msg["mac"] = frame_mac(self.key, self.side, msg)
        self.sent += 1
        return msg

    def check(self, msg: dict[str, Any]) -> dict[str, Any]:
        got, seq = msg.get("mac"), msg.get("seq")
        what = f"frame {self.received} from the {self.other}"
        try:
            expected = frame_mac(self.key, self.other, msg)
        except (TypeError, ValueError, RecursionError):  # not JSON-encodable: no valid MAC
            expected = ""
        if not isinstance(got, str) or not expected or not hmac.compare_digest(
                expected.encode(), got.encode("ascii", "replace")):
            raise Refused(AUTH, f"{what} has no valid MAC (forged, or not from this session)")
        if type(seq) is not int or seq != self.received:
            raise Refused(AUTH, f"{what} has seq {short(seq, 24)} (replayed or reordered)")
        self.received += 1
        return {k: v for k, v in msg.items() if k not in ("mac", "seq")}
