"""Measure the harness itself: instrumentation overhead, suite wall time, run-to-run agreement.

    python bench/bench_harness.py [overhead] -o FILE [--fast]   # pyperf: overhead per op (ns)
    python bench/bench_harness.py wall [--suite smoke --suite quick] [--runs N]
    python bench/bench_harness.py repeat [--suite quick] [--filter PAT ...] [--from A B]
    python bench/bench_harness.py breakdown [--suite quick] [--filter PAT ...]
    python bench/bench_harness.py all [--fast] [--out DIR]   # overhead + wall + repeat

*Overhead* (pyperf, one benchmark per loop): what the client's timed loop in
``workloads.Session._sync_value`` adds to each operation — the ``for i in range(n)`` loop, a
``perf_counter_ns()`` stamp stored into a preallocated ``array('q')`` and the strategy's call
counter — measured against the bare operation: ``SendallStrategy.send_message`` over a socket
whose ``sendall`` is a C no-op, so the difference is the instrumentation and nothing else.

*wall*, *repeat* and *breakdown* are plain Python: each sample is a whole ``flushbench run``.
*breakdown* runs the suite in this process with timing wrappers on the manager's steps and a
worker shim (this file, mode ``_worker``) that stamps each phase of every worker process.
"""

from __future__ import annotations

import sys
import time

_STARTED = time.time()  # first: a worker shim's start, right after interpreter start-up

import argparse  # noqa: E402 - after the start stamp on purpose
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from array import array  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
TARGET_NS = 1000.0  # the instrumentation may add at most 1 µs per operation
UNROLL = 10  # bare operations per loop iteration: the loop's own cost divided by 10
OP_CAP = 20_000  # ops per value of a stream case (suite.DEFAULT_OPS): the stamp array's size
TOLERANCE = 0.10  # repeat mode: two runs agree on a case within ±10 % of msgs_per_s
THROUGHPUT = ("stream", "file")
TIMELINE_ENV = "FLUSHBENCH_HARNESS_TIMELINE"
EXIT_EARLY_ENV = "FLUSHBENCH_HARNESS_EXIT_EARLY"  # breakdown --exit-early: try a proposed cut
PARTS = [b"\0\0\0<", b"x" * 60]  # a 64-byte message: 4-byte header + body, as make_parts


# -- instrumentation overhead -------------------------------------------------------------

class _NullSocket:
    """A socket whose ``sendall`` is a C no-op: the operation costs calls, not a syscall."""

    sendall = len  # a builtin: no binding, no Python frame


def _strategies() -> tuple[Any, Any]:
    """The real SendallStrategy (with its counter) and the same without the counter."""
    from flushbench.strategies import SendallStrategy

    class Uncounted(SendallStrategy):
        def send_message(self, parts):  # type: ignore[no-untyped-def]
            sendall = self.sock.sendall
            for part in parts:
                sendall(part)

    return SendallStrategy(_NullSocket()), Uncounted(_NullSocket())


def _chunks(loops: int) -> list[int]:
    """Split ``loops`` into values of at most OP_CAP ops, as the suite's stream values are."""
    full, rest = divmod(loops, OP_CAP)
    return [OP_CAP] * full + ([rest] if rest else [])


def loop_empty(loops: int) -> float:
    """The bare ``for i in range(n)`` of the timed loop."""
    pc, total = time.perf_counter_ns, 0
    for n in _chunks(loops):
        t0 = pc()
        for _i in range(n):
            pass
        total += pc() - t0
    return total / 1e9


def loop_stamp(loops: int) -> float:
    """The loop plus ``ts[i] = perf_counter_ns()`` into a preallocated array('q')."""
    pc, total, ts = time.perf_counter_ns, 0, array("q", bytes(8 * OP_CAP))
    for n in _chunks(loops):
        t0 = pc()
        for i in range(n):
            ts[i] = pc()
        total += pc() - t0
    return total / 1e9


