"""The agent's control protocol: capped JSON frames, a versioned hello, HMAC challenge-response.

    client                                        agent
    connect                                   →
                                              ←  {"op":"hello","v":1,"nonce":Na,"auth":true}
                                                 (or {"op":"error","code":"busy",…}, close)
    {"op":"hello","v":1,"cnonce":Nc,"mac":Mc} →
                                              ←  {"op":"welcome","mac":Ma}
    {"op":"start_peer"}  (optional "cpu": N)  →
                                              ←  {"op":"peer","port":P,"pid":…,"meta":{…}}
    … the benchmark runs against the agent's address, port P …
    {"op":"stop"}                             →
                                              ←  {"op":"bye"}   (peer reaped; close)

    Mc = HMAC-SHA256(token, "flushbench-agent/1 client\\0" + Na + Nc)
    Ma = HMAC-SHA256(token, "flushbench-agent/1 agent\\0"  + Na + Nc)

Frames are a u32 big-endian length and a JSON object, hardened in one place
(:mod:`flushbench.measure.protocol`, shared with the data connection). Nonces are 32 fresh
random bytes, sent as hex; the token itself never crosses the wire. The agent's fresh nonce
stops a recorded client answer from being replayed; the client's nonce stops a recorded agent
answer from being replayed by an impostor; the direction labels stop one side's MAC being
reflected as the other's.
Any error is one ``{"op":"error","code":…,"error":…}`` frame, then the agent closes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..measure import protocol as framing
from ..measure.protocol import FRAME, TIMEOUT, Closed, Refused, one_line, recv_frame, short

__all__ = ["FRAME", "TIMEOUT", "Closed", "Refused", "one_line", "recv_frame", "send_frame",
           "short"]

VERSION = 1
DEFAULT_PORT = 7420
AGENT_FRAME_CAP = 4096  # client -> agent: hello and ops are tiny
CLIENT_FRAME_CAP = 64 * 1024  # agent -> client: the peer reply carries host metadata
NONCE_BYTES = 32
TOKEN_FILE_CAP = 4096  # a token is one line; refuse to slurp a large (or endless) file

# error codes (FRAME and TIMEOUT come with the framing)
BUSY, AUTH, VERSION_MISMATCH, PROTOCOL, LIMIT, PEER, SHUTDOWN, INTERNAL = (
    "busy", "auth", "version", "protocol", "limit", "peer", "shutdown", "internal")
ERROR_CODES = (BUSY, AUTH, VERSION_MISMATCH, FRAME, PROTOCOL, TIMEOUT, LIMIT, PEER, SHUTDOWN,
               INTERNAL)


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


def agent_hello(nonce: bytes, auth: bool) -> dict[str, Any]:
    return {"op": "hello", "v": VERSION, "nonce": nonce.hex(), "auth": auth}


def client_hello(greeting_nonce: bytes, client_nonce: bytes, token: bytes | None,
                 version: int = VERSION) -> dict[str, Any]:
    proof = mac(token, "client", greeting_nonce, client_nonce) if token is not None else None
    return {"op": "hello", "v": version, "cnonce": client_nonce.hex(), "mac": proof}


def check_client_hello(msg: dict[str, Any], nonce: bytes, token: bytes | None) -> bytes:
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
    if token is None:
        if msg.get("mac") is not None:
            raise Refused(AUTH, "this agent takes no token (started without --token-file)")
    elif msg.get("mac") is None:
        raise Refused(AUTH, "this agent requires a token (the client sent none)")
    elif not mac_ok(token, "client", nonce, cnonce, msg.get("mac")):
        raise Refused(AUTH, "the token was refused")
    return cnonce


def welcome(token: bytes | None, nonce: bytes, cnonce: bytes) -> dict[str, Any]:
    return {"op": "welcome", "mac": mac(token, "agent", nonce, cnonce) if token else None}


# ----------------------------------------------------------------------------------- token

def read_token(path: str | os.PathLike[str]) -> bytes:
    """The shared token in ``path``, whitespace stripped; UsageError naming the file."""
    try:
        with open(Path(path), "rb") as fh:
            data = fh.read(TOKEN_FILE_CAP + 1)
    except OSError as exc:
        raise UsageError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    if len(data) > TOKEN_FILE_CAP:
        raise UsageError(f"token file {path} is over {TOKEN_FILE_CAP} bytes; a token is one "
                         "line (e.g. made with: head -c 32 /dev/urandom | base64)")
    token = data.strip()
    if not token:
        raise UsageError(f"token file {path} is empty; put a shared secret in it "
                         "(e.g. head -c 32 /dev/urandom | base64)")
    return token
