"""Where a suite's wall time goes: the manager's steps, the workers' phases, their start-up.

    python bench/bench_breakdown.py                       # the quick suite
    python bench/bench_breakdown.py --suite smoke --no-startup
    python bench/bench_breakdown.py --suite quick --filter 'stream-*' --out /tmp/bd

The suite runs in this process through the public hook, ``flushbench.run.manager.run(opts,
progress_factory, timeline=Timeline())`` (:mod:`flushbench.run.timing`): the manager records
its spans (each case, pyperf's workers, the merge, the writes, the host probe) and hands on
each worker process's own phases (``Session.phases``: connect, temp file, setup, warm-up,
timed values). The progress lines are timed by wrapping the progress object this script
passes in, and the end (loading the run and the summary table, as ``flushbench run`` does)
is timed here. Whatever is left of the wall time is the run's start and end outside the
cases: suite, host metadata, peer process, run directory. Then ``--startup`` (the default)
times interpreter start-ups and imports in subprocesses, median of 7 each, and estimates
from them the share of the workers' time that is start-up.

Dropped from the old ``bench_harness.py breakdown``, which patched flushbench and pyperf
internals: the split of a worker's life into spawn, imports, pyperf Runner set-up, pyperf's
warm-up value, per-value accounting (TCP_INFO, latency copy), pyperf metadata, saving the
parts, close and exit, and pyperf's own bookkeeping in the manager. None of these is
reported through the hook; together they are the row "worker: the rest", and the start-up
probes estimate its largest part. Also dropped: the table.csv rewrite apart from the samples
file (one span, "table row and samples", now), and ``--exit-early`` (workers now always end
with ``os._exit``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import load_line, log_tail, workdir

from flushbench.case import Case
from flushbench.errors import FlushbenchError
from flushbench.run.timing import Timeline
from flushbench.suites import Suite

CASE = "case (all of it)"
WORKERS = "pyperf workers"
IN_CASE = [("manager: merge parts (numpy)", "merge"),
           ("manager: table row and samples", "table row and samples"),
           ("manager: pyperf.json rewrite", "pyperf.json rewrite")]
PROBE_RUNS = 7
PROBE_TIMEOUT_S = 60.0
WORKER_START = "worker start-up (as pyperf runs it)"


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

    def start_case(self, case: Case) -> None:
        with self._timed():
            self.inner.start_case(case)

    def end_case(self, case: Case, row: Mapping[str, Any]) -> None:
        with self._timed():
            self.inner.end_case(case, row)


@dataclass
class Measured:
    """One in-process run: its wall time, the timeline, and what this script timed."""

    wall: float
    timeline: Timeline
    progress_s: float = 0.0
    finish_s: float = 0.0
    code: int = 0


def run_in_process(suite: str, filters: list[str], out: Path, log: Path) -> Measured:
    """``flushbench run --suite S --out OUT`` in this process, with a Timeline."""
    from rich.console import Console

    import flushbench
    from flushbench.report.terminal import quality_lines, summary_table
    from flushbench.run.manager import run
    from flushbench.run.options import RunOptions
    from flushbench.run.progress import RunProgress

    timeline = Timeline()
    shown: list[TimedProgress] = []
    with open(log, "w") as fh:
        console = Console(file=fh, width=120)

        def progress(suite: Suite, plan: list[Case]) -> TimedProgress:
            shown.append(TimedProgress(RunProgress(suite, plan, False, console)))
            return shown[-1]

        opts = RunOptions(suite=suite, out=out, filters=filters)
        t0 = time.perf_counter()
        outcomes = run(opts, progress, timeline=timeline)
        t1 = time.perf_counter()
        for outcome in outcomes:  # what `flushbench run` does at the end
            if outcome.run_dir is not None and not outcome.interrupted:
                frame = flushbench.load(outcome.run_dir)
                console.print(summary_table(frame, title=str(outcome.run_dir)))
                for line in quality_lines(frame):
                    console.print(f"warning: {line}", markup=False)
        wall = time.perf_counter() - t0
    return Measured(wall, timeline, sum(p.seconds for p in shown), wall - (t1 - t0),
                    max((o.exit_code for o in outcomes), default=0))


def phase_sums(timeline: Timeline) -> dict[str, float]:
    """The workers' phases (Session.phases), summed over every worker process."""
    sums: dict[str, float] = defaultdict(float)
    for worker in timeline.workers:
        for key, value in worker.items():
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
             ("worker: warm-up (<= 64 ops / 0.2 s)", ph["warm_up_s"]),
             (f"worker: timed values ({int(ph['values'])}; GO/READY + operations)",
              ph["values_s"])]
    workers = tl.inside.get((CASE, WORKERS), 0.0)
    rows = [*named, ("worker: the rest (start-up, pyperf, per-value accounting, exit)",
                     workers - sum(s for _, s in named))]
    rows += [(label, tl.inside.get((CASE, name), 0.0)) for label, name in IN_CASE]
    rows += [("manager: host CPU probe (first, and after each case)",
              tl.totals.get("host probe", 0.0)),
             ("manager: rest of each case (bookkeeping)", tl.own(CASE)),
             ("manager: progress lines", m.progress_s),
             ("end: loops.json", tl.totals.get("loops.json", 0.0)),
             ("end: load + summary table", m.finish_s)]
    rows.append(("start and end: suite, host metadata, peer, run directory (rest)",
                 m.wall - sum(s for _, s in rows)))
    return rows