def _unrolled(strategy: Any) -> Any:
    def time_func(loops: int) -> float:  # pyperf divides by loops * UNROLL
        send, parts, pc, total = strategy.send_message, PARTS, time.perf_counter_ns, 0
        for n in _chunks(loops):
            t0 = pc()
            for _ in range(n):
                send(parts); send(parts); send(parts); send(parts); send(parts)  # noqa: E702
                send(parts); send(parts); send(parts); send(parts); send(parts)  # noqa: E702
            total += pc() - t0
        return total / 1e9
    return time_func


def _timed(strategy: Any) -> Any:
    def time_func(loops: int) -> float:
        # exactly the stream branch of workloads.Session._sync_value
        send, parts, pc, total = strategy.send_message, PARTS, time.perf_counter_ns, 0
        ts = array("q", bytes(8 * OP_CAP))
        for n in _chunks(loops):
            t0 = pc()
            for i in range(n):
                send(parts)
                ts[i] = pc()
            total += pc() - t0
        return total / 1e9
    return time_func


def loop_post_value(loops: int) -> float:
    """Not timed by flushbench: the per-op latency copy after each recorded value."""
    pc, total, ts = time.perf_counter_ns, 0, array("q", range(OP_CAP))
    for n in _chunks(loops):
        lat: array = array("q")
        t0 = pc()
        prev = 0
        for i in range(n):
            lat.append(ts[i] - prev)
            prev = ts[i]
        total += pc() - t0
    return total / 1e9


def overhead_benchmarks() -> list[tuple[str, Any, int]]:
    """(pyperf name, time_func(loops) -> seconds, inner_loops), one per measured thing."""
    counted, uncounted = _strategies()
    return [("loop-empty", loop_empty, 1), ("loop-stamp", loop_stamp, 1),
            ("op-bare", _unrolled(uncounted), UNROLL), ("op-counted", _unrolled(counted), UNROLL),
            ("timed-loop", _timed(counted), 1), ("post-value-copy", loop_post_value, 1)]


def overhead_figures(per_op_s: dict[str, float]) -> dict[str, float]:
    """Nanoseconds per operation: the headline and its parts, from per-op seconds."""
    ns = {k: v * 1e9 for k, v in per_op_s.items()}
    return {"overhead": ns["timed-loop"] - ns["op-bare"], "bare": ns["op-bare"],
            "timed": ns["timed-loop"], "loop": ns["loop-empty"],
            "stamp": ns["loop-stamp"] - ns["loop-empty"],
            "counter": ns["op-counted"] - ns["op-bare"], "post_copy": ns["post-value-copy"]}


def instrumentation_overhead_ns(ops: int = OP_CAP, repeat: int = 7) -> float:
    """Per-operation overhead of the timed loop in ns, without pyperf (min of ``repeat``)."""
    benches = {name: (func, inner) for name, func, inner in overhead_benchmarks()}
    best: dict[str, float] = {}
    for _ in range(repeat):  # interleaved, so a slow moment hits both sides
        for name in ("op-bare", "timed-loop"):
            func, inner = benches[name]
            per_op = func(ops) / (ops * inner)
            best[name] = min(best.get(name, per_op), per_op)
    return (best["timed-loop"] - best["op-bare"]) * 1e9


def format_overhead(fig: dict[str, float]) -> list[str]:
    verdict = "within" if fig["overhead"] <= TARGET_NS else "OVER"
    return [f"instrumentation overhead: {fig['overhead']:.1f} ns per operation "
            f"({verdict} the {TARGET_NS:.0f} ns target)",
            f"  timed loop {fig['timed']:.1f} ns/op - bare operation {fig['bare']:.1f} ns/op "
            f"(SendallStrategy.send_message of 2 parts over a no-op socket)",
            f"  parts: loop {fig['loop']:.1f} ns, perf_counter_ns stamp + store "
            f"{fig['stamp']:.1f} ns, call counter {fig['counter']:.1f} ns",
            f"  not timed: latency copy after each value {fig['post_copy']:.1f} ns/op",
            f"  clock: perf_counter {time.get_clock_info('perf_counter').implementation}, "
            f"clocksource {_clocksource()}"]


def _clocksource() -> str:
    path = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
    try:
        return path.read_text().strip()
    except OSError:
        return "unknown"


