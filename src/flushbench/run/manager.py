"""The pyperf manager side of ``flushbench run``.

One manager process reaches the peer (:mod:`.targets`), then asks pyperf for one benchmark
per case (:mod:`.pyperf_adapter`). pyperf spawns worker processes
(``python -m flushbench.measure.worker``) which get every per-case option on their command
line. After each case the manager merges the workers' counters and samples into a table row
(:mod:`.merge`) and writes it, so an interrupted run keeps every finished case.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import pyperf

from .. import __version__
from ..case import Case
from ..measure.protocol import format_addr
from ..metadata import collect_host, machine_id
from ..results import ResultRow, RunWriter, atomic_write, read_meta
from ..suites import Suite
from . import hostspeed, merge
from .options import RunOptions, RunOutcome, default_run_dir, load_loops, prepare_suite
from .pyperf_adapter import CaseRunner
from .targets import PeerLink, Target, targets
from .timing import Timeline, span

if TYPE_CHECKING:
    import numpy as np


class Progress(Protocol):
    """What the manager tells the user as cases start and end (see :mod:`.progress`)."""

    def start_case(self, case: Case) -> None: ...

    def end_case(self, case: Case, row: ResultRow) -> None: ...


ProgressFactory = Callable[[Suite, list[Case]], AbstractContextManager[Progress]]


@contextlib.contextmanager
def signals_to_interrupt() -> Iterator[dict[str, bool]]:
    """SIGINT and SIGTERM both stop the run cleanly, and we remember that they did."""
    state = {"interrupted": False}

    def handler(signum: int, frame: FrameType | None) -> None:
        if state["interrupted"]:
            return  # already stopping: let the clean-up finish
        state["interrupted"] = True
        raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class Manager:
    """Runs the planned cases of one run against one peer."""

    def __init__(self, suite: Suite, writer: RunWriter, link: PeerLink, opts: RunOptions,
                 loops: dict[str, int], timeline: Timeline | None = None) -> None:
        self.suite, self.writer, self.opts = suite, writer, opts
        self.link, self.loops, self.timeline = link, loops, timeline
        self.parts = Path(tempfile.mkdtemp(prefix=".parts-", dir=writer.dir))
        self.plan_file = self.parts / "plan.txt"
        self.current: Case | None = None
        self.pending_bench: pyperf.Benchmark | None = None
        self.pyperf_suite: pyperf.BenchmarkSuite | None = None
        pyperf_file = writer.dir / "pyperf.json"
        if pyperf_file.exists():
            self.pyperf_suite = pyperf.BenchmarkSuite.load(str(pyperf_file))
        argv = ["--quiet", "--processes", str(suite.processes), "--values", str(suite.values),
                "--warmups", str(suite.warmups), "--timeout", str(suite.timeout)]
        if opts.inherit_environ:
            argv += ["--inherit-environ", opts.inherit_environ]
        if "client" in opts.pin:
            argv += ["--affinity", str(opts.pin["client"])]
        self.runner = CaseRunner(argv, self._worker_cmdline)
        self.speed = hostspeed.Tracker(opts.pin.values())

    def _worker_cmdline(self, cmd: list[str], args: argparse.Namespace) -> None:
        case = self.current
        assert case is not None
        cmd.extend(["--case", json.dumps(case.to_dict(), sort_keys=True),
                    "--plan", str(self.plan_file),
                    "--peer", format_addr(*self.link.addr),
                    "--parts-dir", str(self.parts),
                    "--value-time", str(self.suite.value_time),
                    "--io-timeout", str(self.io_timeout)])
        for spec in self.opts.strategy_plugins:
            cmd.extend(["--strategy-plugin", spec])
        cmd.extend(self.link.worker_args)

    @property
    def io_timeout(self) -> float:
        """Per socket call: well inside pyperf's per-worker timeout, so a stall is named."""
        return max(1.0, min(30.0, self.suite.timeout / 4))

    def loops_for(self, case: Case) -> int:
        return self.loops.get(case.id, case.op_count)

    def run(self, plan: list[Case], progress: Progress, state: dict[str, bool]) -> RunOutcome:
        outcome = RunOutcome(self.writer.dir)
        self.plan_file.write_text("\n".join(c.id for c in plan) + "\n")
        used_loops: dict[str, int] = {}
        tl = self.timeline
        try:
            with span(tl, "host probe"):
                self.speed.start()
            for index, case in enumerate(plan):
                progress.start_case(case)
                with span(tl, "case (all of it)"):
                    row, samples = self.run_case(case, index, state)
                    if state["interrupted"]:
                        outcome.interrupted = True
                        break
                    used_loops[case.id] = self.loops_for(case)
                    with span(tl, "host probe"):
                        row["host_speed"] = self.speed.around_case()
                    with span(tl, "table row and samples"):
                        self.writer.add_case(row, samples)
                    if not row.get("error") and self.pending_bench is not None:
                        # after the row: a resumed run re-runs a rowless case
                        with span(tl, "pyperf.json rewrite"):
                            self._add_pyperf(self.pending_bench)
                outcome.failed += bool(row.get("error"))
                if row.get("error") and self.link.revive:
                    self.link.revive()
                outcome.done += 1
                progress.end_case(case, row)
        except KeyboardInterrupt:
            outcome.interrupted = True
        finally:
            with span(tl, "loops.json"):
                self._save_loops(used_loops)
            shutil.rmtree(self.parts, ignore_errors=True)
        return outcome

    def run_case(self, case: Case, index: int, state: dict[str, bool]
                 ) -> tuple[ResultRow, dict[str, np.ndarray] | None]:
        """Measure one case: a row (with an ``error`` for a failed one) and its samples."""
        self.current = case
        self.pending_bench = None
        loops = self.loops_for(case)
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured), span(self.timeline, "pyperf workers"):
                bench = self.runner.run_case(
                    case.id, index, loops, case.msgs_per_op,
                    {"flushbench_case": json.dumps(case.to_dict(), sort_keys=True)})
            with span(self.timeline, "merge"):
                row, samples, phases = merge.collect(case, self.parts, loops)
        except KeyboardInterrupt:
            state["interrupted"] = True
            return merge.failed_row(case, "interrupted"), None
        except (SystemExit, Exception) as exc:  # noqa: BLE001 - a failed case never stops the run
            if state["interrupted"]:
                return merge.failed_row(case, "interrupted"), None
            return merge.failed_row(case, self._reason(case, exc, captured.getvalue())), None
        if self.timeline is not None:
            for worker in phases:
                self.timeline.worker(case.id, worker)
        self.pending_bench = bench
        return row, samples

    def _reason(self, case: Case, exc: BaseException, output: str) -> str:
        """The most useful line about a failed case: the worker's own error, if it left one."""
        lines = []
        for err in sorted((self.parts / case.id).glob("*.err")):
            lines += [ln for ln in err.read_text(errors="replace").splitlines() if ln.strip()]
        lines += [ln for ln in output.splitlines() if ln.strip()]
        detail = lines[-1] if lines else ""
        if isinstance(exc, SystemExit) and exc.code == 124:
            return f"timed out after {self.suite.timeout} s (no answer from the worker)"
        return detail or f"{type(exc).__name__}: {exc}"

    def _add_pyperf(self, bench: pyperf.Benchmark) -> None:
        kept = [b for b in (self.pyperf_suite or []) if b.get_name() != bench.get_name()]
        self.pyperf_suite = pyperf.BenchmarkSuite([*kept, bench])
        buf = io.StringIO()
        self.pyperf_suite.dump(buf)
        self.writer.write_pyperf(buf.getvalue())

    def _save_loops(self, used: dict[str, int]) -> None:
        path = self.writer.dir / "loops.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        old.update(used)
        with atomic_write(path) as fh:
            json.dump(old, fh, indent=1, sort_keys=True)


