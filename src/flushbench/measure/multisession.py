"""The client side of a driver case: ``conns`` connections driven at once by one driver.

The connections are opened one after another (connect, HELLO with the ticket, the peer's
answer, the case's socket options), so the peer's few slots for strangers are never crowded.
Then the driver (:mod:`.drivers`) runs each timed value on all of them at once, and a value
is accounted as one: its operations and bytes summed over the connections, its time from the
common start to the last connection's end, the client's CPU over the whole process (every
driver thread), the peer's as the sum of what each connection's peer thread reports. Each
connection's own time is kept too (``conn_ns``): per value, every connection moves the same
bytes, so the times give each connection's rate, and the fairness between them.

The same surface as :class:`.session.Session` (``run_value``, ``ops_for``, ``values``,
``latencies``, ``effective``, ``close``), so a visit's trial drives either.
"""

from __future__ import annotations

import socket
import time
from array import array
from typing import Any

from ..case import Case
from ..errors import PeerError
from . import fdlimit, protocol, sockopts, strategies
from .drivers import ConnResult, Driver, Work, misfit, open_driver, unavailable
from .loops import make_parts
from .protocol import format_addr
from .session import ValueStats, effective_options, peer_sink, say_hello, warm_up, with_sink


class MultiSession:
    """``case.conns`` connections to the peer at ``addr`` under ``case.driver``."""

    def __init__(self, case: Case, addr: tuple[str, int], io_timeout: float = 30.0,
                 ticket: str | None = None, *, cc: str = "", sink: str = "") -> None:
        start = time.perf_counter()
        self.case, self.io_timeout = case, io_timeout
        self.phases: dict[str, float] = {"connect_s": 0.0, "file_s": 0.0, "setup_s": 0.0,
                                         "warm_up_s": 0.0, "values_s": 0.0, "values": 0}
        self.values: list[ValueStats] = []
        self.latencies: array[int] = array("q")
        self.est_op_s = 0.0
        self.socks: list[socket.socket] = []
        self.driver: Driver | None = None
        self.rcvbuf_eff: Any = None
        self.sink = sink  # asked of the peer ("": its own)
        self.said = ""  # what the peer says it does with one-way data (session.peer_sink)
        self.opts = sockopts.Options.of(case, cc)
        try:
            why = unavailable(case.driver) or misfit(
                case.driver, case.strategy, case.workload,
                strategies.get(case.strategy).is_async)
            if why:
                raise PeerError(f"{case.id}: {why}")
            fdlimit.ensure(case.conns, "the visit's worker")
            for _ in range(case.conns):
                self.socks.append(self._connect(addr, ticket))
            self.phases["connect_s"] = time.perf_counter() - start
            work = Work(case.workload, case.strategy, make_parts(case), case.reply_size,
                        case.nodelay, case.buffer, io_timeout)
            self.driver = open_driver(case.driver, self.socks, work)
            self.phases["setup_s"] = time.perf_counter() - start
            self._warm_up()
        except BaseException:
            self.close()
            raise

    @classmethod
    def connect(cls, case: Case, addr: tuple[str, int], io_timeout: float = 30.0,
                ticket: str | None = None, *, cc: str = "", sink: str = "") -> MultiSession:
        return cls(case, addr, io_timeout, ticket, cc=cc, sink=sink)

    def _connect(self, addr: tuple[str, int], ticket: str | None) -> socket.socket:
        try:
            sock = socket.create_connection(addr, timeout=self.io_timeout)
        except OSError as exc:
            raise PeerError(f"cannot connect to the peer at {format_addr(*addr)} (connection "
                            f"{len(self.socks) + 1} of {self.case.conns}): "
                            f"{exc.strerror or exc}") from None
        try:
            sock.settimeout(None)  # blocking; every call bounded by the kernel's timeouts
            sockopts.set_timeouts(sock, self.io_timeout)
            ack = say_hello(sock, self.case, ticket, self.sink)
            self.rcvbuf_eff = ack.get("rcvbuf_eff")
            self.said = peer_sink(ack)
            sockopts.apply(sock, self.opts)
        except BaseException:
            sock.close()
            raise
        return sock

    def _warm_up(self) -> None:
        """As a single connection's (on every connection at once)."""
        self.phases["warm_up_s"] = warm_up(self, self.case.op_count)

    def ops_for(self, loops: int, value_time: float) -> int:
        """Operations per connection for the next value: ``loops``, fewer past value_time."""
        n = min(loops, self.case.op_count)
        if self.est_op_s > 0 and value_time > 0:
            n = min(n, max(1, int(value_time / self.est_op_s)))
        return n

    def run_value(self, n: int, record: bool = True) -> int:
        """``n`` operations on every connection; the elapsed ns (common start to last end)."""
        assert self.driver is not None
        info0 = [sockopts.tcp_info(s) for s in self.socks] if record else []
        wall0 = time.perf_counter()
        t0, results = self.driver.run(n)
        # from the clock's start: GO and READY on every connection come before it
        cpu = time.process_time_ns() - self.driver.cpu_at_t0
        if len(results) != len(self.socks):
            raise PeerError(f"the {self.case.driver} driver returned {len(results)} "
                            f"connections' results for {len(self.socks)}")
        elapsed = max(r.end_ns for r in results) - t0
        self.est_op_s = elapsed / n / 1e9
        if record:
            self.phases["values_s"] += time.perf_counter() - wall0
            self.phases["values"] += 1
            self._record(n, t0, elapsed, cpu, results, info0)
        return elapsed

    def _record(self, n: int, t0: int, elapsed: int, cpu: int, results: list[ConnResult],
                info0: list[dict[str, int]]) -> None:
        case, conns = self.case, len(self.socks)
        per_conn = n * case.msg_size
        peer_cpu = 0
        for i, r in enumerate(results):
            got, cpu_ns = protocol.DONE.unpack(r.done)
            if got != per_conn:
                raise PeerError(f"the peer confirmed {got} bytes on connection {i + 1}, "
                                f"{per_conn} were sent")
            peer_cpu += cpu_ns
        info1 = [sockopts.tcp_info(s) for s in self.socks]
        segs = retrans = None
        if all("data_segs_out" in i for i in info1):  # minus each connection's GO frame
            segs = sum(b["data_segs_out"] - a["data_segs_out"] - 1 for a, b in zip(info0, info1))
        if all("total_retrans" in i for i in info1):
            retrans = sum(b["total_retrans"] - a["total_retrans"] for a, b in zip(info0, info1))
        self.values.append(ValueStats(
            ops=n * conns, msgs=n * conns, bytes=per_conn * conns,
            reply_bytes=n * conns * case.reply_size, elapsed_ns=elapsed, cpu_client_ns=cpu,
            cpu_peer_ns=peer_cpu, calls=None, segs=segs, retrans=retrans,
            conn_ns=[r.end_ns - t0 for r in results]))
        if case.workload == "rr":  # every connection's round trips, pooled
            lat = self.latencies
            for r in results:
                prev = t0
                for stamp in r.stamps:
                    lat.append(stamp - prev)
                    prev = stamp

    def effective(self) -> dict[str, Any]:
        """The options as the kernel holds them on the first connection (all were set alike)."""
        if not self.socks:
            return {}
        return with_sink(effective_options(self.socks[0], self.opts, self.rcvbuf_eff),
                         self.case, self.sink, self.said)

    def close(self) -> None:
        """BYE on every connection (the driver's own way), then close them all."""
        try:
            if self.driver is not None:
                self.driver.close()
        except (OSError, PeerError, RuntimeError):
            pass
        finally:
            for sock in self.socks:
                sock.close()
