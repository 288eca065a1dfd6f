"""The client side of one case: HELLO, options, warm-up, and the accounting of each value.

A :class:`Session` takes a connected socket (``Session.connect`` makes one to a peer), so a
strategy and a session can run over ``socketpair()`` as well as over TCP. The timed loops
themselves are in :mod:`.loops` (blocking) and :mod:`.aiosession` (asyncio).
"""

from __future__ import annotations

import io
import os
import socket
import statistics
import tempfile
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..case import ONE_WAY_WORKLOADS, Case
from ..errors import PeerError, SetupError, UsageError
from . import protocol, sockopts, strategies, unixsock
from .loops import SyncLoop, Timed, make_parts
from .protocol import format_addr
from .sink import known as sink_known
from .strategies import AsyncStrategy, Strategy
from .unixsock import Addr

WARMUP_OPS = 64  # operations on a fresh connection before the first value (leaves quick-ACK)
# seconds, at most (every trial warms up its own connection; quick-ACK mode ends after a
# few round trips: 0.1 s cost the quick suite 23-29 s of its ~180 in warm-ups)
WARMUP_TIME = 0.05
# An operation at least this long waited for a delayed ACK (Linux waits at least 40 ms,
# TCP_DELACK_MIN; trap operations here take 41-45 ms): the warm-up need not see a second.
DELAYED_ACK_S = 0.035


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
    calls: int | None  # None: not counted (a driver case's event loop)
    segs: int | None  # None where TCP_INFO has no data segment counter
    retrans: int | None
    # TLS: bytes on the wire over the messages' own (records' headers, tags), or None
    tls_bytes: int | None = None
    # A driver case (many connections): each connection's own time in the value, from the
    # common start to its end (measure/multisession.py); None for one connection.
    conn_ns: list[int] | None = None
    # The GO/READY round trip before the value (untimed; None: not taken, as by a driver).
    ready_ns: int | None = None


class ValueLoop(Protocol):
    """One timed value of ``n`` operations (blocking or asyncio)."""

    def run(self, n: int, est_op_s: float = ...) -> Timed: ...

    def close(self) -> None: ...


class _Blocking:
    def __init__(self, loop: SyncLoop) -> None:
        self.loop = loop

    def run(self, n: int, est_op_s: float = 0.0) -> Timed:
        return self.loop.run(n)

    def close(self) -> None:
        self.loop.close()


