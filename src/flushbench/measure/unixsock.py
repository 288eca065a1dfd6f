"""AF_UNIX stream sockets: a private directory, a listener in it, and the ``unix:`` address.

The ``unix`` transport runs a case over an AF_UNIX SOCK_STREAM connection instead of
loopback TCP. Its socket file lives in a directory made for it with ``tempfile.mkdtemp``
(mode 0700: no other local user can connect to it or replace it); whoever makes the
directory removes it, socket and all, also when the process listening in it was killed.

Workers name such a peer ``unix:/path/to/peer.sock`` (:func:`format_unix`,
:func:`parse_unix`); a TCP peer stays ``HOST:PORT`` (``protocol.format_addr``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile

from ..errors import PeerError, SetupError
from .protocol import format_addr

PREFIX = "unix:"
SOCKET_NAME = "peer.sock"
MAX_PATH = 107  # sun_path holds 108 bytes on Linux, with the terminating NUL

Addr = tuple[str, int] | str  # a TCP peer (host, port) or the path of an AF_UNIX peer


def format_unix(path: str) -> str:
    """'/tmp/fb-x/peer.sock' -> 'unix:/tmp/fb-x/peer.sock'."""
    return PREFIX + path


def parse_unix(text: str) -> str | None:
    """The path of a ``unix:/abs/path`` address; None for any other address.

    ValueError when it starts with ``unix:`` but names no absolute path that fits sun_path.
    """
    if not text.startswith(PREFIX):
        return None
    path = text[len(PREFIX):]
    if not path.startswith("/") or len(os.fsencode(path)) > MAX_PATH or "\0" in path:
        raise ValueError(f"{text!r}: expected unix:/ABSOLUTE/PATH of at most {MAX_PATH} bytes")
    return path


def describe(addr: Addr) -> str:
    """An address as a person reads it (and as ``--peer`` takes it)."""
    return format_unix(addr) if isinstance(addr, str) else format_addr(*addr)


def private_dir() -> str:
    """A fresh directory for one socket file, mode 0700; the caller removes it."""
    try:
        return tempfile.mkdtemp(prefix="flushbench-unix-")
    except OSError as exc:
        raise SetupError(f"cannot make a private directory for a Unix socket: "
                         f"{exc.strerror or exc}") from None


def remove_dir(directory: str) -> None:
    """Remove a directory made by :func:`private_dir`, its socket file included."""
    shutil.rmtree(directory, ignore_errors=True)


def socket_path(directory: str) -> str:
    path = os.path.join(directory, SOCKET_NAME)
    if len(os.fsencode(path)) > MAX_PATH:
        raise SetupError(f"the Unix socket path {path!r} is longer than {MAX_PATH} bytes "
                         "(sun_path): set TMPDIR to a shorter directory")
    return path


def listen(path: str, backlog: int = 64) -> socket.socket:
    """A listening AF_UNIX stream socket at ``path`` (inside a private directory)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise SetupError(f"cannot listen on {format_unix(path)}: {exc.strerror or exc}") \
            from None
    return sock


def connect(path: str, timeout: float) -> socket.socket:
    """A connected AF_UNIX stream socket (the timeout bounds the connect only)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise PeerError(f"cannot connect to the peer at {format_unix(path)}: "
                        f"{exc.strerror or exc}") from None
    return sock


def pair(timeout: float = 30.0) -> tuple[socket.socket, socket.socket]:
    """A connected (client, accepted) pair over a listening socket in a private directory,
    which is gone again when this returns (the connection does not need the file)."""
    directory = private_dir()
    try:
        with contextlib.closing(listen(socket_path(directory), 1)) as srv:
            srv.settimeout(timeout)
            client = connect(srv.getsockname(), timeout)
            try:
                accepted, _ = srv.accept()
            except BaseException:
                client.close()
                raise
    finally:
        remove_dir(directory)
    client.settimeout(None)
    accepted.settimeout(None)
    return client, accepted
