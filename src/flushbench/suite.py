"""Cases, suite files and matrix expansion.

A *case* is one point of the matrix workload × strategy × options × size × transport.
A suite is a TOML file whose ``[[matrix]]`` tables each expand to the product of their
list-valued keys; the union is de-duplicated and sorted, so a suite always gives the same
ordered list of cases, and every case has a stable id built from its parameters.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

WORKLOADS = ("stream", "rr", "wwr", "pipeline", "file")
TRANSPORTS = ("loopback", "loopback6", "emulated", "remote")
HEADER_SIZE = 4  # every message starts with a 4-byte big-endian length header

# Operations per timed value (a count cap; a value also stops at the suite's value_time).
DEFAULT_OPS = {"stream": 20000, "rr": 2000, "wwr": 500, "pipeline": 500, "file": 64}
MAX_SIZE = 64 * 1024 * 1024  # largest message or file one operation may move
MAX_OPS = 10_000_000


def _human(n: int) -> str:
    """64 -> '64', 65536 -> '64K', 1048576 -> '1M'; only exact multiples are shortened."""
    for unit, scale in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


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
                     "batch", "buffer", "ops"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                 f"{name} must be a whole number >= 0, got {value!r}")
        need(isinstance(self.nodelay, bool), f"nodelay must be true or false, got {self.nodelay!r}")
        need(1 <= self.parts <= 64, f"parts must be 1..64, got {self.parts}")
        need(1 <= self.batch <= 4096, f"batch must be 1..4096, got {self.batch}")
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

    # -- derived -------------------------------------------------------------------------

    @property
    def reply_size(self) -> int:
        """Bytes the peer answers per operation (0 for one-way workloads)."""
        if self.workload in ("stream", "file"):
            return 0
        if self.workload == "wwr":
            return self.reply or 1
        if self.workload == "pipeline":
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
        bits = [self.workload, self.strategy, "s" + _human(self.msg_size)]
        if self.workload != "file":
            bits.append(f"p{self.parts}")
        bits.append(f"nd{int(self.nodelay)}")
        bits.append("sb" + (_human(self.sndbuf) if self.sndbuf else "auto"))
        if self.rcvbuf:
            bits.append("rb" + _human(self.rcvbuf))
        if self.notsent_lowat:
            bits.append("lw" + _human(self.notsent_lowat))
        if self.reply:
            bits.append("r" + _human(self.reply))
        if self.workload == "pipeline":
            bits.append(f"k{self.batch}")
        if self.buffer:
            bits.append("b" + _human(self.buffer))
        bits.append(self.transport)
        return "-".join(bits)

    def sort_key(self) -> tuple:
        return (self.transport, WORKLOADS.index(self.workload), self.strategy, self.msg_size,
                self.parts, self.nodelay, self.sndbuf, self.rcvbuf, self.notsent_lowat,
                self.reply, self.batch, self.buffer)

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


CASE_KEYS = tuple(f.name for f in dataclasses.fields(Case))


@dataclass(frozen=True, slots=True)
class Suite:
    """A named, ordered list of cases plus how to measure them."""

    name: str
    cases: tuple[Case, ...]
    processes: int = 2
    values: int = 3
    warmups: int = 1
    value_time: float = 0.25  # seconds: a value stops early past this (slow cases)
    timeout: int = 120  # seconds for one worker process
    description: str = ""
    source: str = ""  # the TOML text, kept in meta.json
    path: str = ""  # where it was read from

    def select(self, patterns: Sequence[str] | None) -> Suite:
        return dataclasses.replace(self, cases=tuple(filter_cases(self.cases, patterns)))


SUITE_KEYS = {"name": str, "description": str, "processes": int, "values": int,
              "warmups": int, "value_time": (int, float), "timeout": int}


def id_matches(case_id: str, patterns: Sequence[str]) -> bool:
    """True if ``case_id`` matches any pattern: a glob (``*``, ``?``, ``[``) or a substring.

    A pattern may hold several alternatives separated by commas.
    """
    for pat in patterns:
        for p in pat.split(","):
            if not p:
                continue
            if any(c in p for c in "*?["):
                if fnmatch.fnmatchcase(case_id, p):
                    return True
            elif p in case_id:
                return True
    return False


def filter_cases(cases: Iterable[Case], patterns: Sequence[str] | None) -> list[Case]:
    """Keep the cases whose id matches any of ``patterns`` (all of them when there are none)."""
    if not patterns:
        return list(cases)
    return [c for c in cases if id_matches(c.id, patterns)]


def expand(matrices: Sequence[dict[str, Any]], where: str = "suite") -> list[Case]:
    """Expand ``[[matrix]]`` tables to a sorted list of unique cases."""
    seen: dict[str, Case] = {}
    for index, table in enumerate(matrices, 1):
        if not isinstance(table, dict):
            raise UsageError(f"{where}: [[matrix]] #{index} must be a table")
        unknown = sorted(set(table) - set(CASE_KEYS))
        if unknown:
            raise UsageError(f"{where}: [[matrix]] #{index} has unknown key {unknown[0]!r}; "
                             f"expected some of {', '.join(CASE_KEYS)}")
        for required in ("workload", "strategy", "msg_size"):
            if required not in table:
                raise UsageError(f"{where}: [[matrix]] #{index} needs {required!r}")
        keys = [k for k in CASE_KEYS if k in table]
        axes = [v if isinstance(v, list) else [v] for v in (table[k] for k in keys)]
        for key, axis in zip(keys, axes):
            if not axis:
                raise UsageError(f"{where}: [[matrix]] #{index} key {key!r} is an empty list")
        for combo in itertools.product(*axes):
            try:
                case = Case(**dict(zip(keys, combo)))
            except UsageError as exc:
                raise UsageError(f"{where}: [[matrix]] #{index}: {exc}") from None
            except TypeError as exc:
                raise UsageError(f"{where}: [[matrix]] #{index}: {exc}") from None
            seen.setdefault(case.id, case)
    return sorted(seen.values(), key=Case.sort_key)


def suite_dirs() -> list[Path]:
    """Where named suites live: ./bench/suites, then the checkout this package sits in."""
    here = Path(__file__).resolve()
    dirs = [Path.cwd() / "bench" / "suites", here.parents[2] / "bench" / "suites"]
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d not in out:
            out.append(d)
    return out


def available_suites() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in suite_dirs():
        for path in sorted(d.glob("*.toml")):
            found.setdefault(path.stem, path)
    return found


def resolve_suite(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UsageError(f"suite file {name_or_path} does not exist")
        return path
    suites = available_suites()
    if name_or_path not in suites:
        known = ", ".join(sorted(suites)) or "none found"
        raise UsageError(f"unknown suite {name_or_path!r}; expected a .toml file or one of: "
                         f"{known}")
    return suites[name_or_path]


def load_suite(name_or_path: str) -> Suite:
    path = resolve_suite(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"suite file {path} cannot be read: {exc}") from None
    return dataclasses.replace(parse_suite(text, where=str(path), default_name=path.stem),
                               path=str(path))


def parse_suite(text: str, where: str = "suite", default_name: str = "custom") -> Suite:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"suite", "matrix"})
    if unknown:
        raise UsageError(f"{where}: unknown top-level key {unknown[0]!r}; expected [suite] "
                         "and [[matrix]] tables")
    head = data.get("suite", {})
    if not isinstance(head, dict):
        raise UsageError(f"{where}: [suite] must be a table")
    for key, value in head.items():
        if key not in SUITE_KEYS:
            raise UsageError(f"{where}: [suite] has unknown key {key!r}; expected some of "
                             f"{', '.join(SUITE_KEYS)}")
        if not isinstance(value, SUITE_KEYS[key]) or isinstance(value, bool):
            raise UsageError(f"{where}: [suite] {key} has the wrong type ({value!r})")
    for key in ("processes", "values", "timeout"):
        if key in head and head[key] < 1:
            raise UsageError(f"{where}: [suite] {key} must be >= 1, got {head[key]}")
    if head.get("warmups", 0) < 0 or head.get("value_time", 1) <= 0:
        raise UsageError(f"{where}: [suite] warmups must be >= 0 and value_time > 0")
    matrices = data.get("matrix")
    if not isinstance(matrices, list) or not matrices:
        raise UsageError(f"{where}: needs at least one [[matrix]] table")
    cases = expand(matrices, where)
    head = dict(head)
    name = head.pop("name", default_name)
    return Suite(name=name, cases=tuple(cases), source=text,
                 **{k: (float(v) if k == "value_time" else v) for k, v in head.items()})
