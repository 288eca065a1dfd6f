"""Client side of every workload: connect, set options, warm up, and the timed loops.

What is timed: only the operations. Connect, option setup, the HELLO and the GO/READY
exchange before each value are not. A stream or file value ends only when the peer has
confirmed every byte (``send()`` returning means "copied into the kernel", not
"delivered"). Each operation's end is stamped with ``perf_counter_ns`` into a preallocated
array; latencies are the differences, so percentiles come from real samples.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import sockopts, strategies, wire
from .errors import PeerError, SetupError
from .suite import HEADER_SIZE, Case

if TYPE_CHECKING:
    import asyncio


class _LazyAio:
    """flushbench.aioloops, imported on first use: asyncio costs ~20 ms per worker start."""

    def __getattr__(self, name: str) -> Any:
        from . import aioloops as module

        return getattr(module, name)


aioloops: Any = _LazyAio()

perf_counter_ns = time.perf_counter_ns
WARMUP_OPS = 64  # operations on a fresh connection before the first value (leaves quick-ACK)
WARMUP_TIME = 0.2  # seconds, at most


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


@dataclass
class ValueStats:
    """What one timed value did (sums over its operations)."""

    ops: int
    msgs: int
    bytes: int  # sent by the client
    reply_bytes: int  # sent back by the peer (rr, wwr, pipeline)
    elapsed_ns: int
    cpu_client_ns: int
    cpu_peer_ns: int
    calls: int
    segs: int | None  # None where TCP_INFO has no data segment counter
    retrans: int


@dataclass
class Session:
    """One connected client for one case, reused for every value of a worker process."""

    case: Case
    addr: tuple[str, int]
    io_timeout: float = 30.0
    values: list[ValueStats] = field(default_factory=list)
    latencies: array = field(default_factory=lambda: array("q"))

    def __post_init__(self) -> None:
        case = self.case
        strategies.check(case.strategy, case.workload)
        self.parts = make_parts(case) if case.workload != "file" else []
        self.reply = bytearray(case.reply_size)
        self.reply_view = memoryview(self.reply)
        self.ts = array("q", bytes(8 * case.op_count))
        self.est_op_s = 0.0
        self.file = _make_file(case.msg_size) if case.workload == "file" else None
        try:
            self.sock = socket.create_connection(self.addr, timeout=self.io_timeout)
        except OSError as exc:
            self._close_file()
            raise PeerError(f"cannot connect to the peer at {self.addr[0]}:{self.addr[1]}: "
                            f"{exc.strerror or exc}") from None
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        case, sock = self.case, self.sock
        sock.settimeout(None)  # blocking: no poll() before each send on the timed path
        sockopts.set_timeouts(sock, self.io_timeout)
        self.opts = sockopts.Options(case.nodelay, case.sndbuf, case.notsent_lowat)
        wire.send_json(sock, {"v": wire.PROTOCOL_VERSION, "workload": case.workload,
                              "msg_size": case.msg_size, "reply": case.reply_size,
                              "batch": case.batch, "rcvbuf": case.rcvbuf})
        ack = wire.recv_json(sock)
        if not ack.get("ok"):
            raise PeerError(f"the peer refused the case: {ack.get('error', ack)}")
        self.rcvbuf_eff = ack.get("rcvbuf_eff")
        self.strategy = strategies.get(case.strategy)(sock, case.buffer)
        self.loop: asyncio.AbstractEventLoop | None = None
        if self.strategy.is_async:
            self.loop = aioloops.new_loop()
            self.loop.run_until_complete(self.strategy.open())  # type: ignore[attr-defined]
        sockopts.apply(sock, self.opts)  # after asyncio, which turns TCP_NODELAY on
        self._warm_up()

    def _warm_up(self) -> None:
        """Leave quick-ACK mode and learn the op time, so values can be bounded in time."""
        done, n, start = 0, 1, time.perf_counter()  # n <= len(ts): ops=1 suites are valid
        while done < WARMUP_OPS and time.perf_counter() - start < WARMUP_TIME:
            self.run_value(n, record=False)
            done += n
            left = WARMUP_TIME - (time.perf_counter() - start)
            by_time = int(left / self.est_op_s) if self.est_op_s > 0 else n * 2
            n = max(1, min(n * 2, WARMUP_OPS - done, len(self.ts), by_time))

    # -- one timed value ------------------------------------------------------------------

    def ops_for(self, loops: int, value_time: float) -> int:
        """Operations for the next value: ``loops``, fewer if they would exceed value_time."""
        n = min(loops, len(self.ts))
        if self.est_op_s > 0 and value_time > 0:
            n = min(n, max(1, int(value_time / self.est_op_s)))
        return n

    def run_value(self, n: int, record: bool = True) -> int:
        """Run ``n`` operations; return the elapsed ns (the timed part only)."""
        info0 = sockopts.tcp_info(self.sock) if record else {}
        calls0 = self.strategy.calls
        if self.loop is not None:
            elapsed, cpu, done = self.loop.run_until_complete(aioloops.bounded(self, n))
        else:
            elapsed, cpu, done = self._sync_value(n)
        self.est_op_s = elapsed / n / 1e9
        if record:
            info1 = sockopts.tcp_info(self.sock)
            case = self.case
            msgs = n * case.msgs_per_op
            nbytes = n * (case.msg_size if case.workload == "file" else case.msg_size * case.batch)
            reply_bytes = n * case.reply_size
            peer_bytes, peer_cpu = wire.DONE.unpack(done)
            if peer_bytes != nbytes:
                raise PeerError(f"the peer confirmed {peer_bytes} bytes, {nbytes} were sent")
            self.values.append(ValueStats(
                ops=n, msgs=msgs, bytes=nbytes, reply_bytes=reply_bytes, elapsed_ns=elapsed,
                cpu_client_ns=cpu,
                cpu_peer_ns=peer_cpu, calls=self.strategy.calls - calls0,
                # minus the GO frame, which is one data segment of its own
                segs=info1["data_segs_out"] - info0["data_segs_out"] - 1
                if "data_segs_out" in info1 else None,
                retrans=info1.get("total_retrans", 0) - info0.get("total_retrans", 0)))
            ts = self.ts
            prev = self._t0
            lat = self.latencies
            for i in range(n):
                lat.append(ts[i] - prev)
                prev = ts[i]
        return elapsed

    def _sync_value(self, n: int) -> tuple[int, int, bytes]:
        sock, case, ts = self.sock, self.case, self.ts
        send = self.strategy.send_message
        parts = self.parts
        sock.sendall(wire.pack_go(n))
        wire.check_ready(sock.recv(1))
        pc = perf_counter_ns
        cpu0 = time.thread_time_ns()
        t0 = self._t0 = pc()
        if case.workload == "stream":
            for i in range(n):
                send(parts)
                ts[i] = pc()
            self._push_tail()
            done = wire.recv_exact(sock, wire.DONE.size)  # the peer has every byte
            t1 = pc()
        elif case.workload == "file":
            send_file, fh, size = self.strategy.send_file, self.file, case.msg_size
            for i in range(n):
                send_file(fh, size)
                ts[i] = pc()
            self._push_tail()
            done = wire.recv_exact(sock, wire.DONE.size)
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
            done = wire.recv_exact(sock, wire.DONE.size)
        return t1 - t0, time.thread_time_ns() - cpu0, done

    def _push_tail(self) -> None:
        """End of a one-way value: send what Nagle still holds back.

        With TCP_NODELAY off the last small segment waits for an ACK that the receiver
        delays by up to 40 ms; a continuous stream never waits for it, so it must not be
        timed. Turning TCP_NODELAY on pushes pending data out; then it is restored.
        """
        if not self.case.nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)

    # -- end --------------------------------------------------------------------------------

    def effective(self) -> dict[str, Any]:
        eff = sockopts.read_back(self.sock)
        eff["rcvbuf_eff"] = self.rcvbuf_eff
        info = sockopts.tcp_info(self.sock)
        eff["rtt_us"] = info.get("rtt")
        eff["snd_mss"] = info.get("snd_mss")
        eff["opt_mismatch"] = sockopts.mismatches(self.opts, eff)
        return eff

    def close(self) -> None:
        sock = getattr(self, "sock", None)
        try:
            strategy = getattr(self, "strategy", None)
            if strategy is not None and self.loop is not None:
                aioloops.close(self.loop, strategy)
            elif sock is not None:
                if strategy is not None:
                    strategy.close()
                sock.sendall(wire.BYE)
        except (OSError, PeerError, RuntimeError):
            pass
        finally:
            if getattr(self, "loop", None) is not None:
                self.loop.close()
            if sock is not None:
                sock.close()
            self._close_file()

    def _close_file(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _make_file(size: int):
    """An unlinked temporary file of ``size`` bytes, already in the page cache."""
    try:
        fh = tempfile.TemporaryFile()
        chunk = os.urandom(min(size, 1 << 20))
        left = size
        while left:
            left -= fh.write(chunk[:left])
        fh.flush()
        fh.seek(0)
        while fh.read(1 << 20):  # warm the page cache
            pass
        return fh
    except OSError as exc:
        raise SetupError(f"cannot create a {size}-byte file for the file workload: {exc}") \
            from None