class Session:
    """One connected client for one case, reused for every value of a worker process.

    The session owns ``sock`` from here on: it closes it in :meth:`close`, also when the
    constructor fails. ``ticket``: the peer's, sent in the hello (see :mod:`.protocol`).
    A TLS case (``case.tls``) shakes hands after the hello, trusting the CA certificate at
    ``ca`` and checking the peer's certificate for ``server_host`` (see :mod:`.tls`).
    """

    def __init__(self, case: Case, sock: socket.socket, io_timeout: float = 30.0,
                 ticket: str | None = None, *, ca: str | None = None,
                 server_host: str = "127.0.0.1", cc: str = "", sink: str = "") -> None:
        start = time.perf_counter()
        self.case, self.sock, self.io_timeout = case, sock, io_timeout
        self.cc = cc  # the run's congestion control for this socket; "": the host's
        self.sink = sink  # asked of the peer ("": its own)
        self.said = ""  # what the peer says it does with one-way data (peer_sink)
        self.ticket = ticket
        self.ca, self.server_host = ca, server_host
        self.tls: dict[str, Any] = {}  # TLS cases: handshake time, version, cipher, overhead
        # where this process's time went, in seconds (read by bench/bench_breakdown.py)
        self.phases: dict[str, float] = {"connect_s": 0.0, "file_s": 0.0, "setup_s": 0.0,
                                         "warm_up_s": 0.0, "values_s": 0.0, "values": 0}
        self.values: list[ValueStats] = []
        self.latencies: array[int] = array("q")
        self.ts: array[int] = array("q", bytes(8 * case.op_count))
        self.est_op_s = 0.0
        self.file: io.BufferedRandom | None = None
        self.strategy: Strategy | AsyncStrategy | None = None
        self.loop: ValueLoop | None = None
        try:
            strategies.check(case.strategy, case.workload)
            unavailable = strategies.unavailable_over(case)  # a TCP option over unix
            if unavailable:
                raise UsageError(f"{case.id}: {unavailable}")
            self.parts = make_parts(case) if case.workload != "file" else []
            if case.workload == "file":
                file_start = time.perf_counter()
                self.file = make_file(case.msg_size)
                self.phases["file_s"] = time.perf_counter() - file_start
            self._setup()
            self.phases["setup_s"] = time.perf_counter() - start
        except BaseException:
            self.close()
            raise

    @classmethod
    def connect(cls, case: Case, addr: Addr, io_timeout: float = 30.0,
                ticket: str | None = None, *, ca: str | None = None, cc: str = "",
                sink: str = "") -> Session:
        """Connect to the peer at ``addr`` (HOST, PORT; or the path of its AF_UNIX socket)
        and set the case up (not timed)."""
        start = time.perf_counter()
        if isinstance(addr, str):
            sock = unixsock.connect(addr, io_timeout)
        else:
            try:
                sock = socket.create_connection(addr, timeout=io_timeout)
            except OSError as exc:
                raise PeerError(f"cannot connect to the peer at {format_addr(*addr)}: "
                                f"{exc.strerror or exc}") from None
        connected = time.perf_counter() - start
        session = cls(case, sock, io_timeout, ticket, ca=ca,  # ca: the run's CA, for TLS
                      server_host=addr if isinstance(addr, str) else addr[0], cc=cc,
                      sink=sink)
        session.phases["connect_s"] = connected
        return session

    def _setup(self) -> None:
        case, sock = self.case, self.sock
        sock.settimeout(None)  # blocking: no poll() before each send on the timed path
        sockopts.set_timeouts(sock, self.io_timeout)
        self.opts = sockopts.Options.of(case, self.cc)
        ack = say_hello(sock, case, self.ticket, self.sink)
        self.rcvbuf_eff = ack.get("rcvbuf_eff")
        self.said = peer_sink(ack)
        ctx = self._start_tls(ack) if case.tls else None
        sock = self.sock  # the TLS socket of a blocking TLS case
        strategy = strategies.get(case.strategy)(sock, case.buffer)
        self.strategy = strategy
        if isinstance(strategy, AsyncStrategy):
            from .aiosession import AsyncLoop  # asyncio only where it is used

            self.loop = loop = AsyncLoop(sock, case, strategy, self.parts, self.ts, self.file,
                                         self.io_timeout,
                                         None if ctx is None else (ctx, self.server_host))
            if ctx is not None:  # asyncio shook hands in open()
                from . import tls

                self.tls.update(tls.describe(None, loop.ssl_object()),
                                tls_handshake_us=loop.open_ns / 1e3)
        else:
            self.loop = _Blocking(SyncLoop(sock, case, strategy, self.parts, self.ts,
                                           self.file))
        sockopts.apply(sock, self.opts)  # after asyncio, which turns TCP_NODELAY on
        self._warm_up()

    def _start_tls(self, ack: dict[str, Any]) -> Any:
        """After the hello: shake hands (blocking strategies) or return the context for
        asyncio's own handshake. The handshake's time is kept apart (never in a value)."""
        if ack.get("tls") is not True:
            raise PeerError("the peer does not serve TLS (it was started without a certificate)")
        if self.ca is None:
            raise SetupError("a TLS case needs the run's CA certificate; none was given")
        from . import tls  # ssl is imported only where a TLS case runs

        ctx = tls.client_context(self.ca, self.case.tls_version)
        if strategies.get(self.case.strategy).is_async:
            return ctx
        self.sock, handshake_ns = tls.wrap_client(self.sock, ctx, self.server_host)
        self.tls.update(tls.describe(self.sock), tls_handshake_us=handshake_ns / 1e3)
        return None

    def _warm_up(self) -> None:
        """Leave quick-ACK mode and learn the op time, so values can be bounded in time."""
        self.phases["warm_up_s"] = warm_up(self, len(self.ts))  # n <= len(ts): ops=1 is valid

    # -- one timed value ------------------------------------------------------------------

    def ops_for(self, loops: int, value_time: float) -> int:
        """Operations for the next value: ``loops``, fewer if they would exceed value_time."""
        n = min(loops, len(self.ts))
        if self.est_op_s > 0 and value_time > 0:
            n = min(n, max(1, int(value_time / self.est_op_s)))
        return n

    def run_value(self, n: int, record: bool = True) -> int:
        """Run ``n`` operations; return the elapsed ns (the timed part only)."""
        assert self.loop is not None and self.strategy is not None
        info0 = sockopts.tcp_info(self.sock) if record else {}
        calls0 = self.strategy.calls
        start = time.perf_counter()
        timed = self.loop.run(n, self.est_op_s)
        if record:
            self.phases["values_s"] += time.perf_counter() - start
            self.phases["values"] += 1
        self.est_op_s = timed.elapsed_ns / n / 1e9
        if record:
            self._record(n, timed, info0, self.strategy.calls - calls0)
        return timed.elapsed_ns

    def _record(self, n: int, timed: Timed, info0: dict[str, int], calls: int) -> None:
        info1 = sockopts.tcp_info(self.sock)
        case = self.case
        msgs = n * case.msgs_per_op
        nbytes = n * (case.msg_size if case.workload == "file" else case.msg_size * case.batch)
        peer_bytes, peer_cpu = protocol.DONE.unpack(timed.done)
        if peer_bytes != nbytes:
            raise PeerError(f"the peer confirmed {peer_bytes} bytes, {nbytes} were sent")
        self.values.append(ValueStats(
            ops=n, msgs=msgs, bytes=nbytes, reply_bytes=n * case.reply_size,
            elapsed_ns=timed.elapsed_ns, cpu_client_ns=timed.cpu_ns, cpu_peer_ns=peer_cpu,
            calls=calls,
            # minus the GO frame, which is one data segment of its own
            segs=info1["data_segs_out"] - info0["data_segs_out"] - 1
            if "data_segs_out" in info1 else None,
            retrans=info1["total_retrans"] - info0["total_retrans"]
            if "total_retrans" in info1 else None,  # no TCP_INFO (AF_UNIX): unknown, not 0
            tls_bytes=self._tls_bytes(info0, info1, nbytes), ready_ns=timed.ready_ns or None))
        ts, prev, lat = self.ts, timed.t0_ns, self.latencies
        for i in range(n):
            lat.append(ts[i] - prev)
            prev = ts[i]

    def _tls_bytes(self, info0: dict[str, int], info1: dict[str, int], nbytes: int,
                   ) -> int | None:
        """Wire bytes over the messages' own: tcpi_bytes_sent (less retransmissions) across
        the value, less the messages and the GO frame's record (its bytes and overhead)."""
        overhead = self.tls.get("tls_record_bytes")
        if not self.case.tls or not info1.get("bytes_sent") or overhead is None:
            return None
        sent = (info1["bytes_sent"] - info0["bytes_sent"]
                - (info1.get("bytes_retrans", 0) - info0.get("bytes_retrans", 0)))
        return int(sent - nbytes - protocol.GO.size - overhead)

    # -- end --------------------------------------------------------------------------------

    def effective(self) -> dict[str, Any]:
        eff = effective_options(self.sock, self.opts, self.rcvbuf_eff)
        eff.update(self.tls)
        return with_sink(eff, self.case, self.sink, self.said)

    def close(self) -> None:
        """Say BYE (bounded), close the socket and the file; never raises for a gone peer."""
        try:
            if self.loop is not None:
                self.loop.close()
        except (OSError, PeerError, RuntimeError):
            pass
        finally:
            self.sock.close()
            if self.file is not None:
                self.file.close()
                self.file = None


