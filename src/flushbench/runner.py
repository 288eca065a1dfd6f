"""The pyperf manager side of ``flushbench run``.

One manager process starts the peer (on port 0, with a readiness handshake), then asks
pyperf for one benchmark per case. pyperf spawns worker processes
(``python -m flushbench.worker``) which get every per-case option through
``add_cmdline_args``. After each case the manager merges the workers' counters and samples
into a table row and writes it, so an interrupted run keeps every finished case.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyperf

from . import __version__, collect, hostspeed, strategies
from .errors import UsageError
from .metadata import collect_host, machine_id
from .results import RunWriter, atomic_write, read_meta
from .suite import Case, Suite, load_suite, parse_suite
from .targets import PeerLink, Target, targets

WORKER_START_S = 0.3  # a worker process's start-up, connect and warm-up (estimate)


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
    processes: int | None = None
    values: int | None = None
    results_root: Path = Path("results")
    transport: str = "loopback"
    quiet: bool = False
    peers: list[str] = field(default_factory=list)
    token_file: Path | None = None
    link: str | None = None
    inherit_environ: str | None = None


@dataclass
class RunOutcome:
    run_dir: Path | None
    done: int = 0
    failed: int = 0
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed else 0)


def estimate_op_s(case: Case, rtt: float = 0.0) -> float:
    """A rough time per operation (loopback, plus ``rtt`` seconds per round trip)."""
    if case.workload == "stream":
        return 2e-6 + case.msg_size / 2e9
    if case.workload == "file":
        return case.msg_size / 3e9 + 2e-5
    separate = case.strategy in ("send", "sendall", "asyncio") or (
        case.strategy == "makefile" and case.buffer and case.buffer < case.msg_size)
    if case.workload == "wwr" and not case.nodelay and separate:
        return 0.042 + 2 * rtt  # one delayed-ACK timeout per request
    return rtt + 8e-5 + case.batch * (3e-6 + case.msg_size / 2e9) + case.reply_size / 2e9


def estimate_case_s(case: Case, suite: Suite, rtt: float = 0.0) -> float:
    value_s = min(suite.value_time, case.op_count * estimate_op_s(case, rtt)) + 2 * rtt
    warm_up = min(0.2, 64 * estimate_op_s(case, rtt)) + 3 * rtt
    return suite.processes * (WORKER_START_S + warm_up + (suite.warmups + suite.values) * value_s)


def prepare_suite(opts: RunOptions, meta: dict[str, Any] | None = None) -> Suite:
    """Load, filter and check the suite before any long work starts."""
    for spec in opts.strategy_plugins:
        strategies.load_plugin(spec)
    strategies.load_entry_points()
    if meta is not None:
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
        saved = meta.get("pyperf", {})
        changes.update({k: saved[k] for k in ("processes", "values", "warmups", "timeout",
                                              "value_time") if k in saved})
    elif opts.fast:  # fewer processes and values: rough answers, quickly
        changes.update(processes=1, values=max(2, suite.values // 2),
                       value_time=suite.value_time / 2)
    if opts.processes:
        changes["processes"] = opts.processes
    if opts.values:
        changes["values"] = opts.values
    if opts.transport != "loopback":
        changes["cases"] = tuple(c.with_transport(opts.transport) for c in suite.cases)
    return dataclasses.replace(suite, **changes)


def load_loops(path: Path | None) -> dict[str, int]:
    if path is None:
        return {}
    path = Path(path)
    if path.is_dir():
        path = path / "loops.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--loops-file {path}: cannot read it ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, int) and v > 0 for v in data.values()):
        raise UsageError(f"--loops-file {path}: expected a JSON object of case id -> loops")
    return data


def default_run_dir(opts: RunOptions, suite: Suite, host: dict[str, Any]) -> Path:
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + suite.name
    return opts.results_root / (opts.machine or machine_id(host)) / run_id


@contextlib.contextmanager
def signals_to_interrupt() -> Iterator[dict[str, bool]]:
    """SIGINT and SIGTERM both stop the run cleanly, and we remember that they did."""
    state = {"interrupted": False}

    def handler(signum: int, frame: Any) -> None:
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
                 loops: dict[str, int]) -> None:
        self.suite, self.writer, self.opts = suite, writer, opts
        self.link, self.loops = link, loops
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
        self.runner = shared_runner(argv)
        # pyperf allows one Runner per process; a run against several peers reuses it, so
        # point it at this manager and forget the previous run's benchmark names
        self.runner._add_cmdline_args = self._worker_cmdline
        self.runner._bench_names = set()
        self.speed = hostspeed.Tracker(opts.pin.values())

    def _worker_cmdline(self, cmd: list[str], args: Any) -> None:
        case = self.current
        assert case is not None
        host, port = self.link.addr
        cmd.extend(["--case", json.dumps(case.to_dict(), sort_keys=True),
                    "--plan", str(self.plan_file),
                    "--peer", f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
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

    def run(self, plan: list[Case], progress: Any, state: dict[str, bool]) -> RunOutcome:
        outcome = RunOutcome(self.writer.dir)
        self.plan_file.write_text("\n".join(c.id for c in plan) + "\n")
        used_loops: dict[str, int] = {}
        try:
            self.speed.start()
            for index, case in enumerate(plan):
                progress.start_case(case)
                # pyperf numbers tasks by counting finished benchmarks; a failed case does not
                # count, so say which task of the plan this is (workers check it)
                self.runner._worker_task = index
                row, samples = self.run_case(case, state)
                if state["interrupted"]:
                    outcome.interrupted = True
                    break
                used_loops[case.id] = self.loops_for(case)
                row["host_speed"] = self.speed.around_case()
                self.writer.add_case(row, samples)
                if not row.get("error"):  # after the row: a resumed run re-runs a rowless case
                    self._add_pyperf(self.pending_bench)
                outcome.failed += bool(row.get("error"))
                if row.get("error") and self.link.revive:
                    self.link.revive()
                outcome.done += 1
                progress.end_case(case, row)
        except KeyboardInterrupt:
            outcome.interrupted = True
        finally:
            self._save_loops(used_loops)
            shutil.rmtree(self.parts, ignore_errors=True)
        return outcome

    def run_case(self, case: Case, state: dict[str, bool]) -> tuple[dict, dict | None]:
        self.current = case
        loops = self.loops_for(case)
        self.runner.args.loops = loops
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured):
                bench = self.runner.bench_time_func(
                    case.id, _not_in_manager, inner_loops=case.msgs_per_op,
                    metadata={"flushbench_case": json.dumps(case.to_dict(), sort_keys=True)})
            row, samples = collect.collect(case, self.parts, loops)
        except KeyboardInterrupt:
            state["interrupted"] = True
            return collect.failed_row(case, "interrupted"), None
        except (SystemExit, Exception) as exc:  # noqa: BLE001 - a failed case never stops the run
            if state["interrupted"]:
                return collect.failed_row(case, "interrupted"), None
            return collect.failed_row(case, self._reason(case, exc, captured.getvalue())), None
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


_RUNNER: pyperf.Runner | None = None


def shared_runner(argv: list[str]) -> pyperf.Runner:
    """This process's pyperf Runner (pyperf refuses a second one), created on first use."""
    global _RUNNER
    if _RUNNER is None:
        _RUNNER = pyperf.Runner(program_args=("-m", "flushbench.worker"))
        _RUNNER.parse_args(argv)
    return _RUNNER