def run_pyperf() -> None:
    import pyperf

    runner = pyperf.Runner()
    runner.metadata["description"] = "flushbench timed-loop instrumentation overhead"
    medians: dict[str, float] = {}
    means: dict[str, float] = {}
    for name, func, inner in overhead_benchmarks():
        bench = runner.bench_time_func(name, func, inner_loops=inner)
        if bench is not None and not runner.args.worker:  # a worker's run may be calibration
            medians[name], means[name] = bench.median(), bench.mean()
    if len(medians) == len(overhead_benchmarks()):
        lines = format_overhead(overhead_figures(medians))
        lines[0] += f"; from pyperf medians (means: {overhead_figures(means)['overhead']:.1f} ns)"
        print("\n".join(lines), flush=True)


# -- wall time ----------------------------------------------------------------------------

def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def run_suite(suite: str, out: Path, extra: list[str] = ()) -> tuple[float, int, Path]:
    """``flushbench run --suite S --out OUT``: wall seconds, exit code, log file."""
    cmd = [sys.executable, "-m", "flushbench", "run", "--suite", suite, "--out", str(out),
           *extra]
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT).returncode
        wall = time.perf_counter() - t0
    return wall, code, log


def cmd_wall(args: argparse.Namespace) -> int:
    suites = args.suite or ["smoke", "quick"]
    with _workdir(args.out) as work:
        for suite in suites:
            walls = []
            for i in range(args.runs):
                before = load_line()
                extra = [f"--filter={f}" for f in args.filter]
                wall, code, log = run_suite(suite, work / f"wall-{suite}-{i + 1}", extra)
                walls.append(wall)
                cmd = f"flushbench run --suite {suite} " + " ".join(extra)
                print(f"wall: {cmd.strip()}: {wall:.1f} s (exit {code}; before: {before}; "
                      f"after: {load_line()})", flush=True)
                if code:
                    print(Path(log).read_text()[-2000:], file=sys.stderr)
            if len(walls) > 1:
                print(f"wall: --suite {suite}: median {statistics.median(walls):.1f} s, "
                      f"min {min(walls):.1f} s over {len(walls)} runs", flush=True)
    return 0


@contextlib.contextmanager
def _workdir(out: Path | None) -> Any:
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        yield Path(out)
    else:
        with tempfile.TemporaryDirectory(prefix="flushbench-harness-") as tmp:
            yield Path(tmp)


# -- repeat: run-to-run agreement ---------------------------------------------------------

@dataclass(frozen=True)
class Agreement:
    """How two runs agree on the throughput cases."""

    within: int
    total: int
    tolerance: float
    cases: Any  # DataFrame: case, msgs_per_s_a, msgs_per_s_b, ratio, rate_rsd_a, rate_rsd_b
    failed: list[str]
    missing: list[str]

    @property
    def fraction(self) -> float:
        return self.within / self.total if self.total else float("nan")

    @property
    def shift(self) -> float:
        """The run-wide factor: geometric mean of B/A (1.0 when the runs agree on average)."""
        import numpy as np

        return float(np.exp(np.log(self.cases["ratio"]).mean())) if self.total else math.nan

    @property
    def host_shift(self) -> float:
        """The host CPU probe's geometric-mean B/A over the cases (NaN without the probe)."""
        import numpy as np

        ratios = self.cases["host_ratio"].dropna() if self.total else []
        return float(np.exp(np.log(ratios).mean())) if len(ratios) else math.nan

    def within_host_adjusted(self) -> int:
        """Cases within the tolerance once each case's own host-speed ratio is divided out.

        A diagnostic only (how far the host's speed explains the disagreement): the runs'
        figures are what was measured and are never adjusted.
        """
        dev = (self.cases["ratio"] / self.cases["host_ratio"] - 1).abs()
        return int((dev <= self.tolerance + 1e-12).sum())

    def within_after_shift(self) -> int:
        """Cases within the tolerance once the run-wide factor is divided out."""
        dev = (self.cases["ratio"] / self.shift - 1).abs()
        return int((dev <= self.tolerance + 1e-12).sum())

    @property
    def noisy(self) -> Any:
        return self.cases[~self.cases["within"]].sort_values("dev", ascending=False)

    def headline(self) -> str:
        return (f"{self.within} of {self.total} throughput cases within "
                f"±{self.tolerance * 100:.0f} % ({self.fraction * 100:.0f} %)")