class Warmable(Protocol):
    est_op_s: float

    def run_value(self, n: int, record: bool = True) -> int: ...


def warm_up(session: Warmable, max_ops: int) -> float:
    """Untimed values of 1, 2, 4 … operations until WARMUP_OPS are done or WARMUP_TIME is
    spent (a fresh connection leaves quick-ACK mode; the op time is learnt, so values can
    be bounded in time); the seconds it took.

    The op time it leaves is its last value's: the connection's state once it has left
    quick-ACK mode (a Nagle trap case's first operations may be fast, its later ones wait
    40 ms for a delayed ACK, and it must be known as slow). An operation that waited as long
    as a delayed ACK, with no room for another in the time left, ends it: a trap case whose
    first operation waited 42 ms stops there rather than wait 44 ms more (6 s of a quick
    run's 14 x 10 trap trials). A shorter stall (a busy host) is followed by another value,
    so one stalled operation does not make a fast case "slow". For the same reason it never
    ends on a remainder shorter than the value before (1, 2 … 32, then not 1 more): a 10 ms
    stall in a lone last operation made fast cases "slow" in 12 of 38,685 stored trials.
    """
    done, n, start = 0, 1, time.perf_counter()
    while done < WARMUP_OPS and time.perf_counter() - start < WARMUP_TIME:
        session.run_value(n, record=False)
        done += n
        left = WARMUP_TIME - (time.perf_counter() - start)
        by_time = int(left / session.est_op_s) if session.est_op_s > 0 else n * 2
        if by_time < 1 and session.est_op_s >= DELAYED_ACK_S:
            break
        if WARMUP_OPS - done < n:  # only a remainder shorter than this value is left
            break
        n = max(1, min(n * 2, WARMUP_OPS - done, max_ops, by_time))
    return time.perf_counter() - start


