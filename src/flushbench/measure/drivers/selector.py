"""The selectors driver: one thread, non-blocking sockets, selectors.DefaultSelector (epoll).

The classic event-loop write path: each connection has a user-space buffer; messages are
appended to it (up to HIGH_WATER bytes) and ``send()`` takes what the kernel accepts when
the socket is writable. An rr request is sent at once and the socket is watched for
writability only while part of it is left.
"""

from __future__ import annotations

import selectors
import socket
import time
from array import array
from collections.abc import Sequence

from .. import protocol
from . import ConnResult, Work, chunks
from .common import bye_all, go_all, push_tail

perf_counter_ns = time.perf_counter_ns
HIGH_WATER = 256 * 1024  # bytes a connection's buffer holds before it waits for the kernel
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class _Conn:
    """One connection's state in a value: sending (stream), awaiting a reply (rr), or
    awaiting the peer's DONE."""

    def __init__(self, sock: socket.socket, work: Work, n: int) -> None:
        self.sock, self.work, self.n = sock, work, n
        self.stream = work.workload == "stream"
        self.request = b"".join(work.parts)
        self.out = bytearray()
        self.made = 0  # messages appended to ``out`` (stream) / requests made (rr)
        self.awaiting_done = False
        self.want = work.reply_size  # bytes the current read needs (a reply, or DONE)
        self.inbuf = memoryview(bytearray(max(work.reply_size, protocol.DONE.size)))
        self.got = 0
        self.stamps = array("q") if self.stream else array("q", bytes(8 * n))
        self.end_ns = 0
        self.done = b""

    def start(self) -> int:
        """The first events to watch for."""
        if self.stream:
            self.fill()
            return self.on_write()
        return self.send_request()

    def fill(self) -> None:
        parts, out = self.work.parts, self.out
        while self.made < self.n and len(out) < HIGH_WATER:
            for chunk in chunks(self.work.strategy, parts):
                out += chunk
            self.made += 1

    def send_request(self) -> int:
        self.out += self.request
        self.made += 1
        return self.on_write()

    def await_done(self) -> int:
        self.awaiting_done, self.want = True, protocol.DONE.size
        return READ

    def on_write(self) -> int:
        """Write what the kernel takes; the events to watch for next."""
        try:
            sent = self.sock.send(self.out) if self.out else 0
        except BlockingIOError:
            sent = 0
        del self.out[:sent]
        if not self.stream:
            return WRITE if self.out else READ
        self.fill()
        if self.out:
            return WRITE
        push_tail(self.sock, self.work.nodelay)
        return self.await_done()

    def on_read(self) -> int:
        """Read what arrived; the events to watch for next (0: this connection is done)."""
        try:
            k = self.sock.recv_into(self.inbuf[self.got:self.want])
        except BlockingIOError:
            return READ
        if not k:
            raise protocol.Closed("the peer closed the connection mid-value")
        self.got += k
        if self.got < self.want:
            return READ
        self.got = 0
        if not self.awaiting_done:  # a whole rr reply
            self.stamps[self.made - 1] = perf_counter_ns()
            if self.made < self.n:
                return self.send_request()
            self.end_ns = self.stamps[self.n - 1]
            return self.await_done()
        self.done = bytes(self.inbuf[:protocol.DONE.size])
        if self.stream:
            self.end_ns = perf_counter_ns()
        return 0


class SelectorsDriver:
    def __init__(self, socks: Sequence[socket.socket], work: Work) -> None:
        self.socks, self.work = list(socks), work
        self.sel = selectors.DefaultSelector()

    def run(self, n: int) -> tuple[int, list[ConnResult]]:
        go_all(self.socks, n)
        conns = [_Conn(sock, self.work, n) for sock in self.socks]
        for sock in self.socks:
            sock.setblocking(False)
        try:
            self.cpu_at_t0 = time.process_time_ns()  # the client's CPU from the clock's start
            t0 = perf_counter_ns()
            self._loop(conns)
        finally:
            for sock in self.socks:
                if sock.fileno() >= 0:
                    sock.setblocking(True)  # the kernel timeouts bound each call again
        return t0, [ConnResult(c.end_ns, c.done, c.stamps) for c in conns]

    def _loop(self, conns: list[_Conn]) -> None:
        sel, left = self.sel, len(conns)
        for each in conns:
            sel.register(each.sock, each.start(), each)
        try:
            last = time.monotonic()
            while left:  # bounded: io_timeout without progress ends it
                events = sel.select(timeout=1.0)
                now = time.monotonic()
                if not events:
                    if now - last > self.work.io_timeout:
                        raise TimeoutError(f"no connection made progress for "
                                           f"{self.work.io_timeout:g} s (selectors driver)")
                    continue
                last = now
                for key, mask in events:
                    conn: _Conn = key.data
                    watch = conn.on_write() if mask & WRITE else conn.on_read()
                    if watch == 0:
                        sel.unregister(conn.sock)
                        left -= 1
                    elif watch != key.events:
                        sel.modify(conn.sock, watch, conn)
        finally:
            for key in list(sel.get_map().values()):
                sel.unregister(key.fileobj)

    def close(self) -> None:
        self.sel.close()
        bye_all(self.socks)
