"""The peer's event loop for the connections of a driver case (many at once).

A thread per connection serves one connection best (the single-connection figures and the
iperf3 comparison rest on it), but a thousand Python threads in one process spend their
time handing the GIL to each other: measured here at 1,000 connections, the client and the
peer together used well under one CPU while the stream crawled. So a connection whose HELLO
says ``"many": true`` (``measure/multisession.py`` sends it) is served, after its hello in
its own thread, by one selectors loop per peer process: non-blocking, each connection a
small state machine (wait for GO; read a value's bytes, or each request and answer it;
DONE), data read into one scratch buffer (the bytes are counted, not kept). Each
connection's DONE reports the loop thread's CPU time spent on its events during the value,
so the sum over connections is the peer's CPU, as with threads. The byte budget and the
idle timeout hold here too; a connection is closed on BYE, on a protocol error and when
the peer stops, and its slot is freed then.
"""

from __future__ import annotations

import collections
import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable

from ..case import MAX_OPS
from . import protocol
from .peerlimits import RECV_CHUNK, ByteBudget
from .sink import page_aligned

SCRATCH = page_aligned(RECV_CHUNK)  # the loop's one receive buffer (sink.py: why aligned)
REPLY = memoryview(b"r" * RECV_CHUNK)
TICK = 0.5  # seconds between checks of idle connections and of the stop flag
thread_time_ns = time.thread_time_ns


class LoopConn:
    """One connection's state in the loop."""

    def __init__(self, sock: socket.socket, per_op: int, reply: int, one_way: bool,
                 budget: ByteBudget | None, on_close: Callable[[], None], flags: int = 0
                 ) -> None:
        self.sock, self.per_op, self.reply, self.one_way = sock, per_op, reply, one_way
        self.flags = flags  # of one-way reads: MSG_TRUNC drops the bytes uncopied (sink.py)
        self.budget, self.on_close = budget, on_close
        self.head = bytearray(protocol.GO.size)
        self.head_got = 0
        self.in_value = False
        self.n = 0
        self.left = 0  # stream: bytes still to come in this value
        self.ops_left = 0  # rr: requests still to come
        self.op_got = 0  # rr: bytes of the current request so far
        self.cpu_ns = 0  # the loop's CPU on this connection in this value
        self.out: collections.deque[memoryview] = collections.deque()
        self.last = time.monotonic()

    def readable(self) -> bool:
        """Take what arrived; False when the connection is over (closed, BYE or bad)."""
        if not self.in_value:
            k = self.sock.recv_into(memoryview(self.head)[self.head_got:])
            if not k:
                return False
            self.head_got += k
            return self.head_got < len(self.head) or self._go()
        if self.one_way:
            k = self.sock.recv_into(SCRATCH, min(self.left, len(SCRATCH)), self.flags)
            if not k:
                return False
            self.left -= k
            if not self.left:
                self._done()
            return True
        k = self.sock.recv_into(SCRATCH, min(self.per_op - self.op_got, len(SCRATCH)))
        if not k:
            return False
        self.op_got += k
        if self.op_got == self.per_op:  # a whole request: answer it
            self.op_got = 0
            self.ops_left -= 1
            left = self.reply
            while left:
                chunk = min(left, len(REPLY))
                self.out.append(REPLY[:chunk])
                left -= chunk
            if not self.ops_left:
                self._done()
        return True

    def _go(self) -> bool:
        magic, n = protocol.GO.unpack(self.head)
        self.head_got = 0
        if magic == protocol.BYE_MAGIC:
            return False
        if magic != protocol.GO_MAGIC or not 1 <= n <= MAX_OPS:
            return False  # a bad GO frame: the connection ends
        total = n * self.per_op + (0 if self.one_way else n * self.reply)
        if self.budget is not None and not self.budget.take(total):
            return False
        self.n, self.in_value, self.cpu_ns = n, True, 0
        self.left, self.ops_left, self.op_got = n * self.per_op, n, 0
        self.out.append(memoryview(protocol.READY))
        return True

    def _done(self) -> None:
        self.in_value = False
        self.out.append(memoryview(protocol.DONE.pack(self.n * self.per_op, self.cpu_ns)))

    def flush(self) -> None:
        """Send what is queued, as far as the socket takes it now."""
        out = self.out
        while out:
            view = out[0]
            try:
                sent = self.sock.send(view)
            except BlockingIOError:
                return
            if sent < len(view):
                out[0] = view[sent:]
                return
            out.popleft()


class PeerLoop:
    """One thread serving every adopted connection until ``stop`` is set."""

    def __init__(self, stop: threading.Event, idle_timeout: float) -> None:
        self.stop, self.idle_timeout = stop, idle_timeout
        self.sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._new: collections.deque[LoopConn] = collections.deque()
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self.thread = threading.Thread(target=self._run, name="peer-loop", daemon=True)
        self.thread.start()

    def adopt(self, conn: LoopConn) -> None:
        """Serve ``conn`` from the loop from now on (called from its hello thread)."""
        conn.sock.setblocking(False)
        self._new.append(conn)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"!")

    def _run(self) -> None:
        conns: dict[int, LoopConn] = {}
        next_check = time.monotonic() + TICK
        try:
            while not self.stop.is_set():
                for key, mask in self.sel.select(TICK):
                    conn = key.data
                    if conn is None:
                        self._take_new(conns)
                        continue
                    self._event(conn, mask, conns)
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + TICK
                    for conn in [c for c in conns.values()
                                 if now - c.last > self.idle_timeout]:
                        self._close(conn, conns)
        finally:
            for conn in list(conns.values()):
                self._close(conn, conns)
            self.sel.close()

    def _take_new(self, conns: dict[int, LoopConn]) -> None:
        with contextlib.suppress(OSError):
            self._wake_r.recv(4096)
        while self._new:
            conn = self._new.popleft()
            conns[conn.sock.fileno()] = conn
            self.sel.register(conn.sock, selectors.EVENT_READ, conn)

    def _event(self, conn: LoopConn, mask: int, conns: dict[int, LoopConn]) -> None:
        cpu0 = thread_time_ns()
        conn.last = time.monotonic()
        try:
            if mask & selectors.EVENT_READ and not conn.readable():
                self._close(conn, conns)
                return
            conn.flush()
        except BlockingIOError:
            pass
        except OSError:
            self._close(conn, conns)
            return
        if conn.in_value:
            conn.cpu_ns += thread_time_ns() - cpu0
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        key = self.sel.get_key(conn.sock)
        if key.events != want:
            self.sel.modify(conn.sock, want, conn)

    def _close(self, conn: LoopConn, conns: dict[int, LoopConn]) -> None:
        conns.pop(conn.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.sel.unregister(conn.sock)
        conn.sock.close()
        conn.on_close()
