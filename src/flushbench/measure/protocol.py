"""The one framing of flushbench's connections, and the data connection's messages.

Every control message, on the data connection (client worker <-> peer) and on the agent's
control connection alike, is a u32 big-endian length and a JSON object. The frame is hardened
once, here: a size cap checked before the body is read, NaN and Infinity refused, nesting and
bad UTF-8 refused, and, where a deadline is given, a bound on the time a whole frame may take.

The data connection:

    client                                   peer
    HELLO  frame {v, ticket, workload, ...} ->   (at most HELLO_CAP bytes, within HELLO_TIMEOUT;
                                                  optional "sink": "copy"|"discard", sink.py)
                                           <-  HELLO-ACK frame {ok, rcvbuf_eff, ...}
                                                 (one-way workloads: "sink", what it does)
    per timed value:
    GO     "GO  " + u64 n                  ->
                                           <-  READY  b"+"       (so no Nagle stall at t0)
    ... n operations of the workload ...
                                           <-  DONE   u64 bytes received, u64 peer CPU ns
    BYE    "BYE " + u64 0                  ->  (close)

The ticket is the peer's per-session secret (64 hex digits, :func:`new_ticket`). Whoever starts
a peer makes one and hands it over on the peer's stdin, never on its command line (which any
local user can read in /proc); the workers get it on their stdin too, and the agent's client
gets it in the authenticated ``peer`` reply. The peer compares it (``hmac.compare_digest``)
before it allocates anything for the connection.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import select
import socket
import struct
import time
from typing import Any

from ..errors import PeerError, ProtocolError

FRAME_HEAD = struct.Struct("!I")
MAX_JSON_FRAME = 64 * 1024
PROTOCOL_VERSION = 2  # 2: the hello carries the peer's ticket
HELLO_CAP = 4096  # a data hello is small: this is all an unauthenticated client can make us read
HELLO_TIMEOUT = 5.0  # seconds from connect to a complete data hello
TICKET_HEX = 64  # a ticket: 32 random bytes as lower-case hex
TICKET_LINE_CAP = 256  # bytes read from stdin for it

GO = struct.Struct("!4sQ")
DONE = struct.Struct("!QQ")
GO_MAGIC = b"GO  "
BYE_MAGIC = b"BYE "
READY = b"+"
BYE = GO.pack(BYE_MAGIC, 0)

# Codes of a refused frame (the agent sends them back in its error frames).
FRAME, TIMEOUT = "frame", "timeout"


class Refused(ProtocolError):
    """A frame or message the receiver refuses, with a short machine-readable code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Closed(PeerError):
    """The other side closed the connection."""


def one_line(text: Any, limit: int = 200) -> str:
    """Untrusted text made safe for a one-line message: no control characters, bounded."""
    clean = "".join(c if c.isprintable() else " " for c in str(text))
    return clean if len(clean) <= limit else clean[:limit - 3] + "..."


def short(value: Any, limit: int = 40) -> str:
    """A bounded, one-line repr of a value that came from the wire."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- frames -------------------------------------------------------------------------------

def encode(obj: dict[str, Any], cap: int = MAX_JSON_FRAME) -> bytes:
    body = json.dumps(obj, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
    if len(body) > cap:
        raise ProtocolError(f"frame of {len(body)} bytes is over the {cap}-byte cap")
    return FRAME_HEAD.pack(len(body)) + body


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def decode(body: bytes) -> dict[str, Any]:
    """A JSON object, or Refused: never anything else, whatever the bytes."""
    try:
        obj = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8, int-digit limit, deep nesting
        raise Refused(FRAME, f"frame is not JSON: {one_line(exc, 80)}") from None
    if not isinstance(obj, dict):
        raise Refused(FRAME, f"frame is a JSON {type(obj).__name__}, not an object")
    return obj


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise Refused(TIMEOUT, "timed out waiting for a complete frame")
    return left


def recv_into_exact(sock: socket.socket, view: memoryview) -> None:
    """Fill ``view`` from ``sock`` under the socket's own timeouts; a close is Closed."""
    got, n = 0, len(view)
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise Closed(f"connection closed after {got} of {n} bytes")
        got += k


