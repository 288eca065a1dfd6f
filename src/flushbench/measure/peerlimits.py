"""What the peer process may spend: connections served at once, receive buffers, bytes moved,
descriptors and thread stacks (peer.py serves; this module bounds it).

Worst case, with every one of MAX_CONNECTIONS (2048) connections served at once:

- receive buffers: the first FULL_BUFFERS_UP_TO (16) served at once get up to RECV_CHUNK
  (1 MiB: single-connection throughput needs it), later ones up to SMALL_CHUNK (64 KiB); a
  request/response connection's buffer is also at most its request (larger requests are
  read in pieces), plus 4 KiB each to start it at a page boundary (sink.page_aligned): at
  most 16 x 1 MiB + 2032 x 64 KiB + 2048 x 4 KiB = 151 MiB;
- per connection thread: a THREAD_STACK (1 MiB) stack reserved, of which only the few pages
  it touches are resident (2048 threads reserve 2 GiB of address space, not 16 GiB at the
  default 8 MiB), plus a socket and the thread's state (a few KiB).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading

from ..errors import SetupError
from . import fdlimit

RECV_CHUNK = 1 << 20  # the most a connection's receive buffer holds
SMALL_CHUNK = 64 << 10  # a one-way connection's buffer once many are served
FULL_BUFFERS_UP_TO = 16  # one-way connections get RECV_CHUNK while at most this many are served
MAX_CONNECTIONS = 2048  # served at once: a case's 1,000 plus the previous case's still closing
MAX_PENDING = 8  # connections still owing a hello with the ticket
# A connection thread's stack. Its deepest use is decoding a hostile hello: up to HELLO_CAP
# (4 KiB) nested brackets, which Python 3.13 decodes (C recursion, no RecursionError) in
# about 640 KiB of stack; 3.10-3.12 stop at the recursion limit within about 300 KiB; the
# TLS handshake needs far less. 256 KiB crashes the peer on 3.13: keep the margin.
THREAD_STACK = 1 << 20


def recv_buffer_size(one_way: bool, per_op: int, served: int) -> int:
    """Bytes of a connection's receive buffer, decided once, when it is promoted.

    ``served``: connections served at that moment, itself included (0: not counted, as
    in-process). A one-way connection reads any amount per call, so beyond the first
    FULL_BUFFERS_UP_TO it gets SMALL_CHUNK; at most that many hold RECV_CHUNK at any time
    (when one got it, at most that many were served). A request is read whole in one call
    when it fits: min(per_op, RECV_CHUNK), or, beyond the first FULL_BUFFERS_UP_TO, at most
    SMALL_CHUNK (a larger request is read in pieces).
    """
    cap = RECV_CHUNK if served <= FULL_BUFFERS_UP_TO else SMALL_CHUNK
    return cap if one_way else min(per_op, cap)


def served_cap(want: int = MAX_CONNECTIONS) -> tuple[int, str]:
    """Raise RLIMIT_NOFILE for ``want`` connections: (the cap on connections served at once
    that fits, "") or, where the hard limit is too low, (a lower cap, a one-line note)."""
    try:
        fdlimit.ensure(want, "the peer")
        return want, ""
    except SetupError:
        pass
    import resource  # ensure raised: a POSIX system whose hard limit is too low

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # finite here, or ensure had passed
    soft = fdlimit.ensure(max(0, hard - fdlimit.SPARE_FDS), "the peer")  # soft up to hard
    cap = max(1, min(want, soft - fdlimit.SPARE_FDS))
    return cap, (f"peer: RLIMIT_NOFILE allows {soft} open files (hard limit {hard}), so it "
                 f"serves at most {cap} connections at once, not {want} (raise it: ulimit "
                 f"-Hn {fdlimit.need_for(want)})")


def small_thread_stacks() -> None:
    """Threads started from now on get THREAD_STACK (where the platform lets it be set)."""
    with contextlib.suppress(ValueError, RuntimeError):
        threading.stack_size(THREAD_STACK)


class ByteBudget:
    """Bytes the peer process may still move (received + replied) over all its connections.

    Optional (``--max-bytes``): an agent's peer listens on a reachable address, so the bytes a
    session may push through it are bounded. Charged per timed value, before it starts.
    """

    def __init__(self, limit: int) -> None:
        self.limit = self.left = limit
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if n > self.left:
                if self.left:
                    print(f"peer: byte limit of {self.limit} reached (--max-bytes); refusing "
                          "further values", file=sys.stderr, flush=True)
                self.left = 0
                return False
            self.left -= n
            return True


class Slots:
    """The peer's connections: a few pending (no valid hello yet), a cap on those served.

    When MAX_PENDING connections are pending, the oldest is shut down for the newcomer, so
    idle connections cannot shut a worker out. Sockets are shut down only under the lock and
    only while listed: a handler leaves the list before it closes its socket.
    """

    def __init__(self, pending_cap: int = MAX_PENDING, cap: int = MAX_CONNECTIONS) -> None:
        self.pending_cap, self.cap = pending_cap, cap
        self._lock = threading.Lock()
        self._pending: list[socket.socket] = []
        self.served = 0

    def admit(self, conn: socket.socket) -> None:
        with self._lock:
            if len(self._pending) >= self.pending_cap:
                oldest = self._pending.pop(0)
                with contextlib.suppress(OSError):
                    oldest.shutdown(socket.SHUT_RDWR)  # its handler sees a close and ends
            self._pending.append(conn)

    def promote(self, conn: socket.socket) -> int:
        """Its hello held the ticket: serve it, unless it was pushed out or the peer is full.
        How many are served with it (itself included), or 0: refused."""
        with self._lock:
            if conn not in self._pending:
                return 0
            self._pending.remove(conn)
            if self.served >= self.cap:
                return 0
            self.served += 1
            return self.served

    def leave(self, conn: socket.socket, served: bool) -> None:
        with self._lock:
            if conn in self._pending:
                self._pending.remove(conn)
            if served:
                self.served -= 1