def calibrated_ops(values: Sequence[ValueStats], loops: int, value_time: float,
                   conns: int = 1) -> int:
    """The operations per value to freeze after a calibration trial: as many as fit
    ``value_time`` at the median time per operation of its values (at most ``loops``, at
    least 1), not the last value's size, which one stalled value would set; 0 without
    values. ``conns``: connections per value (a driver case's ``n`` runs on each, and its
    values count ``n * conns`` operations), so the count is per connection, as ``n`` is."""
    per_op = [v.elapsed_ns * conns / v.ops / 1e9 for v in values if v.ops > 0]
    if not per_op:
        return 0
    median = statistics.median(per_op)
    if median <= 0 or value_time <= 0:
        return max(1, loops)
    return max(1, min(loops, int(value_time / median * (1 + 1e-9))))  # 0.01 / 1e-5: 1000


def effective_options(sock: socket.socket, opts: sockopts.Options, rcvbuf_eff: Any
                      ) -> dict[str, Any]:
    """The options as the kernel holds them on ``sock``, its RTT and MSS, the peer's SO_RCVBUF,
    and in words what was not taken as asked."""
    eff = sockopts.read_back(sock)
    eff["rcvbuf_eff"] = rcvbuf_eff
    info = sockopts.tcp_info(sock)
    eff["rtt_us"] = info.get("rtt")
    eff["snd_mss"] = info.get("snd_mss")
    eff["opt_mismatch"] = sockopts.mismatches(opts, eff, sock.family == socket.AF_UNIX)
    return eff


def with_sink(eff: dict[str, Any], case: Case, asked: str, said: str) -> dict[str, Any]:
    """``eff`` with what the peer said it did with the case's one-way data (``peer_sink``),
    and in ``opt_mismatch`` a sink asked for that the peer did not say it used (a peer from
    before it could be asked, or one that cannot discard)."""
    eff["peer_sink"] = said
    if asked and said != asked and case.workload in ONE_WAY_WORKLOADS:
        note = f"peer sink requested {asked}, peer said {said or 'nothing'}"
        eff["opt_mismatch"] = "; ".join(x for x in (eff.get("opt_mismatch"), note) if x)
    return eff


def peer_sink(ack: dict[str, Any]) -> str:
    """What the peer's hello answer says it does with one-way data ("discard" or "copy"); ""
    where it says nothing (request-response workloads, peers from before it said)."""
    said = ack.get("sink")
    return str(said) if sink_known(said) else ""


def say_hello(sock: socket.socket, case: Case, ticket: str | None, sink: str = ""
              ) -> dict[str, Any]:
    """Tell the peer what the connection will do (with the ticket); its answer, or PeerError
    with the peer's reason. A TLS case asks for TLS: both ends shake hands next. ``sink``:
    how the peer is to take in one-way data (measure/sink.py; "": its own way)."""
    hello: dict[str, Any] = {"v": protocol.PROTOCOL_VERSION, "workload": case.workload,
                             "msg_size": case.msg_size, "reply": case.reply_size,
                             "batch": case.batch, "rcvbuf": case.rcvbuf}
    if ticket is not None:
        hello["ticket"] = ticket
    if case.tls:
        hello["tls"] = True
    if case.driver:  # one of many connections: the peer serves them from one event loop
        hello["many"] = True
    if sink:
        hello["sink"] = sink
    protocol.send_frame(sock, hello)
    ack = protocol.recv_frame(sock)
    if not ack.get("ok"):
        why = protocol.one_line(ack.get("error", ack))
        raise PeerError(f"the peer refused the case: {why}")
    return ack


def make_file(size: int) -> io.BufferedRandom:
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
