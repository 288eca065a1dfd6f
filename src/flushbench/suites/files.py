"""Suite files: find them (package data or a path), read them, check their ``[suite]`` table."""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..case import CC_NAME, Case
from ..errors import UsageError, did_you_mean
from .matrix import expand, filter_cases

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass(frozen=True, slots=True)
class Suite:
    """A named, ordered list of cases plus how to measure them.

    A run is ``rounds`` rounds; in each, every case is measured once (a *trial*: its own
    connection, ``warmups`` untimed values, then ``values`` timed values of about
    ``value_time`` seconds each, the loop count calibrated in the first round and frozen).
    """

    name: str
    cases: tuple[Case, ...]
    rounds: int = 10
    values: int = 8
    warmups: int = 0
    value_time: float = 0.01  # seconds: a value of the first round stops early past this
    timeout: int = 60  # seconds per case of a visit (a stalled worker is stopped)
    description: str = ""
    # the link the suite is meant for (a --link spec or profile): on loopback it says so
    link: str = ""
    # the TCP congestion control of every client connection (TCP_CONGESTION); "": never set,
    # the host's default (net.ipv4.tcp_congestion_control)
    cc: str = ""
    # seconds of wall time the suite promises on the host it was sized for; later rounds run
    # fewer values when a slow host would overrun it (run/pace.py); 0: no budget
    budget: float = 0.0
    source: str = ""  # the TOML text, kept in meta.json
    path: str = ""  # where it was read from
    # (case id, reason) of cases left out because their transport lacks what they need
    # (a TCP option over unix): filled by ``run.options.prepare_suite``
    skipped: tuple[tuple[str, str], ...] = ()

    def select(self, patterns: Sequence[str] | None) -> Suite:
        return dataclasses.replace(self, cases=tuple(filter_cases(self.cases, patterns)))


SUITE_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str, "description": str, "rounds": int, "values": int, "warmups": int,
    "value_time": (int, float), "timeout": int, "link": str, "cc": str,
    "budget": (int, float)}
MAX_ROUNDS = 1000


def available_suites() -> dict[str, Path]:
    """The named suites shipped with flushbench (package data), by name."""
    found: dict[str, Path] = {}
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            found[entry.name[:-5]] = Path(str(entry))
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
        raise UsageError(f"unknown suite {name_or_path!r}"
                         f"{did_you_mean(name_or_path, suites)}; expected a .toml file or "
                         f"one of: {known}")
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
    head: Any = data.get("suite", {})
    if not isinstance(head, dict):
        raise UsageError(f"{where}: [suite] must be a table")
    for key, value in head.items():
        if key == "processes":
            raise UsageError(f"{where}: [suite] processes is gone: every case is now measured "
                             "once per round, interleaved with its baseline; write rounds = N "
                             "(10 or more) instead")
        if key not in SUITE_KEYS:
            raise UsageError(f"{where}: [suite] has unknown key {key!r}; expected some of "
                             f"{', '.join(SUITE_KEYS)}")
        if not isinstance(value, SUITE_KEYS[key]) or isinstance(value, bool):
            raise UsageError(f"{where}: [suite] {key} has the wrong type ({value!r})")
    for key in ("rounds", "values", "timeout"):
        if key in head and head[key] < 1:
            raise UsageError(f"{where}: [suite] {key} must be >= 1, got {head[key]}")
    if head.get("rounds", 1) > MAX_ROUNDS:
        raise UsageError(f"{where}: [suite] rounds must be <= {MAX_ROUNDS}")
    if head.get("warmups", 0) < 0 or head.get("value_time", 1) <= 0:
        raise UsageError(f"{where}: [suite] warmups must be >= 0 and value_time > 0")
    if not 0 <= head.get("budget", 0) < math.inf:
        raise UsageError(f"{where}: [suite] budget must be seconds >= 0 (0: none), got "
                         f"{head['budget']!r}")
    if head.get("cc") and not re.fullmatch(CC_NAME, head["cc"]):
        raise UsageError(f"{where}: [suite] cc must name a TCP congestion control like "
                         f"\"cubic\" or \"bbr\" (or \"\" for the host's default), got "
                         f"{head['cc']!r}")
    matrices = data.get("matrix")
    if not isinstance(matrices, list) or not matrices:
        raise UsageError(f"{where}: needs at least one [[matrix]] table")
    cases = expand(matrices, where)
    settings: dict[str, Any] = dict(head)
    name = str(settings.pop("name", default_name))
    for key in ("value_time", "budget"):
        if key in settings:
            settings[key] = float(settings[key])
    return Suite(name=name, cases=tuple(cases), source=text, **settings)
