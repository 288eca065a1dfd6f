"""Framing on the data connection between a client worker and the peer.

    client                                   peer
    HELLO  u32 length + JSON {workload …}  →
                                           ←  HELLO-ACK u32 length + JSON {ok, rcvbuf_eff …}
    per timed value:
    GO     "GO  " + u64 n                  →
                                           ←  READY  b"+"       (so no Nagle stall at t0)
    … n operations of the workload …
                                           ←  DONE   u64 bytes received, u64 peer CPU ns
    BYE    "BYE " + u64 0                  →  (close)

JSON frames are capped; everything is validated before use.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

from .errors import PeerError, ProtocolError

FRAME_HEAD = struct.Struct("!I")
GO = struct.Struct("!4sQ")
DONE = struct.Struct("!QQ")
GO_MAGIC = b"GO  "
BYE_MAGIC = b"BYE "
READY = b"+"
MAX_JSON_FRAME = 64 * 1024
PROTOCOL_VERSION = 1


def recv_into_exact(sock: socket.socket, view: memoryview) -> None:
    """Fill ``view`` from ``sock``; a closed connection is a PeerError."""
    got, n = 0, len(view)
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise PeerError(f"connection closed after {got} of {n} bytes")
        got += k


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    recv_into_exact(sock, memoryview(buf))
    return bytes(buf)


def encode_json(obj: Any) -> bytes:
    body = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    if len(body) > MAX_JSON_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes is over the {MAX_JSON_FRAME}-byte cap")
    return FRAME_HEAD.pack(len(body)) + body


def decode_json(body: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError, nesting
        raise ProtocolError(f"frame is not JSON: {str(exc)[:100]}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("frame is not a JSON object")
    return obj


def send_json(sock: socket.socket, obj: Any) -> None:
    sock.sendall(encode_json(obj))


def recv_json(sock: socket.socket, cap: int = MAX_JSON_FRAME) -> dict[str, Any]:
    (length,) = FRAME_HEAD.unpack(recv_exact(sock, FRAME_HEAD.size))
    if length > cap:
        raise ProtocolError(f"frame of {length} bytes is over the {cap}-byte cap")
    return decode_json(recv_exact(sock, length))


def pack_go(n: int) -> bytes:
    return GO.pack(GO_MAGIC, n)


def check_ready(answer: bytes) -> None:
    """The peer's answer to GO must be READY; an empty one means it closed the connection."""
    if answer != READY:
        raise PeerError("the peer closed the connection" if not answer
                        else f"the peer answered GO with {answer!r}")


BYE = GO.pack(BYE_MAGIC, 0)


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