def format_breakdown(m: Measured, start_up_s: float | None = None) -> list[str]:
    tl = m.timeline
    n = max(1, len(tl.workers))
    lines = [f"total wall {m.wall:.1f} s; {tl.counts.get(CASE, 0)} cases, "
             f"{len(tl.workers)} worker processes",
             f"  {'phase':<66} {'total s':>8} {'per worker ms':>14} {'share':>6}"]
    for label, secs in breakdown_rows(m):
        lines.append(f"  {label:<66} {secs:>8.2f} {secs / n * 1e3:>14.1f} "
                     f"{secs / m.wall * 100:>5.1f}%")
    if start_up_s is not None:
        est = start_up_s * len(tl.workers)
        lines.append(f"  of the workers' rest, start-up (probe: {start_up_s * 1e3:.1f} ms x "
                     f"{len(tl.workers)}) is about {est:.2f} s, {est / m.wall * 100:.1f}%")
    return lines


def slowest_warm_ups(timeline: Timeline, top: int = 8) -> str:
    warm: dict[str, float] = defaultdict(float)
    for w in timeline.workers:
        warm[str(w.get("case", "?"))] += float(w.get("warm_up_s", 0.0))
    ranked = sorted(warm.items(), key=lambda kv: -kv[1])[:top]
    return ("slowest warm-ups (s, all processes of the case): "
            + ", ".join(f"{cid} {secs:.2f}" for cid, secs in ranked))


def median_run_s(argv: list[str], n: int = PROBE_RUNS, poll: bool = False) -> float:
    """Median wall time of ``argv`` from spawn to reaped; ``poll``: wait as pyperf waits."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:  # with a timeout, Popen.wait polls (sleeps up to 50 ms), as pyperf's manager
            proc.wait(PROBE_TIMEOUT_S if poll else None)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def start_up_costs() -> list[tuple[str, float]]:
    """Median wall time of interpreter starts, imports and exits."""
    py, w = sys.executable, "import flushbench.measure.worker"
    quit_ = w + "; import os; os._exit(0)"  # the worker ends with os._exit
    cli = ("import flushbench.cli, flushbench.commands, flushbench.run.manager, "
           "flushbench.run.progress, flushbench.report.terminal, flushbench.results")
    probes = [("python -c pass", [py, "-c", "pass"], False),
              ("python -S -c pass (no site)", [py, "-S", "-c", "pass"], False),
              ("python -c 'import pyperf'", [py, "-c", "import pyperf"], False),
              ("python -c 'import pyperf, asyncio'", [py, "-c", "import pyperf, asyncio"],
               False),
              (f"python -c '{w}'", [py, "-c", w], False),
              (f"python -c '{w}' (wait(timeout=60), as pyperf)", [py, "-c", w], True),
              (f"python -c '{w}; os._exit(0)'", [py, "-c", quit_], False),
              (WORKER_START, [py, "-c", quit_], True),
              ("python -m flushbench.measure.worker --help",
               [py, "-m", "flushbench.measure.worker", "--help"], False),
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
