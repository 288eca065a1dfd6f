"""Where a suite's wall time goes: the manager's steps, the workers' phases, their start-up.

    python bench/bench_breakdown.py                       # the quick suite
    python bench/bench_breakdown.py --suite smoke --no-startup
    python bench/bench_breakdown.py --suite quick --filter 'stream-*' --out /tmp/bd

The suite runs in this process through the public hook, ``flushbench.run.manager.run(opts,
progress_factory, timeline=Timeline())`` (:mod:`flushbench.run.timing`). A run is rounds of
*visits*: one worker process per cell and round (``python -m flushbench.measure.visit``)
measures that cell's cases, each on its own connection (a *trial*). The manager records its
spans: the host probe (before the first visit and after each), each visit ("visit (all of
it)"), inside it the worker process, the merge and write of the trials, table rows, samples,
pyperf.json and loops.json, and at the end "verdicts" (verdicts.csv). It hands on each
trial's own phases (``Session.phases``: connect, temp file, setup, warm-up, timed values).
The progress lines are timed by wrapping the progress object this script passes in, and the
end (loading the run and printing its verdicts, as ``flushbench run`` does) is timed here.
Whatever is left of the wall time is the run's start and end outside the visits: suite, host
metadata, peer process, run directory. Then ``--startup`` (the default) times interpreter
start-ups and imports in subprocesses, median of 7 each, and estimates from them the share
of the worker processes' time that is start-up.

Not reported through the hook, so together in the row "worker: the rest": a worker's spawn,
imports and plugin loading, untimed warm-up values (the suite's ``warmups``), per-value
accounting (TCP_INFO, latency copy), closing each trial's connection, writing its record and
the exit (``os._exit``); the start-up probes estimate its largest part.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import load_line, log_tail, workdir

from flushbench import procs
from flushbench.case import Case
from flushbench.errors import FlushbenchError
from flushbench.run.schedule import Visit
from flushbench.run.timing import Timeline
from flushbench.suites import Suite

VISIT = "visit (all of it)"
WORKER = "worker process"
MERGE = "merge and write"
PROBE = "host probe"
VERDICTS = "verdicts"
PROBE_RUNS = 7
PROBE_TIMEOUT_S = 60.0
WORKER_START = "worker start-up (as the manager runs it)"


class TimedProgress:
    """The real progress output, with the time spent in it."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.seconds = inner, 0.0

    def __enter__(self) -> TimedProgress:
        self.inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.__exit__(*exc)

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - t0

    def start_visit(self, visit: Visit, cases: Sequence[Case]) -> None:
        with self._timed():
            self.inner.start_visit(visit, cases)

    def end_visit(self, visit: Visit, rows: Sequence[Mapping[str, Any]]) -> None:
        with self._timed():
            self.inner.end_visit(visit, rows)


@dataclass
class Measured:
    """One in-process run: its wall time, the timeline, and what this script timed."""

    wall: float
    timeline: Timeline
    progress_s: float = 0.0
    finish_s: float = 0.0
    code: int = 0
    cases: int = 0  # in the plan, twins included
    rounds: int = 0


def run_in_process(suite: str, filters: list[str], out: Path, log: Path) -> Measured:
    """``flushbench run --suite S --out OUT`` in this process, with a Timeline."""
    from rich.console import Console

    from flushbench.analysis.runs import open_runs
    from flushbench.report.terminal import noise_line, quality_lines, verdict_table
    from flushbench.run.manager import run
    from flushbench.run.options import RunOptions
    from flushbench.run.progress import RunProgress

    timeline = Timeline()
    shown: list[TimedProgress] = []
    planned: list[Visit] = []
    with open(log, "w") as fh:
        console = Console(file=fh, width=120)

        def progress(suite: Suite, visits: list[Visit]) -> TimedProgress:
            planned.extend(visits)
            shown.append(TimedProgress(RunProgress(suite, visits, False, console)))
            return shown[-1]

        opts = RunOptions(suite=suite, out=out, filters=filters)
        t0 = time.perf_counter()
        outcomes = run(opts, progress, timeline=timeline)
        t1 = time.perf_counter()
        for outcome in outcomes:  # what `flushbench run` does at the end
            if outcome.run_dir is not None and not outcome.interrupted:
                for stored in open_runs([outcome.run_dir]):
                    table = verdict_table(stored, list(stored.table["case"]))
                    if table is not None:
                        console.print(table)
                        console.print(noise_line(stored))
                    for line in quality_lines(stored.table):
                        console.print(f"warning: {line}", markup=False)
        wall = time.perf_counter() - t0
    return Measured(wall, timeline, sum(p.seconds for p in shown), wall - (t1 - t0),
                    max((o.exit_code for o in outcomes), default=0),
                    len({c.id for v in planned for c in v.cases}),
                    len({v.round for v in planned}))


def phase_sums(timeline: Timeline) -> dict[str, float]:
    """The trials' phases (Session.phases), summed over every trial of every worker."""
    sums: dict[str, float] = defaultdict(float)
    for trial in timeline.workers:
        for key, value in trial.items():
            if key != "case":
                sums[key] += float(value)
    return sums


