"""The manager side of ``flushbench run``: interleaved rounds of visits, then the verdicts.

One manager process reaches the peer (:mod:`.targets`), groups the suite's cases into cells
with their baselines and A/A twins (:mod:`flushbench.analysis.cells`) and runs R rounds of
visits (:mod:`.schedule`): one worker process per cell and round measures that cell's cases,
their values interleaved (:mod:`.visits`, :mod:`flushbench.measure.visit`). After each visit
the manager writes the trials and the cases' table rows and samples, after each round
pyperf.json (a pyperf Run per trial), so an interrupted run keeps every finished visit; at
the end it writes verdicts.csv.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import pandas as pd
import pyperf

from .. import __version__
from ..analysis import verdicts
from ..analysis.cells import Cell, cells
from ..case import Case
from ..files import hand_over
from ..measure.sink import UNRECORDED, for_cases
from ..metadata import collect_host, machine_id
from ..results import RunWriter, atomic_write, read_meta
from ..suites import Suite
from . import hostspeed
from .loopcounts import LoopCounts
from .options import RunOptions, RunOutcome, default_run_dir, load_loops, prepare_suite
from .pace import REPORT_S, RESERVE_S, Pace
from .schedule import Visit, plan
from .targets import PeerLink, Target, targets
from .timing import Timeline, span
from .tlsca import RunCA, check_versions
from .trials import TRIAL_COLUMNS, TRIALS, CaseTrials, trial_row
from .visits import VisitSpec, run_visit, worker_env


class Progress(Protocol):
    """What the manager tells the user as visits start and end (see :mod:`.progress`)."""

    def start_visit(self, visit: Visit, cases: Sequence[Case]) -> None: ...

    def end_visit(self, visit: Visit, rows: Sequence[dict[str, Any]]) -> None: ...


ProgressFactory = Callable[[Suite, list[Visit]], AbstractContextManager[Progress]]


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
    """Runs the visits of one run against one peer."""

    def __init__(self, suite: Suite, writer: RunWriter, link: PeerLink, opts: RunOptions,
                 loops: dict[str, int], seed: int, timeline: Timeline | None = None) -> None:
        self.suite, self.writer, self.opts = suite, writer, opts
        self.link, self.timeline = link, timeline
        self.counts = LoopCounts(loops, suite.rounds)  # operations per value (loopcounts.py)
        self.seed = seed
        self.cells: list[Cell] = cells(suite.cases)
        self.visits: list[Visit] = plan(self.cells, suite.rounds, seed)
        self.cases = {c.id: c for cell in self.cells for c in cell.cases}
        self.env = worker_env(opts.inherit_environ)
        self.epoch = time.time()
        self.speed = hostspeed.Tracker(opts.pin.values())
        self.acc = {cid: CaseTrials(case) for cid, case in self.cases.items()}
        self.trials: list[dict[str, Any]] = []
        self.pace = Pace(suite.budget, suite.values,  # the time budget
                         started=time.monotonic() if opts.started is None else opts.started,
                         reserve_s=RESERVE_S + (REPORT_S if opts.report else 0.0))
        self.values = suite.values  # per trial in the coming round (pace.py may lower it)
        self._slotted_s = 0.0  # the current round's slotted values, summed over its cases
        self._resume()

    def _resume(self) -> None:
        """Take back what an interrupted run finished: its trials and their samples."""
        path = self.writer.dir / TRIALS
        if not path.exists():
            return
        old = pd.read_csv(path, keep_default_na=False, na_values=[""])
        self.trials = [{str(k): v for k, v in r.items()} for r in old.to_dict("records")
                       if str(r["case"]) in self.cases]
        self.epoch = time.time() - max([float(r.get("end_s") or 0) for r in self.trials],
                                       default=0.0)
        for cid, acc in self.acc.items():
            if cid in self.writer.rows:
                acc.restore(self.writer.dir, {str(k): v for k, v in
                                              self.writer.rows[cid].items()})

    @property
    def io_timeout(self) -> float:
        """Per socket call: well inside the visit's time limit, so a stall is named."""
        return max(1.0, min(30.0, self.suite.timeout / 4))

    def todo(self, visit: Visit) -> list[Case]:
        done = {(str(t["case"]), int(t["round"])) for t in self.trials}
        return [c for c in visit.cases if (c.id, visit.round) not in done]

    def run(self, progress: Progress, state: dict[str, bool]) -> RunOutcome:
        outcome = RunOutcome(self.writer.dir)
        tl = self.timeline
        for stale in self.writer.dir.glob(".parts-*"):  # left by a run that was killed
            shutil.rmtree(stale, ignore_errors=True)
        self.parts = self.writer.dir / ".parts-none"
        try:
            self.parts = Path(tempfile.mkdtemp(prefix=".parts-", dir=self.writer.dir))
            hand_over(self.parts)  # under sudo: a killed run's leftovers stay removable
            with span(tl, "host probe"):
                self.speed.start()
            round_t0 = self.pace.clock()  # when the current round's first visit started
            for index, visit in enumerate(self.visits):
                if index == 0 or self.visits[index - 1].round != visit.round:
                    round_t0, self._slotted_s = self.pace.clock(), 0.0
                todo = self.todo(visit)
                if not todo:
                    continue
                outcome.visits += 1
                progress.start_visit(visit, todo)
                with span(tl, "visit (all of it)"):
                    rows = self.run_visit(visit, todo, state)
                progress.end_visit(visit, rows)
                if state["interrupted"]:
                    outcome.interrupted = True
                    break
                if any(r["error"] for r in rows) and self.link.revive:
                    self.link.revive()
                last_of_round = index + 1 == len(self.visits) or \
                    self.visits[index + 1].round != visit.round
                if last_of_round:
                    with span(tl, "pyperf.json"):
                        self._write_pyperf()
                    self.pace.ran(visit.round, self.pace.clock() - round_t0, self._slotted_s,
                                  self.values)
                    self.values = self.pace.next_values(self.suite.rounds - visit.round - 1)
        except KeyboardInterrupt:
            outcome.interrupted = True
        finally:
            with span(tl, "verdicts"):
                self._write_pyperf()
                self.finish()
            shutil.rmtree(self.parts, ignore_errors=True)
        measured = [acc for acc in self.acc.values() if acc.values or acc.errors]
        outcome.done = len(measured)  # cases with at least one trial (finished or failed)
        outcome.failed = sum(not acc.values for acc in measured)
        outcome.paced = self.pace.summary()
        return outcome

    def run_visit(self, visit: Visit, todo: list[Case],
                  state: dict[str, bool] | None = None) -> list[dict[str, Any]]:
        """Measure one visit's cases; write their trials, rows and samples (pyperf.json
        follows at the end of each round).

        A visit cut short by Ctrl-C is dropped whole (its worker got the signal too): a
        resumed run measures it again.
        """
        spec = VisitSpec(visit.round, tuple(todo), self.counts.frozen, self.values,
                         self.suite.warmups, self.suite.value_time, self.io_timeout,
                         self.epoch, tuple(self.opts.strategy_plugins),
                         seed=(self.seed * 1_000_003 + visit.round * 1009 + visit.cell)
                         % (1 << 62), tls_ca=self.link.tls_ca, cc=self.suite.cc,
                         sink=for_cases(self.cells[visit.cell].cases) if self.opts.cell_sink
                         else "")
        folder = self.parts / f"r{visit.round}-c{visit.cell}"
        with span(self.timeline, "worker process"):
            first, *more = self.link.peers()  # HOST:PORT, and unix:PATH for unix cases
            records = run_visit(spec, folder, first,
                                [*(a for p in more for a in ("--peer", p)),
                                 *self.link.worker_args], self.env,
                                self.suite.timeout * len(todo), self.opts.pin.get("client"),
                                ticket=self.link.ticket)
        if state is not None and state["interrupted"]:
            raise KeyboardInterrupt
        with span(self.timeline, "host probe"):
            speed = self.speed.around_case()
        rows = []
        with span(self.timeline, "merge and write"):
            for position, (case, (record, lat)) in enumerate(zip(todo, records)):
                row = trial_row(case, record, lat, visit.round, self.cells[visit.cell].name,
                                position, speed)
                rows.append(row)
                self.trials.append(row)
                self.acc[case.id].add(record, lat, visit.round, speed)
            self.counts.add(todo, [record for record, _ in records])  # then frozen
            self._slotted_s += sum(float(v.get("elapsed_ns") or 0) / 1e9
                                   for record, _ in records if record.get("slotted")
                                   for v in record.get("values") or [])
            for case, (record, _) in zip(todo, records):
                if self.timeline is not None and record.get("phases"):
                    self.timeline.worker(case.id, record["phases"])
            self._write(todo)
        shutil.rmtree(folder, ignore_errors=True)
        return rows

    def _write(self, changed: Sequence[Case], final: bool = False) -> None:
        """trials.csv, the changed cases' rows and samples (compressed when ``final``), the
        table once, and the frozen loop counts."""
        frame = pd.DataFrame(self.trials, columns=TRIAL_COLUMNS)
        with atomic_write(self.writer.dir / TRIALS) as fh:
            frame.to_csv(fh, index=False)
        for case in changed:
            row, samples = self.acc[case.id].row()
            self.writer.add_case(row, samples, compress=final, table=False)
        self.writer.write_table()
        with atomic_write(self.writer.dir / "loops.json") as fh:
            json.dump(self.counts.frozen, fh, indent=1, sort_keys=True)

    def _write_pyperf(self) -> None:
        metadata = {"hostname": str(self.writer.meta.get("client", {}).get("hostname", ""))}
        benches = [b for acc in self.acc.values() if (b := acc.benchmark(metadata)) is not None]
        if not benches:
            return
        buf = io.StringIO()
        pyperf.BenchmarkSuite(benches).dump(buf)
        self.writer.write_pyperf(buf.getvalue())

    def finish(self) -> None:
        """The samples compressed, and verdicts.csv from every trial so far (an interrupted
        run gets a partial one)."""
        measured = [self.cases[cid] for cid, acc in self.acc.items() if acc.values]
        if measured:
            self._write(measured, final=True)
        comparisons = [c for cell in self.cells for c in cell.comparisons]
        workloads = {cid: case.workload for cid, case in self.cases.items()}
        frame = verdicts.build(pd.DataFrame(self.trials, columns=TRIAL_COLUMNS), comparisons,
                               workloads, self.opts.min_effect,
                               slots=lambda cid, column: acc.slot_figures(column)
                               if (acc := self.acc.get(cid)) else None)
        with atomic_write(self.writer.dir / verdicts.VERDICTS) as fh:
            frame.to_csv(fh, index=False, float_format="%.6g")


