"""The timed loops of the blocking strategies: one timed value of ``n`` operations.

What is timed: only the operations. The GO/READY exchange before a value is not. A stream or
file value ends only when the peer has confirmed every byte (``send()`` returning means
"copied into the kernel", not "delivered"). Each operation's end is stamped with
``perf_counter_ns`` into a preallocated array; latencies are the differences, so percentiles
come from real samples. The asyncio twin of this loop is in :mod:`.aiosession`.
"""

from __future__ import annotations

import io
import socket
import time
from array import array
from typing import NamedTuple

from ..case import HEADER_SIZE, Case
from ..errors import PeerError
from . import protocol, sockopts
from .strategies import Strategy

perf_counter_ns = time.perf_counter_ns


class Timed(NamedTuple):
    """What one timed value measured."""

    t0_ns: int  # perf_counter_ns at the start; ts[i] - previous stamp is operation i's latency
    elapsed_ns: int
    cpu_ns: int  # the client thread's CPU time
    done: bytes  # the peer's DONE message
    # GO sent to READY read, untimed: one round trip through the peer process at the value's
    # start, the host's wake-up time (its slow states: analysis/hoststate.py); 0: not taken
    ready_ns: int = 0


def make_parts(case: Case) -> list[bytes]:
    """The parts of one message: a 4-byte length header, then the body in parts-1 pieces."""
    body_len = case.msg_size - HEADER_SIZE
    whole = body_len.to_bytes(HEADER_SIZE, "big") + bytes([0x61 + i % 26 for i in range(26)]) \
        * (body_len // 26 + 1)
    whole = whole[: case.msg_size]
    if case.parts == 1:
        return [whole]
    parts = [whole[:HEADER_SIZE]]
    pieces = case.parts - 1
    step, extra = divmod(body_len, pieces)
    pos = HEADER_SIZE
    for i in range(pieces):
        size = step + (1 if i < extra else 0)
        parts.append(whole[pos:pos + size])
        pos += size
    return parts


def push_tail(sock: socket.socket, case: Case) -> None:
    """End of a one-way value: send what Nagle still holds back.

    With TCP_NODELAY off the last small segment waits for an ACK that the receiver delays by
    up to 40 ms; a continuous stream never waits for it, so it must not be timed. Turning
    TCP_NODELAY on pushes pending data out; then it is restored.
    """
    if not case.nodelay:
        sockopts.set_nodelay(sock, True)
        sockopts.set_nodelay(sock, False)


class SyncLoop:
    """Timed values for a blocking strategy on a blocking socket."""

    def __init__(self, sock: socket.socket, case: Case, strategy: Strategy, parts: list[bytes],
                 ts: array[int], file: io.BufferedIOBase | None) -> None:
        self.sock, self.case, self.strategy = sock, case, strategy
        self.parts, self.ts, self.file = parts, ts, file
        self.reply_view = memoryview(bytearray(case.reply_size))

    def run(self, n: int) -> Timed:
        sock, case, ts = self.sock, self.case, self.ts
        send = self.strategy.send_message
        parts = self.parts
        pc = perf_counter_ns
        go = pc()
        sock.sendall(protocol.pack_go(n))
        protocol.check_ready(sock.recv(1))
        cpu0 = time.thread_time_ns()
        t0 = pc()
        if case.workload == "stream":
            for i in range(n):
                send(parts)
                ts[i] = pc()
            push_tail(sock, case)
            done = protocol.recv_exact(sock, protocol.DONE.size)  # the peer has every byte
            t1 = pc()
        elif case.workload == "file":
            assert self.file is not None
            send_file, fh, size = self.strategy.send_file, self.file, case.msg_size
            for i in range(n):
                send_file(fh, size)
                ts[i] = pc()
            push_tail(sock, case)
            done = protocol.recv_exact(sock, protocol.DONE.size)
            t1 = pc()
        else:  # rr, wwr, pipeline: request (batch messages) then the reply
            reply, recv_into, want = self.reply_view, sock.recv_into, len(self.reply_view)
            batch = range(case.batch)
            for i in range(n):
                for _ in batch:
                    send(parts)
                got = recv_into(reply)
                while got < want:
                    k = recv_into(reply[got:])
                    if not k:
                        raise PeerError("the peer closed the connection mid-reply")
                    got += k
                ts[i] = pc()
            t1 = pc()
            done = protocol.recv_exact(sock, protocol.DONE.size)
        return Timed(t0, t1 - t0, time.thread_time_ns() - cpu0, done, t0 - go)

    def close(self) -> None:
        """Flush what the strategy holds and say BYE (the caller closes the socket)."""
        try:
            self.strategy.close()
        finally:
            self.sock.sendall(protocol.BYE)