def breakdown_rows(m: Measured) -> list[tuple[str, float]]:
    """(label, seconds), adding up to the wall time; the last row is the rest."""
    tl = m.timeline
    ph = phase_sums(tl)
    setup = ph["setup_s"] - ph["file_s"] - ph["warm_up_s"]
    named = [("worker: TCP connect", ph["connect_s"]),
             ("worker: temp file (file workload)", ph["file_s"]),
             ("worker: HELLO, socket options, strategy", setup),
             ("worker: warm-up (<= 64 ops / 0.05 s)", ph["warm_up_s"]),
             (f"worker: timed values ({int(ph['values'])}; GO/READY + operations)",
              ph["values_s"])]
    workers = tl.inside.get((VISIT, WORKER), 0.0)
    rows = [*named, ("worker: the rest (start-up, per-value accounting, close, exit)",
                     workers - sum(s for _, s in named))]
    rows += [("manager: merge and write (trials, rows, samples, pyperf.json, loops)",
              tl.inside.get((VISIT, MERGE), 0.0)),
             ("manager: host CPU probe (first, and after each visit)",
              tl.totals.get(PROBE, 0.0)),
             ("manager: rest of each visit (plan file, clean-up)", tl.own(VISIT)),
             ("manager: progress lines", m.progress_s),
             ("end: verdicts.csv", tl.totals.get(VERDICTS, 0.0)),
             ("end: load + verdict table", m.finish_s)]
    rows.append(("start and end: suite, host metadata, peer, run directory (rest)",
                 m.wall - sum(s for _, s in rows)))
    return rows


def format_breakdown(m: Measured, start_up_s: float | None = None) -> list[str]:
    tl = m.timeline
    procs = tl.counts.get(WORKER, 0)
    n = max(1, procs)
    lines = [f"total wall {m.wall:.1f} s; {m.cases} cases in {m.rounds} rounds, "
             f"{tl.counts.get(VISIT, 0)} visits, {procs} worker processes, "
             f"{len(tl.workers)} trials",
             f"  {'phase':<70} {'total s':>8} {'per worker ms':>14} {'share':>6}"]
    for label, secs in breakdown_rows(m):
        lines.append(f"  {label:<70} {secs:>8.2f} {secs / n * 1e3:>14.1f} "
                     f"{secs / m.wall * 100:>5.1f}%")
    if start_up_s is not None:
        est = start_up_s * procs
        lines.append(f"  of the workers' rest, start-up (probe: {start_up_s * 1e3:.1f} ms x "
                     f"{procs}) is about {est:.2f} s, {est / m.wall * 100:.1f}%")
    return lines


def slowest_warm_ups(timeline: Timeline, top: int = 8) -> str:
    warm: dict[str, float] = defaultdict(float)
    for w in timeline.workers:
        warm[str(w.get("case", "?"))] += float(w.get("warm_up_s", 0.0))
    ranked = sorted(warm.items(), key=lambda kv: -kv[1])[:top]
    return ("slowest warm-ups (s, all trials of the case): "
            + ", ".join(f"{cid} {secs:.2f}" for cid, secs in ranked))


def median_run_s(argv: list[str], n: int = PROBE_RUNS, poll: bool = False) -> float:
    """Median wall time of ``argv`` from spawn to reaped; ``poll``: with Popen's own
    ``wait(timeout)``, which polls (sleeps of up to 50 ms); otherwise as the manager waits
    for a visit's worker (``procs.wait``: at the exit)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:  # with a timeout, Popen.wait polls (sleeps up to 50 ms); procs.wait does not
            if poll:
                proc.wait(PROBE_TIMEOUT_S)
            else:
                procs.wait(proc, PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def start_up_costs() -> list[tuple[str, float]]:
    """Median wall time of interpreter starts, imports and exits."""
    py, w = sys.executable, "import flushbench.measure.visit"
    quit_ = w + "; import os; os._exit(0)"  # the worker ends with os._exit
    cli = ("import flushbench.cli, flushbench.commands, flushbench.run.manager, "
           "flushbench.run.progress, flushbench.report.terminal, flushbench.results")
    probes = [("python -c pass", [py, "-c", "pass"], False),
              ("python -S -c pass (no site)", [py, "-S", "-c", "pass"], False),
              ("python -c 'import asyncio'", [py, "-c", "import asyncio"], False),
              (f"python -c '{w}'", [py, "-c", w], False),
              (f"python -c '{w}' (Popen.wait with a timeout: polls)", [py, "-c", w], True),
              (f"python -c '{w}; os._exit(0)'", [py, "-c", quit_], False),
              (WORKER_START, [py, "-c", quit_], False),
              ("python -m flushbench.measure.visit --help",
               [py, "-m", "flushbench.measure.visit", "--help"], False),
              ("python -c 'import the CLI modules of run'", [py, "-c", cli], False)]
    return [(label, median_run_s(argv, poll=poll)) for label, argv, poll in probes]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", default="quick", help="suite to run (default quick)")
    p.add_argument("--filter", action="append", default=[], help="as flushbench run's")
    p.add_argument("--out", type=Path, help="keep the run and its log here")
    p.add_argument("--no-startup", dest="startup", action="store_false",
                   help="skip the interpreter start-up probes")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with workdir(args.out, "flushbench-breakdown-") as work:
        before = load_line()
        log = work / "breakdown-run.log"
        try:
            m = run_in_process(args.suite, args.filter, work / "run", log)
        except FlushbenchError as exc:
            print(f"breakdown: {exc}", file=sys.stderr)
            return 2
        filters = " ".join(f"--filter={f}" for f in args.filter)
        print(f"breakdown: flushbench run --suite {args.suite} {filters}".rstrip()
              + f" (in-process; exit {m.code}; log {log if args.out else 'not kept'})")
        print(f"  before: {before}; after: {load_line()}")
        if m.code:
            print(log_tail(log), file=sys.stderr)
        costs = start_up_costs() if args.startup else []
        print("\n".join(format_breakdown(m, dict(costs).get(WORKER_START))))
        print(slowest_warm_ups(m.timeline))
        if costs:
            print(f"start-up probes (median of {PROBE_RUNS}):")
            for label, secs in costs:
                print(f"  {label:<72} {secs * 1e3:7.1f} ms")
    return m.code


if __name__ == "__main__":
    sys.exit(main())