def repeat_agreement(run_a: Path, run_b: Path, tolerance: float = TOLERANCE) -> Agreement:
    """Compare msgs_per_s case by case on the throughput workloads (stream, file).

    A case agrees when ``|B/A - 1| <= tolerance``. Cases failed in either run, or present
    in only one, are listed apart and not counted.
    """
    import pandas as pd

    import flushbench

    a, b = (flushbench.load(p) for p in (run_a, run_b))
    keep = ["case", "workload", "msgs_per_s", "rate_rsd", "host_speed", "error"]
    a = a[a["workload"].isin(THROUGHPUT)][keep]
    b = b[b["workload"].isin(THROUGHPUT)][keep]
    both = a.merge(b, on=["case", "workload"], suffixes=("_a", "_b"), how="outer",
                   indicator=True)
    missing = sorted(both.loc[both["_merge"] != "both", "case"])
    both = both[both["_merge"] == "both"]
    bad = (both["error_a"] != "") | (both["error_b"] != "")
    failed = sorted(both.loc[bad, "case"])
    ok = both[~bad].copy()
    ok["ratio"] = ok["msgs_per_s_b"] / ok["msgs_per_s_a"]
    ok["dev"] = (ok["ratio"] - 1).abs()
    ok["within"] = ok["dev"] <= tolerance + 1e-12
    # the host's own CPU speed around each case, B/A (NaN for runs without the probe)
    ok["host_ratio"] = (pd.to_numeric(ok["host_speed_b"], errors="coerce")
                        / pd.to_numeric(ok["host_speed_a"], errors="coerce"))
    cols = ["case", "workload", "msgs_per_s_a", "msgs_per_s_b", "ratio", "dev", "within",
            "rate_rsd_a", "rate_rsd_b", "host_ratio"]
    ok = ok[cols].reset_index(drop=True)
    return Agreement(int(ok["within"].sum()), len(ok), tolerance, ok, failed, missing)


def format_agreement(agr: Agreement, significance: Any = None) -> list[str]:
    lines = [agr.headline()]
    if agr.total:
        dev = agr.cases["dev"]
        lines.append(f"  |B/A - 1|: median {dev.median() * 100:.1f} %, "
                     f"max {dev.max() * 100:.1f} %; run-wide factor (geomean B/A) "
                     f"{agr.shift:.3f}, {agr.within_after_shift()} of {agr.total} within "
                     f"±{agr.tolerance * 100:.0f} % once it is divided out")
        if not math.isnan(agr.host_shift):
            ratios = agr.cases["host_ratio"]
            lines.append(f"  host CPU speed probe B/A: geomean {agr.host_shift:.3f}, per case "
                         f"{ratios.min():.2f}-{ratios.max():.2f}; {agr.within_host_adjusted()} "
                         f"of {agr.total} within ±{agr.tolerance * 100:.0f} % once each case's "
                         "own host ratio is divided out (diagnostic)")
    if agr.failed:
        lines.append(f"  failed in a run (not counted): {', '.join(agr.failed)}")
    if agr.missing:
        lines.append(f"  in one run only (not counted): {', '.join(agr.missing)}")
    noisy = agr.noisy
    if len(noisy):
        lines.append(f"noisy cases (outside ±{agr.tolerance * 100:.0f} %):")
        lines.append(f"  {'case':<48} {'msgs/s A':>11} {'msgs/s B':>11} {'B/A':>6} "
                     f"{'rsd A':>6} {'rsd B':>6} {'host':>6}  significant")
        for row in noisy.itertuples():
            sig = "" if significance is None else ("yes" if significance.get(row.case) else "no")
            lines.append(f"  {row.case:<48} {row.msgs_per_s_a:>11.4g} {row.msgs_per_s_b:>11.4g} "
                         f"{row.ratio:>6.3f} {row.rate_rsd_a * 100:>5.1f}% "
                         f"{row.rate_rsd_b * 100:>5.1f}% {row.host_ratio:>6.3f}  {sig}")
    return lines