def recv_exact(sock: socket.socket, n: int, deadline: float | None = None) -> bytes:
    """``n`` bytes. With a ``deadline`` (time.monotonic) all of them must come before it
    (Refused(TIMEOUT) otherwise); without one the socket's own timeouts bound each call and
    its blocking mode is left alone (the data connection's timed path depends on it)."""
    buf = bytearray(n)
    if deadline is None:
        recv_into_exact(sock, memoryview(buf))
        return bytes(buf)
    view, got = memoryview(buf), 0
    while got < n:  # bounded: every pass receives >= 1 byte or raises
        sock.settimeout(_left(deadline))
        try:
            k = sock.recv_into(view[got:])
        except TimeoutError:
            raise Refused(TIMEOUT, "timed out waiting for a complete frame") from None
        if not k:
            raise Closed(f"connection closed after {got} of {n} bytes")
        got += k
    return bytes(buf)


def recv_frame(sock: socket.socket, cap: int = MAX_JSON_FRAME,
               deadline: float | None = None) -> dict[str, Any]:
    """One frame: the cap is checked before the body is read."""
    (length,) = FRAME_HEAD.unpack(recv_exact(sock, FRAME_HEAD.size, deadline))
    if length > cap:
        raise Refused(FRAME, f"frame of {length} bytes is over the {cap}-byte cap")
    return decode(recv_exact(sock, length, deadline))


def send_frame(sock: socket.socket, obj: dict[str, Any], deadline: float | None = None,
               cap: int = MAX_JSON_FRAME) -> None:
    data = encode(obj, cap)
    if deadline is None:
        sock.sendall(data)
        return
    sock.settimeout(_left(deadline))
    try:
        sock.sendall(data)
    except TimeoutError:
        raise Refused(TIMEOUT, "timed out sending a frame") from None


# -- the data connection's fixed-size messages ----------------------------------------------

def pack_go(n: int) -> bytes:
    return GO.pack(GO_MAGIC, n)


def check_ready(answer: bytes) -> None:
    """The peer's answer to GO must be READY; an empty one means it closed the connection."""
    if answer != READY:
        raise PeerError("the peer closed the connection" if not answer
                        else f"the peer answered GO with {answer!r}")


# -- the per-session ticket -------------------------------------------------------------------

def new_ticket() -> str:
    return secrets.token_hex(TICKET_HEX // 2)


def is_ticket(value: Any) -> bool:
    return (isinstance(value, str) and len(value) == TICKET_HEX
            and not value.strip("0123456789abcdef"))


def ticket_ok(expected: str, got: Any) -> bool:
    """``got`` (from the wire) is the ticket, compared in constant time."""
    if not isinstance(got, str):
        return False
    return hmac.compare_digest(expected.encode(), got.encode("ascii", "replace"))


def read_ticket(fd: int = 0, timeout: float = 10.0) -> str | None:
    """The ticket line on ``fd`` (a pipe from the parent): None at once on EOF or a terminal,
    or when nothing came within ``timeout``; ProtocolError if the line is not a ticket.
    Reads unbuffered and at most TICKET_LINE_CAP bytes."""
    if os.isatty(fd):
        return None
    data, end = b"", time.monotonic() + timeout
    while b"\n" not in data and len(data) < TICKET_LINE_CAP:  # bounded in bytes and time
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, TICKET_LINE_CAP - len(data))
        if not chunk:
            break
        data += chunk
    text = data.partition(b"\n")[0].strip().decode("ascii", "replace")
    if not text:
        return None
    if not is_ticket(text):
        raise ProtocolError(f"the ticket on stdin must be {TICKET_HEX} lower-case hex digits")
    return text


# -- addresses ----------------------------------------------------------------------------

def format_addr(host: str, port: int) -> str:
    """('::1', 80) -> '[::1]:80'; ('10.0.0.1', 80) -> '10.0.0.1:80'."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_addr(text: str, default_port: int | None = None) -> tuple[str, int]:
    """'HOST:PORT', '[::1]:PORT' or 'HOST' (with a default port) -> (host, port)."""
    host, port_text = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if port_text is None:
        if default_port is None:
            raise ValueError(f"{text!r} has no port; expected HOST:PORT")
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: port must be 1..65535")
    return host, int(port_text)