def _not_in_manager(loops: int) -> float:
    raise RuntimeError("the timed function runs only in pyperf workers")


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


def run(opts: RunOptions, progress_factory: Any) -> list[RunOutcome]:
    """Plan and check everything, then run once per target (peer)."""
    meta = read_meta(opts.resume) if opts.resume else None
    plan_targets = targets(opts, meta)
    if opts.link:
        from .linkspec import LinkSpec

        LinkSpec.parse(opts.link)  # a bad spec fails now, not after the first run
    outcomes = []
    for target in plan_targets:
        outcome = run_target(opts, target, meta, progress_factory)
        outcomes.append(outcome)
        if outcome.interrupted:
            break
    return outcomes


def run_target(opts: RunOptions, target: Target, meta: dict[str, Any] | None,
               progress_factory: Any) -> RunOutcome:
    opts = dataclasses.replace(opts, transport=target.transport)
    if meta is not None:
        opts = dataclasses.replace(opts, pin=meta.get("pin") or {},
                                   loops_file=Path(opts.resume) / "loops.json"
                                   if (Path(opts.resume) / "loops.json").exists() else None)
    suite = prepare_suite(opts, meta)
    loops = load_loops(opts.loops_file)
    host = collect_host()
    bind = "::1" if any(c.transport == "loopback6" for c in suite.cases) else "127.0.0.1"
    writer: RunWriter | None = None
    try:
        with signals_to_interrupt() as state, contextlib.ExitStack() as stack:
            link = target.open(stack, opts, bind)
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
            manager = Manager(suite, writer, link, opts, loops)
            progress = stack.enter_context(progress_factory(suite, plan))
            outcome = manager.run(plan, progress, state)
            outcome.done += len(done)
            return outcome
    except KeyboardInterrupt:
        # Ctrl-C outside a case (starting, cleaning up): what is written stays written.
        kept = len(writer.done_ids()) if writer else 0
        return RunOutcome(writer.dir if writer else None, done=kept, interrupted=True)
