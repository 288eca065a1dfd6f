"""What one ``flushbench run`` was asked to do, and the suite it will measure.

:class:`RunOptions` is every setting of a run in one frozen-free dataclass (the CLI fills
it); :func:`prepare_suite` loads, filters and checks the suite before any long work starts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..case import CC_NAME, LOCAL_ONLY, Case
from ..errors import UsageError
from ..measure import fdlimit, plugins, sink, sockopts, strategies
from ..measure.drivers import misfit, unavailable
from ..metadata import machine_id
from ..suites import Suite, load_suite, parse_suite


@dataclass
class RunOptions:
    suite: str = "quick"
    out: Path | None = None
    filters: list[str] = field(default_factory=list)
    dry_run: bool = False
    fast: bool = False
    resume: Path | None = None
    loops_file: Path | None = None
    machine: str | None = None
    strategy_plugins: list[str] = field(default_factory=list)
    pin: dict[str, int] = field(default_factory=dict)
    rounds: int | None = None
    values: int | None = None
    cc: str | None = None  # the client's congestion control: None = the suite's; "" = host's
    seed: int | None = None  # the schedule's seed (None: a fresh one, recorded in meta.json)
    min_effect: float = 0.03  # ratios closer to 1 than this are "same" whatever the interval
    results_root: Path = Path("results")
    transport: str = "loopback"
    quiet: bool = False
    peers: list[str] = field(default_factory=list)
    token_file: Path | None = None
    link: str | None = None
    inherit_environ: str | None = None
    peer_sink: str = sink.DEFAULT  # how the peer takes in one-way data (measure/sink.py)
    cell_sink: bool = True  # a cell with a TLS or unix case copies throughout (False: a
    # resumed run from before that rule, so that its rounds stay alike)
    started: float | None = None  # time.monotonic() when the command started (run/pace.py)
    report: bool = False  # --report: the run's report follows (run/pace.py keeps time for it)


@dataclass
class RunOutcome:
    run_dir: Path | None
    done: int = 0
    failed: int = 0
    interrupted: bool = False
    visits: int = 0  # visits measured now (0 on a resume: the run was already finished)
    paced: str = ""  # how the time budget shortened rounds ("" if it did not: run/pace.py)

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed else 0)


def prepare_suite(opts: RunOptions, meta: dict[str, Any] | None = None) -> Suite:
    """Load, filter and check the suite before any long work starts."""
    for spec in opts.strategy_plugins:
        plugins.load_plugin(spec)
    plugins.load_entry_points()
    if meta is not None:
        if "schedule" not in meta:
            raise UsageError(f"{opts.resume} was measured in blocks by an older flushbench "
                             "(no interleaved schedule); it loads and reports, but cannot be "
                             "resumed: start a new run")
        suite = parse_suite(meta["suite"]["source"], where=f"{opts.resume}/meta.json")
        filters = meta.get("filters") or []
    else:
        suite = load_suite(opts.suite)
        filters = opts.filters
    suite = suite.select(filters)
    if not suite.cases:
        raise UsageError(f"no case of suite {suite.name!r} matches --filter "
                         f"{' '.join(filters)}; see 'flushbench run --dry-run'")
    for case in suite.cases:
        try:
            strategies.check(case.strategy, case.workload)
        except UsageError as exc:
            raise UsageError(f"{suite.path or 'suite ' + suite.name}: {case.id}: {exc}") from None
    changes: dict[str, Any] = {}
    if meta is not None:  # resume: measure the rest exactly as the run measured the start
        saved = meta["schedule"]
        changes.update({k: saved[k] for k in ("rounds", "values", "warmups", "timeout",
                                              "value_time", "cc") if k in saved})
        cc = changes.get("cc", "")  # meta.json may come from anywhere: checked before use
        if not isinstance(cc, str) or (cc and not re.fullmatch(CC_NAME, cc)):
            raise UsageError(f"{opts.resume}/meta.json: schedule.cc is not a congestion "
                             f"control's name ({str(cc)[:40]!r}); the run cannot be resumed")
        said = meta.get("peer_sink", sink.UNRECORDED)  # goes to the peer's command line
        if not sink.known(said):
            raise UsageError(f"{opts.resume}/meta.json: peer_sink is neither 'discard' nor "
                             f"'copy' ({str(said)[:40]!r}); the run cannot be resumed")
    elif opts.fast:  # fewer rounds and values: rough answers, quickly
        changes.update(rounds=max(3, suite.rounds // 2), values=1)
    if opts.rounds:
        changes["rounds"] = opts.rounds
    if opts.values:
        changes["values"] = opts.values
    if opts.cc is not None and meta is None:
        changes["cc"] = opts.cc
    if meta is not None or opts.fast or opts.rounds or opts.values or opts.link or opts.peers:
        changes["budget"] = 0.0  # the budget is the suite's as written, on this host
    cc = changes.get("cc", suite.cc)
    if cc and (why := sockopts.cc_unavailable(cc)):
        where = "--cc" if "cc" in changes and meta is None else \
            (suite.path or "suite " + suite.name)
        raise UsageError(f"{where}: {why}; --cc host keeps the host's default")
    cases, skipped = _on_transport(suite.cases, opts.transport)
    cases, no_driver = _with_drivers(cases, suite.path or "suite " + suite.name)
    skipped += no_driver
    if not cases:
        raise UsageError(f"no case of suite {suite.name!r} can run over {opts.transport}: "
                         f"{skipped[0][1]}" if skipped else f"suite {suite.name!r} is empty")
    changes.update(cases=cases, skipped=skipped)
    return dataclasses.replace(suite, **changes)


def _on_transport(cases: tuple[Case, ...], transport: str
                  ) -> tuple[tuple[Case, ...], tuple[tuple[str, str], ...]]:
    """The cases as the run's transport measures them, and the (id, reason) of those left out.

    A loopback run keeps each case's own transport (a suite may set ``transport = ["loopback",
    "unix"]``); another transport replaces it (duplicates merged). AF_UNIX cases cannot go to
    a remote or emulated peer; a case whose option or strategy needs TCP is "unavailable over
    unix", skipped with that reason rather than failed mid-run.
    """
    skipped: list[tuple[str, str]] = []
    if transport != "loopback":
        kept: dict[str, Case] = {}
        for case in cases:
            if case.transport in LOCAL_ONLY and transport not in LOCAL_ONLY + ("loopback6",):
                skipped.append((case.id, f"unavailable over {transport}: {case.transport} "
                                "sockets reach this host only"))
            else:
                try:
                    moved = case.with_transport(transport)
                except UsageError as exc:  # a TLS case, say: TLS needs a TCP transport
                    skipped.append((case.id, f"unavailable over {transport}: {exc}"))
                    continue
                kept.setdefault(moved.id, moved)
        cases = tuple(kept.values())
    out = []
    for case in cases:
        reason = strategies.unavailable_over(case)
        if reason:
            skipped.append((case.id, reason))
        else:
            out.append(case)
    return tuple(out), tuple(skipped)


def _with_drivers(cases: tuple[Case, ...], where: str
                  ) -> tuple[tuple[Case, ...], tuple[tuple[str, str], ...]]:
    """Driver cases checked before any run: a driver that cannot drive the strategy is an
    error (the suite is wrong); one not installed here is skipped with its reason; so many
    connections that RLIMIT_NOFILE cannot be raised for them is an error."""
    kept, skipped = [], []
    for case in cases:
        if not case.driver:
            kept.append(case)
            continue
        why = misfit(case.driver, case.strategy, case.workload,
                     strategies.get(case.strategy).is_async)
        if why:
            raise UsageError(f"{where}: {case.id}: {why}")
        missing = unavailable(case.driver)
        if missing:
            skipped.append((case.id, f"driver {case.driver} {missing}"))
            continue
        kept.append(case)
    most = max((c.conns for c in kept if c.driver), default=0)
    if most:
        fdlimit.ensure(most, "flushbench (and the workers it starts)")
    return tuple(kept), tuple(skipped)


def auto_pin() -> dict[str, int]:
    """The default placement: the visit workers and the peer on two different CPUs.

    Left to the kernel, each connection's peer thread lands on the client's CPU or the
    other one, and a round trip's p50 moves between about 25 and 75 µs with it (a 2-CPU
    VM): per connection, so it swamps a paired comparison. Fixed CPUs remove that.
    """
    if not hasattr(os, "sched_getaffinity"):
        return {}
    cpus = sorted(os.sched_getaffinity(0))
    return {"client": cpus[-1], "peer": cpus[0]} if len(cpus) >= 2 else {}


def load_loops(path: Path | None) -> dict[str, int]:
    """A loops file (``loops.json`` or a run directory holding one): case id -> loops."""
    if path is None:
        return {}
    path = Path(path)
    if path.is_dir():
        path = path / "loops.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--loops-file {path}: cannot read it ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, int) and not isinstance(v, bool)
                                             and v > 0 for v in data.values()):
        raise UsageError(f"--loops-file {path}: expected a JSON object of case id -> loops")
    return data


def default_run_dir(opts: RunOptions, suite: Suite, host: dict[str, Any]) -> Path:
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + suite.name
    return opts.results_root / (opts.machine or machine_id(host)) / run_id