def _significance(run_a: Path, run_b: Path) -> dict[str, bool]:
    """Per case: does Welch's test on per-value rates (compare_runs) call it a change?"""
    from flushbench.compare import compare_runs

    frame = compare_runs([run_a, run_b])
    return {str(r.case): bool(r.significant) for r in frame.itertuples() if r.status == "ok"}


def cmd_repeat(args: argparse.Namespace) -> int:
    with _workdir(args.out) as work:
        if args.from_runs:
            run_a, run_b = (Path(p) for p in args.from_runs)
        else:
            extra = [f"--filter={f}" for f in args.filter]
            runs = []
            for label in ("a", "b"):
                before = load_line()
                wall, code, log = run_suite(args.suite, work / f"repeat-{label}", extra)
                print(f"repeat {label}: flushbench run --suite {args.suite} {' '.join(extra)}: "
                      f"{wall:.1f} s (exit {code}; before: {before}; after: {load_line()})",
                      flush=True)
                if code and not (work / f"repeat-{label}" / "table.csv").exists():
                    print(Path(log).read_text()[-2000:], file=sys.stderr)
                    return 1
                runs.append(work / f"repeat-{label}")
            run_a, run_b = runs
        agr = repeat_agreement(run_a, run_b, args.tolerance)
        sig = _significance(run_a, run_b) if agr.total else None
        print("\n".join(format_agreement(agr, sig)), flush=True)
    return 0


# -- breakdown: where the wall time goes --------------------------------------------------