def _now() -> str:
    """Local time as meta.json writes it (``created``, and each ``resumed`` entry)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def build_meta(opts: RunOptions, suite: Suite, host: dict[str, Any], peer_meta: dict[str, Any],
               run_dir: Path, extra: dict[str, Any], seed: int) -> dict[str, Any]:
    return {
        "run_id": run_dir.name, "machine_id": opts.machine or machine_id(host),
        "created": _now(),
        "suite": {"name": suite.name, "description": suite.description, "source": suite.source,
                  "cases": len(suite.cases)},
        "filters": opts.filters, "client": host, "peer": peer_meta,
        "transport": opts.transport, "link": None, "peer_addr": None, "pin": opts.pin,
        "schedule": {"rounds": suite.rounds, "values": suite.values, "warmups": suite.warmups,
                     "timeout": suite.timeout, "value_time": suite.value_time,
                     "cc": suite.cc, "pairing": "slots",  # analysis/slots.py
                     "cell_sink": opts.cell_sink,  # measure/sink.py for_cases
                     "budget_s": suite.budget,  # run/pace.py
                     "fast": opts.fast, "seed": seed, "min_effect": opts.min_effect,
                     "comparisons": [[c.case, c.baseline, c.axis]
                                     for cell in cells(suite.cases) for c in cell.comparisons]},
        "host_speed_probe": hostspeed.describe(opts.pin.values()),
        "skipped": [list(pair) for pair in suite.skipped],  # (case id, why) left out
        "flushbench_version": __version__, "argv": sys.argv, **extra,
    }


def run(opts: RunOptions, progress_factory: ProgressFactory,
        timeline: Timeline | None = None) -> list[RunOutcome]:
    """Plan and check everything, then run once per target (peer)."""
    meta = read_meta(opts.resume) if opts.resume else None
    plan_targets = targets(opts.peers, opts.link, opts.out is None, meta, opts.transport)
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
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(1 << 31)
    if meta is not None and opts.resume is not None:
        saved = meta.get("schedule") or {}
        saved_loops = Path(opts.resume) / "loops.json"
        seed = int(saved.get("seed", seed))
        opts = dataclasses.replace(opts, pin=meta.get("pin") or {},
                                   peer_sink=str(meta.get("peer_sink", UNRECORDED)),
                                   cell_sink=saved.get("cell_sink") is True,
                                   min_effect=float(saved.get("min_effect", opts.min_effect)),
                                   loops_file=saved_loops if saved_loops.exists() else None)
    suite = prepare_suite(opts, meta)
    check_versions(suite.cases)  # a TLS version this OpenSSL lacks: one line, before any work
    loops = load_loops(opts.loops_file)
    host = collect_host()
    bind = "::1" if any(c.transport == "loopback6" for c in suite.cases) else "127.0.0.1"
    writer: RunWriter | None = None
    run_dir: Path | None = Path(opts.resume) if opts.resume else None
    try:
        with signals_to_interrupt() as state, contextlib.ExitStack() as stack:
            # TLS cases: a throwaway CA in a private temp dir, removed when the run ends
            tls = stack.enter_context(RunCA()) if any(c.tls for c in suite.cases) else None
            link = target.open(stack, bind, opts.token_file, opts.pin.get("peer"),
                               unix=any(c.transport == "unix" for c in suite.cases), tls=tls,
                               sink=opts.peer_sink)
            if opts.resume:
                writer = RunWriter.reopen(opts.resume)
                writer.note_resume(_now(), link.extra.get("tls_ca_sha256"))
            else:
                run_dir = Path(opts.out) if opts.out else default_run_dir(opts, suite, host)
                if target.label:
                    run_dir = run_dir.with_name(f"{run_dir.name}-{target.label}")
                writer = RunWriter.create(run_dir, build_meta(opts, suite, host, link.meta,
                                                              run_dir, link.extra, seed))
            manager = Manager(suite, writer, link, opts, loops, seed, timeline)
            writer.order = list(manager.cases)
            progress = stack.enter_context(progress_factory(suite, manager.visits))
            return manager.run(progress, state)
    except KeyboardInterrupt:
        # Ctrl-C outside a visit (starting, cleaning up): what is written stays written.
        kept = len(writer.done_ids()) if writer else 0
        if writer is None and run_dir is not None and (run_dir / "meta.json").exists():
            return RunOutcome(run_dir, interrupted=True)  # created just before the signal
        return RunOutcome(writer.dir if writer else None, done=kept, interrupted=True)
