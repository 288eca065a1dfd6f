"""A case: one point of the matrix, and the words every layer shares about it.

    workload x strategy x options (nodelay, sndbuf, ...) x message size x transport

The vocabulary lives here once: the workloads and which of them are judged by throughput or
by latency, the size units of case ids and of labels, and the stable id of a case (used as
the pyperf benchmark name, the table key and the file name of its samples). Standard library
only: worker and peer processes import it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError

WORKLOADS = ("stream", "rr", "wwr", "pipeline", "file")
THROUGHPUT_WORKLOADS = ("stream", "file")  # judged by bytes/s; the others by latency
ONE_WAY_WORKLOADS = THROUGHPUT_WORKLOADS  # no reply per operation
TRANSPORTS = ("loopback", "loopback6", "emulated", "remote", "unix")
LOCAL_ONLY = ("unix",)  # AF_UNIX reaches this host only: never a --peer or --link run
HEADER_SIZE = 4  # every message starts with a 4-byte big-endian length header

# Operations per timed value (a count cap; a value also stops at the suite's value_time).
DEFAULT_OPS = {"stream": 20000, "rr": 2000, "wwr": 500, "pipeline": 500, "file": 64}
MAX_SIZE = 64 * 1024 * 1024  # largest message or file one operation may move
MAX_OPS = 10_000_000
MAX_BATCH = 4096
MAX_PARTS = 64
TLS_VERSIONS = ("1.2", "1.3")  # the tls_version a case may ask for (1.3 unless said)
# How one client process drives a case's connections (measure/drivers/); "" = one
# connection, the classic single-connection session. A driver case runs these workloads.
DRIVERS = ("threads", "selectors", "asyncio", "uvloop", "trio")
DRIVER_WORKLOADS = ("stream", "rr")
MAX_CONNS = 1000  # connections one case may open at once
# A TCP congestion control's name as TCP_CONGESTION takes it (TCP_CA_NAME_MAX is 16 bytes,
# the NUL included): "cubic", "bbr", "reno" ... A run's setting, not a case's (suite [suite]
# cc, or flushbench run --cc).
CC_NAME = r"[a-z][a-z0-9_]{0,14}"


@dataclass(frozen=True, slots=True)
class Headline:
    """The figure a workload is judged by."""

    column: str
    label: str
    higher_is_better: bool


def headline(workload: str) -> Headline:
    if workload in THROUGHPUT_WORKLOADS:
        return Headline("throughput_bps", "throughput", True)
    return Headline("lat_p50_us", "p50 latency", False)


# -- size units: one spelling for ids, one for people, one parser ----------------------------

_BINARY = (("M", "MiB", 1 << 20), ("K", "KiB", 1 << 10))
_PARSE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def size_id(n: int) -> str:
    """64 -> '64', 65536 -> '64K', 1048576 -> '1M' (case ids); only exact multiples shorten."""
    for short, _, scale in _BINARY:
        if n >= scale and n % scale == 0:
            return f"{n // scale}{short}"
    return str(n)


def size_label(n: Any) -> str:
    """64 -> '64 B', 65536 -> '64 KiB' (tables and charts); '?' for what is not a size."""
    try:
        n = int(n)
    except (TypeError, ValueError):
        return "?"
    for _, unit, scale in _BINARY:
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def parse_size(text: str) -> int:
    """'500M' -> 524288000, '64k' -> 65536, '4096' -> 4096 (binary units); ValueError else."""
    text = text.strip()
    body, unit = (text[:-1], text[-1].lower()) if text[-1:].isalpha() else (text, "")
    if unit not in _PARSE_UNITS or not body.isdigit():
        raise ValueError(f"expected a byte count like 4096, 64K, 500M or 2G, got {text!r}")
    return int(body) * _PARSE_UNITS[unit]


# -- the case -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Case:
    """One benchmark point. Frozen; validated here so a bad suite fails before any run."""

    workload: str
    strategy: str
    msg_size: int
    parts: int = 2
    nodelay: bool = False
    sndbuf: int = 0  # 0 = never set (keeps the kernel's autotuning)
    rcvbuf: int = 0  # the peer's SO_RCVBUF; 0 = never set
    notsent_lowat: int = 0  # 0 = never set
    reply: int = 0  # response bytes (rr, pipeline); 0 = the workload's default
    batch: int = 1  # messages per operation (pipeline)
    buffer: int = 0  # makefile buffer size; 0 = io.DEFAULT_BUFFER_SIZE
    transport: str = "loopback"
    # The A/A control: the same code as the case without it, under a second label (id suffix
    # "-twin"), measured in the same rounds to show the run's own noise floor.
    twin: bool = False
    # TLS over the TCP connection (ssl.SSLContext on the client, the peer serves TLS); the
    # version only counts with tls on (a tls-off case always holds the default).
    tls: bool = False
    tls_version: str = "1.3"
    # Many connections: ``conns`` sockets driven by ``driver`` in one client process (id
    # suffix "c<conns>-<driver>", only with a driver: every id without one stays as it was).
    conns: int = 1
    driver: str = ""
    # How it is measured, not what: not part of the id.
    ops: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        def need(cond: bool, what: str) -> None:
            if not cond:
                raise UsageError(f"case {self.workload}/{self.strategy}: {what}")

        need(self.workload in WORKLOADS, f"unknown workload {self.workload!r}; "
             f"expected one of {', '.join(WORKLOADS)}")
        need(isinstance(self.strategy, str) and self.strategy != "", "strategy must be a name")
        need(self.transport in TRANSPORTS, f"unknown transport {self.transport!r}; "
             f"expected one of {', '.join(TRANSPORTS)}")
        for name in ("msg_size", "parts", "sndbuf", "rcvbuf", "notsent_lowat", "reply",
                     "batch", "buffer", "ops", "conns"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                 f"{name} must be a whole number >= 0, got {value!r}")
        need(isinstance(self.nodelay, bool), f"nodelay must be true or false, got {self.nodelay!r}")
        need(isinstance(self.twin, bool), f"twin must be true or false, got {self.twin!r}")
        need(isinstance(self.tls, bool), f"tls must be true or false, got {self.tls!r}")
        need(self.tls_version in TLS_VERSIONS, f"tls_version must be \"1.2\" or \"1.3\" (a "
             f"string), got {self.tls_version!r}")
        if not self.tls:  # one tls-off case, whatever tls_version a matrix paired it with
            object.__setattr__(self, "tls_version", TLS_VERSIONS[-1])
        self._check_driver(need)
        need(1 <= self.parts <= MAX_PARTS, f"parts must be 1..{MAX_PARTS}, got {self.parts}")
        need(1 <= self.batch <= MAX_BATCH, f"batch must be 1..{MAX_BATCH}, got {self.batch}")
        need(self.msg_size <= MAX_SIZE, f"msg_size must be <= {MAX_SIZE}, got {self.msg_size}")
        need(self.reply <= MAX_SIZE, f"reply must be <= {MAX_SIZE}, got {self.reply}")
        need(self.ops <= MAX_OPS, f"ops must be <= {MAX_OPS}, got {self.ops}")
        if self.workload == "file":
            need(self.msg_size >= 1, "a file workload needs msg_size >= 1 (the file size)")
        else:
            need(self.msg_size >= HEADER_SIZE + self.parts - 1,
                 f"msg_size {self.msg_size} is too small for {self.parts} parts "
                 f"(a {HEADER_SIZE}-byte header plus one byte per further part)")
        if self.workload == "wwr":
            need(self.parts >= 2, "wwr writes a header and a body separately: parts must be >= 2")
        if self.workload != "pipeline":
            need(self.batch == 1, f"batch is for the pipeline workload; {self.workload} sends "
                 "one message per operation")
        need(self.msg_size * self.batch <= MAX_SIZE,
             f"batch x msg_size must be <= {MAX_SIZE} bytes per operation")

    def _check_driver(self, need: Any) -> None:
        need(1 <= self.conns <= MAX_CONNS,
             f"conns must be 1..{MAX_CONNS} connections, got {self.conns}")
        need(self.driver == "" or self.driver in DRIVERS, f"unknown driver {self.driver!r}; "
             f"expected one of {', '.join(DRIVERS)}")
        if not self.driver:
            need(self.conns == 1, f"conns = {self.conns} needs a driver to run them: one of "
                 f"{', '.join(DRIVERS)}")
            return
        need(self.workload in DRIVER_WORKLOADS, f"driver {self.driver} runs the "
             f"{' and '.join(DRIVER_WORKLOADS)} workloads, not {self.workload}")
        need(not self.tls, f"driver {self.driver}: TLS cases run one connection (leave "
             "driver and conns out)")
        need(self.transport != "unix", f"driver {self.driver}: driver cases run over TCP, "
             "not unix")

    # -- derived -------------------------------------------------------------------------

    @property
    def reply_size(self) -> int:
        """Bytes the peer answers per operation (0 for one-way workloads)."""
        if self.workload in ONE_WAY_WORKLOADS:
            return 0
        if self.workload in ("wwr", "pipeline"):
            return self.reply or 1
        return self.reply or self.msg_size  # rr: echo-sized by default, like sockperf

    @property
    def msgs_per_op(self) -> int:
        return self.batch if self.workload == "pipeline" else 1

    @property
    def op_count(self) -> int:
        """The count cap per timed value."""
        return self.ops or DEFAULT_OPS[self.workload]

    @property
    def id(self) -> str:
        bits = [self.workload, self.strategy, "s" + size_id(self.msg_size)]
        if self.workload != "file":
            bits.append(f"p{self.parts}")
        bits.append(f"nd{int(self.nodelay)}")
        bits.append("sb" + (size_id(self.sndbuf) if self.sndbuf else "auto"))
        if self.rcvbuf:
            bits.append("rb" + size_id(self.rcvbuf))
        if self.notsent_lowat:
            bits.append("lw" + size_id(self.notsent_lowat))
        if self.reply:
            bits.append("r" + size_id(self.reply))
        if self.workload == "pipeline":
            bits.append(f"k{self.batch}")
        if self.buffer:
            bits.append("b" + size_id(self.buffer))
        if self.tls:  # only then: every id without TLS stays as it was
            bits.append("tls" + self.tls_version.replace(".", ""))
        if self.driver:
            bits.append(f"c{self.conns}-{self.driver}")
        bits.append(self.transport)
        if self.twin:
            bits.append("twin")
        return "-".join(bits)

    def sort_key(self) -> tuple[str, int, str, int, int, bool, int, int, int, int, int, int,
                                bool, str, int, int, bool]:
        driver = DRIVERS.index(self.driver) + 1 if self.driver else 0
        return (self.transport, WORKLOADS.index(self.workload), self.strategy, self.msg_size,
                self.parts, self.nodelay, self.sndbuf, self.rcvbuf, self.notsent_lowat,
                self.reply, self.batch, self.buffer, self.tls, self.tls_version, self.conns,
                driver, self.twin)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"case has unknown field(s) {', '.join(unknown)}")
        return cls(**data)

    def with_transport(self, transport: str) -> Case:
        return dataclasses.replace(self, transport=transport)

    def option_unavailable(self) -> str | None:
        """Why an option of this case cannot be set on its transport, or None.

        On ``unix`` (AF_UNIX) there is no TCP level: TCP_NODELAY and TCP_NOTSENT_LOWAT do not
        exist there (the kernel says EOPNOTSUPP). nodelay=false is what an AF_UNIX socket
        does anyway, so it stays; SO_SNDBUF and SO_RCVBUF are socket-level and apply.
        """
        if self.transport != "unix":
            return None
        if self.nodelay:
            return "TCP_NODELAY is a TCP option (an AF_UNIX socket is not a TCP socket)"
        if self.notsent_lowat:
            return "TCP_NOTSENT_LOWAT is a TCP option (an AF_UNIX socket is not a TCP socket)"
        return None


CASE_KEYS = tuple(f.name for f in dataclasses.fields(Case))