class Clock:
    """Accumulated wall seconds (and calls) per named step of the manager."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.spans: list[tuple[float, float]] = []  # worker spawns, time.time()

    def wrap(self, owner: Any, attr: str, name: str, span: bool = False) -> None:
        orig = getattr(owner, attr)

        def wrapper(*a: Any, **kw: Any) -> Any:
            t0, w0 = time.perf_counter(), time.time()
            try:
                return orig(*a, **kw)
            finally:
                self.total[name] += time.perf_counter() - t0
                self.calls[name] += 1
                if span:
                    self.spans.append((w0, time.time()))

        setattr(owner, attr, wrapper)


def _patch_manager(clock: Clock) -> None:
    import pyperf
    import pyperf._manager

    from flushbench import cli, collect, console, peer, results, runner

    clock.wrap(runner, "prepare_suite", "start: load suite")
    clock.wrap(runner, "collect_host", "start: host metadata")
    clock.wrap(peer.PeerProcess, "__init__", "start: peer process")
    clock.wrap(results.RunWriter, "create", "start: run directory")
    clock.wrap(peer.PeerProcess, "__exit__", "end: stop peer")
    clock.wrap(runner.Manager, "run_case", "case (all of it)")
    clock.wrap(pyperf.Runner, "bench_time_func", "manager: pyperf bench_time_func")
    clock.wrap(pyperf._manager.Manager, "spawn_worker", "worker process (as the manager sees it)",
               span=True)
    clock.wrap(collect, "collect", "manager: merge parts (numpy)")
    clock.wrap(results.RunWriter, "add_case", "manager: samples .npz + table.csv")
    clock.wrap(results.RunWriter, "write_table", "manager: table.csv rewrite")
    clock.wrap(runner.Manager, "_add_pyperf", "manager: pyperf.json rewrite")
    clock.wrap(console.RunProgress, "end_case", "manager: progress line")
    clock.wrap(runner.Manager, "_save_loops", "end: loops.json")
    clock.wrap(cli, "_finish_run", "end: load + summary table")
    orig_init = runner.Manager.__init__

    def init(self: Any, *a: Any, **kw: Any) -> None:
        orig_init(self, *a, **kw)
        self.runner._program_args = (str(HERE), "_worker")  # the stamping worker shim

    runner.Manager.__init__ = init  # type: ignore[method-assign]


def _worker_shim() -> None:
    """A pyperf worker that is flushbench.worker plus stamps around each phase."""
    del sys.argv[1]  # "_worker"
    rec: dict[str, Any] = {"pid": os.getpid(), "t0": _STARTED}
    phases: dict[str, float] = defaultdict(float)
    import pyperf
    import pyperf._worker

    from flushbench import worker, workloads

    rec["imported"] = time.time()
    state = {"in_warm_up": False}

    def stamp(owner: Any, attr: str, name: str) -> None:
        orig = getattr(owner, attr)

        def wrapper(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return orig(*a, **kw)
            finally:
                phases[name] += time.perf_counter() - t0
        setattr(owner, attr, wrapper)

    orig_btf = pyperf.Runner.bench_time_func

    def btf(self: Any, *a: Any, **kw: Any) -> Any:
        rec.setdefault("runner_ready", time.time())
        return orig_btf(self, *a, **kw)

    pyperf.Runner.bench_time_func = btf  # type: ignore[method-assign]
    orig_post_init = workloads.Session.__post_init__

    def post_init(self: Any) -> None:
        rec["case"] = self.case.id
        t0 = time.perf_counter()
        try:
            orig_post_init(self)
        finally:
            phases["setup"] += time.perf_counter() - t0

    workloads.Session.__post_init__ = post_init  # type: ignore[method-assign]
    stamp(workloads, "_make_file", "file")
    orig_warm = workloads.Session._warm_up

    def warm(self: Any) -> None:
        state["in_warm_up"] = True
        t0 = time.perf_counter()
        try:
            orig_warm(self)
        finally:
            state["in_warm_up"] = False
            phases["warm_up"] += time.perf_counter() - t0

    workloads.Session._warm_up = warm  # type: ignore[method-assign]
    orig_value = workloads.Session.run_value

    def run_value(self: Any, n: int, record: bool = True) -> int:
        t0 = time.perf_counter()
        elapsed = orig_value(self, n, record)
        if not state["in_warm_up"]:
            kind = "value" if record else "warmup_value"
            phases[kind + "_timed"] += elapsed / 1e9
            phases[kind + "_wall"] += time.perf_counter() - t0
        return elapsed

    workloads.Session.run_value = run_value  # type: ignore[method-assign]
    stamp(pyperf._worker.WorkerProcessTask, "collect_metadata", "pyperf_metadata")
    stamp(worker.CaseTask, "save", "save")
    stamp(workloads.Session, "close", "close")
    code = 0
    try:
        worker.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        raise
    finally:
        rec["end"] = time.time()
        rec["phases"] = phases
        path = os.environ.get(TIMELINE_ENV)
        if path:
            with open(path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
        if os.environ.get(EXIT_EARLY_ENV):  # the proposed cut: no interpreter tear-down
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def _median_run_s(argv: list[str], n: int = 7, wait_timeout: float | None = None) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc.wait(wait_timeout)  # with a timeout, Popen.wait polls (sleeps up to 50 ms)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def start_up_costs() -> list[tuple[str, float]]:
    """Median wall time of interpreter starts, imports and exits (7 runs each)."""
    py, w = sys.executable, "import flushbench.worker"
    probes = [("python -c pass", [py, "-c", "pass"], None),
              ("python -S -c pass (no site)", [py, "-S", "-c", "pass"], None),
              ("python -c 'import pyperf'", [py, "-c", "import pyperf"], None),
              ("python -c 'import pyperf, asyncio'", [py, "-c", "import pyperf, asyncio"], None),
              (f"python -c '{w}'", [py, "-c", w], None),
              (f"python -c '{w}' (wait(timeout=60), as pyperf)", [py, "-c", w], 60.0),
              (f"python -c '{w}; os._exit(0)'", [py, "-c", w + "; import os; os._exit(0)"],
               None),
              ("python -m flushbench.worker --help", [py, "-m", "flushbench.worker", "--help"],
               None),
              ("python -c 'import the CLI modules of run'",
               [py, "-c", "import flushbench.cli, flushbench.runner, flushbench.console, "
                "flushbench.results"], None)]
    return [(label, _median_run_s(argv, wait_timeout=t)) for label, argv, t in probes]


def cmd_breakdown(args: argparse.Namespace) -> int:
    from flushbench import cli

    with _workdir(args.out) as work:
        timeline = work / "workers.jsonl"
        os.environ[TIMELINE_ENV] = str(timeline)
        if args.exit_early:
            os.environ[EXIT_EARLY_ENV] = "1"
        clock = Clock()
        _patch_manager(clock)
        argv = ["run", "--suite", args.suite, "--out", str(work / "run"),
                "--inherit-environ", f"{TIMELINE_ENV},{EXIT_EARLY_ENV}",
                *[f"--filter={f}" for f in args.filter]]
        before = load_line()
        log = work / "breakdown-run.log"
        t0 = time.perf_counter()
        with open(log, "w") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
            code = cli.main(argv)
        wall = time.perf_counter() - t0
        import signal

        signal.signal(signal.SIGINT, signal.default_int_handler)
        workers = [json.loads(line) for line in timeline.read_text().splitlines()]
        print(f"breakdown: flushbench run --suite {args.suite} {' '.join(argv[7:])} "
              f"(in-process{', workers exit with os._exit' if args.exit_early else ''}; "
              f"exit {code})")
        print(f"  before: {before}; after: {load_line()}")
        print("\n".join(format_breakdown(wall, clock, workers)))
        warm: dict[str, float] = defaultdict(float)
        for w in workers:
            warm[w.get("case", "?")] += w["phases"].get("warm_up", 0.0)
        top = sorted(warm.items(), key=lambda kv: -kv[1])[:8]
        print("slowest warm-ups (s, all processes of the case): "
              + ", ".join(f"{cid} {secs:.2f}" for cid, secs in top))
        if args.startup:
            print("start-up probes (median of 7):")
            for label, secs in start_up_costs():
                print(f"  {label:<40} {secs * 1e3:7.1f} ms")
    return 0


def format_breakdown(wall: float, clock: Clock, workers: list[dict[str, Any]]) -> list[str]:
    tot, n = clock.total, max(1, len(workers))
    spans = sorted(clock.spans)
    life = sum(e - s for s, e in spans)
    ph: dict[str, float] = defaultdict(float)
    spawn = imports = runner_setup = tail = 0.0
    for w in workers:
        start = max((s for s, _ in spans if s <= w["t0"]), default=w["t0"])
        end = min((e for _, e in spans if e >= w["end"]), default=w["end"])
        spawn += w["t0"] - start
        imports += w["imported"] - w["t0"]
        runner_setup += w.get("runner_ready", w["imported"]) - w["imported"]
        tail += end - w["end"]
        for k, v in w["phases"].items():
            ph[k] += v
    setup_rest = ph["setup"] - ph["warm_up"] - ph["file"]
    in_task = life - spawn - imports - runner_setup - tail
    named = (ph["setup"] + ph["warmup_value_wall"] + ph["value_wall"] + ph["pyperf_metadata"]
             + ph["save"] + ph["close"])
    case_rest = tot["manager: pyperf bench_time_func"] - life  # pyperf's own work per case
    table = tot["manager: table.csv rewrite"]
    rows = [
        ("worker: spawn + interpreter start", spawn),
        ("worker: imports (pyperf, flushbench)", imports),
        ("worker: pyperf Runner, argparse, plan", runner_setup),
        ("worker: connect + HELLO + options", setup_rest),
        ("worker: temp file (file workload)", ph["file"]),
        ("worker: warm-up (<= 64 ops / 0.2 s)", ph["warm_up"]),
        ("worker: pyperf warmup value (timed part)", ph["warmup_value_timed"]),
        ("worker: timed values (the statistics)", ph["value_timed"]),
        ("worker: per-value untimed (GO/READY, TCP_INFO, copy)",
         ph["warmup_value_wall"] + ph["value_wall"] - ph["warmup_value_timed"]
         - ph["value_timed"]),
        ("worker: pyperf metadata collection", ph["pyperf_metadata"]),
        ("worker: save parts (json + samples)", ph["save"]),
        ("worker: close", ph["close"]),
        ("worker: other pyperf work (skip plan, JSON pipe)", in_task - named),
        ("worker: exit + reap", tail),
        ("manager: merge parts (numpy)", tot["manager: merge parts (numpy)"]),
        ("manager: samples .npz", tot["manager: samples .npz + table.csv"] - table),
        ("manager: table.csv rewrite", table),
        ("manager: pyperf.json rewrite", tot["manager: pyperf.json rewrite"]),
        ("manager: pyperf bookkeeping between workers", case_rest),
        ("manager: progress line", tot["manager: progress line"]),
        ("start: suite, host metadata, peer, run dir",
         sum(v for k, v in tot.items() if k.startswith("start:"))),
        ("end: loops.json, stop peer, load + summary",
         sum(v for k, v in tot.items() if k.startswith("end:"))),
    ]
    accounted = sum(v for _, v in rows)
    rows.append(("unaccounted (imports of the CLI, rest)", wall - accounted))
    lines = [f"total wall {wall:.1f} s; {clock.calls['case (all of it)']} cases, "
             f"{len(workers)} worker processes",
             f"  {'phase':<52} {'total s':>8} {'per worker ms':>14} {'share':>6}"]
    for label, secs in rows:
        lines.append(f"  {label:<52} {secs:>8.2f} {secs / n * 1e3:>14.1f} "
                     f"{secs / wall * 100:>5.1f}%")
    return lines


# -- all ----------------------------------------------------------------------------------

def cmd_all(args: argparse.Namespace) -> int:
    with _workdir(args.out) as work:
        out = work / "harness-overhead.json"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, str(HERE), "-o", str(out), *(["--fast"] if args.fast else [])]
        print("overhead: " + " ".join(cmd[1:]), flush=True)
        if subprocess.run(cmd, cwd=ROOT).returncode:
            return 1
        wall = argparse.Namespace(suite=["smoke", "quick"], runs=1, filter=[], out=work)
        cmd_wall(wall)
        repeat = argparse.Namespace(suite="quick", filter=["stream-*", "file-*"] if args.fast
                                    else [], out=work, from_runs=None, tolerance=TOLERANCE)
        return cmd_repeat(repeat)


def parse_mode(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_harness.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    w = sub.add_parser("wall", help="wall time of flushbench run (subprocesses)")
    w.add_argument("--suite", action="append", help="suite(s) to time (default: smoke, quick)")
    w.add_argument("--runs", type=int, default=1, help="runs per suite (default 1)")
    w.add_argument("--filter", action="append", default=[], help="passed to flushbench run")
    w.add_argument("--out", type=Path, help="keep the runs here (default: a temp dir)")
    r = sub.add_parser("repeat", help="two back-to-back runs, compared case by case")
    r.add_argument("--suite", default="quick")
    r.add_argument("--filter", action="append", default=[], help="passed to flushbench run")
    r.add_argument("--tolerance", type=float, default=TOLERANCE)
    r.add_argument("--from", dest="from_runs", nargs=2, metavar=("RUN_A", "RUN_B"),
                   help="compare two existing runs instead of running")
    r.add_argument("--out", type=Path, help="keep the runs here (default: a temp dir)")
    b = sub.add_parser("breakdown", help="where one run's wall time goes (in-process)")
    b.add_argument("--suite", default="quick")
    b.add_argument("--filter", action="append", default=[])
    b.add_argument("--out", type=Path, help="keep the run and timeline here")
    b.add_argument("--no-startup", dest="startup", action="store_false",
                   help="skip the interpreter start-up probes")
    b.add_argument("--exit-early", action="store_true",
                   help="workers end with os._exit after saving (measures that cut)")
    a = sub.add_parser("all", help="overhead (pyperf) + wall + repeat")
    a.add_argument("--fast", action="store_true",
                   help="pyperf --fast; repeat only the stream and file cases")
    a.add_argument("--out", type=Path, help="keep every output here (default: a temp dir)")
    return p.parse_args(argv)


MODES = {"wall": cmd_wall, "repeat": cmd_repeat, "breakdown": cmd_breakdown, "all": cmd_all}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        _worker_shim()
        return 0
    if len(sys.argv) > 1 and sys.argv[1] in MODES:
        args = parse_mode(sys.argv[1:])
        return MODES[args.mode](args)
    if len(sys.argv) > 1 and sys.argv[1] == "overhead":  # the default mode, by name
        del sys.argv[1]
    run_pyperf()
    return 0


if __name__ == "__main__":
    sys.exit(main())
