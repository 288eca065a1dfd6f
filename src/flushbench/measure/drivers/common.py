"""What the drivers share: GO/READY before the clock, the tail push, BYE."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence

from .. import protocol, sockopts


def go_all(socks: Sequence[socket.socket], n: int) -> None:
    """GO on every connection, then every READY (blocking sockets; before the clock)."""
    go = protocol.pack_go(n)
    for sock in socks:
        sock.sendall(go)
    for sock in socks:
        protocol.check_ready(sock.recv(1))


def push_tail(sock: socket.socket, nodelay: bool) -> None:
    """Send what Nagle holds back at the end of a stream (see measure/loops.push_tail)."""
    if not nodelay:
        sockopts.set_nodelay(sock, True)
        sockopts.set_nodelay(sock, False)


def bye_all(socks: Sequence[socket.socket]) -> None:
    """BYE on every connection that still takes it, then close them all."""
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.setblocking(True)
            sock.sendall(protocol.BYE)
    for sock in socks:
        sock.close()