def build_meta(opts: RunOptions, suite: Suite, host: dict[str, Any], peer_meta: dict[str, Any],
               run_dir: Path, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": run_dir.name, "machine_id": opts.machine or machine_id(host),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "suite": {"name": suite.name, "description": suite.description, "source": suite.source,
                  "cases": len(suite.cases)},
        "filters": opts.filters, "client": host, "peer": peer_meta,
        "transport": opts.transport, "link": None, "peer_addr": None, "pin": opts.pin,
        "pyperf": {"processes": suite.processes, "values": suite.values,
                   "warmups": suite.warmups, "timeout": suite.timeout,
                   "value_time": suite.value_time, "fast": opts.fast},
        "host_speed_probe": hostspeed.describe(opts.pin.values()),
        "flushbench_version": __version__, "argv": sys.argv, **extra,
    }


def run(opts: RunOptions, progress_factory: ProgressFactory,
        timeline: Timeline | None = None) -> list[RunOutcome]:
    """Plan and check everything, then run once per target (peer)."""
    meta = read_meta(opts.resume) if opts.resume else None
    plan_targets = targets(opts.peers, opts.link, opts.out is None, meta)
    if opts.link:
        from ..netlab.linkspec import LinkSpec

        LinkSpec.parse(opts.link)  # a bad spec fails now, not after the first run
    outcomes = []
    for target in plan_targets:
        outcome = run_target(opts, target, meta, progress_factory, timeline)
        outcomes.append(outcome)
        if outcome.interrupted:
            break
    return outcomes


def run_target(opts: RunOptions, target: Target, meta: dict[str, Any] | None,
               progress_factory: ProgressFactory, timeline: Timeline | None = None
               ) -> RunOutcome:
    opts = dataclasses.replace(opts, transport=target.transport)
    if meta is not None and opts.resume is not None:
        saved_loops = Path(opts.resume) / "loops.json"
        opts = dataclasses.replace(opts, pin=meta.get("pin") or {},
                                   loops_file=saved_loops if saved_loops.exists() else None)
    suite = prepare_suite(opts, meta)
    loops = load_loops(opts.loops_file)
    host = collect_host()
    bind = "::1" if any(c.transport == "loopback6" for c in suite.cases) else "127.0.0.1"
    writer: RunWriter | None = None
    try:
        with signals_to_interrupt() as state, contextlib.ExitStack() as stack:
            link = target.open(stack, bind, opts.token_file, opts.pin.get("peer"))
            if opts.resume:
                writer = RunWriter.reopen(opts.resume)
            else:
                run_dir = Path(opts.out) if opts.out else default_run_dir(opts, suite, host)
                if target.label:
                    run_dir = run_dir.with_name(f"{run_dir.name}-{target.label}")
                writer = RunWriter.create(run_dir, build_meta(opts, suite, host, link.meta,
                                                              run_dir, link.extra))
            writer.order = [c.id for c in suite.cases]
            done = writer.done_ids()
            plan = [c for c in suite.cases if c.id not in done]
            manager = Manager(suite, writer, link, opts, loops, timeline)
            progress = stack.enter_context(progress_factory(suite, plan))
            outcome = manager.run(plan, progress, state)
            outcome.done += len(done)
            return outcome
    except KeyboardInterrupt:
        # Ctrl-C outside a case (starting, cleaning up): what is written stays written.
        kept = len(writer.done_ids()) if writer else 0
        return RunOutcome(writer.dir if writer else None, done=kept, interrupted=True)
