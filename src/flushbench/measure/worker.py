"""A pyperf worker process: ``python -m flushbench.measure.worker --worker …``.

pyperf re-executes this module for every worker. It registers the run's plan (the same
benchmark names, in the same order, as the manager) and pyperf runs only the task it was
spawned for. The case's options arrive on the command line (``--case``, forwarded by the
manager's ``add_cmdline_args``). What pyperf cannot carry — latency samples, TCP_INFO
counters, CPU time, effective options — goes to ``--parts-dir`` as one JSON and one raw
sample file per process, merged by the manager.

Like everything in :mod:`flushbench.measure` this imports only the standard library and
pyperf (a test holds it to that): worker start-up is on every case's clock.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import sys
from pathlib import Path

import pyperf

from ..case import Case
from ..errors import FlushbenchError
from . import strategies
from .protocol import parse_addr
from .session import Session


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("flushbench worker")
    group.add_argument("--case", help="the case, as JSON")
    group.add_argument("--plan", help="file listing the run's case ids in order")
    group.add_argument("--peer", help="HOST:PORT of the peer")
    group.add_argument("--parts-dir", help="where to leave samples and counters")
    group.add_argument("--value-time", type=float, default=0.25)
    group.add_argument("--io-timeout", type=float, default=30.0)
    group.add_argument("--strategy-plugin", action="append", default=[])
    group.add_argument("--netns", help="network namespace to enter first")


class CaseTask:
    """The timed function pyperf calls once per warmup and value."""

    def __init__(self, case: Case, addr: tuple[str, int], args: argparse.Namespace) -> None:
        self.case, self.addr, self.args = case, addr, args
        self.session: Session | None = None
        self.calls = 0

    def __call__(self, loops: int) -> float:
        if self.session is None:  # connect and warm up: not timed
            self.session = Session.connect(self.case, self.addr, self.args.io_timeout)
        session = self.session
        self.calls += 1
        record = self.calls > self.args.warmups
        n = session.ops_for(loops, self.args.value_time)
        elapsed_ns = session.run_value(n, record=record)
        # pyperf divides by loops * inner_loops: scale a time-bounded value up so that the
        # stored figure stays the true seconds per message
        return elapsed_ns * loops / n / 1e9

    def save(self, parts_dir: Path) -> None:
        session = self.session
        if session is None:
            return
        out = parts_dir / self.case.id
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"{os.getpid()}"
        with open(f"{stem}.lat.tmp", "wb") as fh:
            session.latencies.tofile(fh)
        os.replace(f"{stem}.lat.tmp", f"{stem}.lat")
        data = {"values": [dataclasses.asdict(v) for v in session.values],
                "effective": session.effective(), "phases": session.phases}
        Path(f"{stem}.json.tmp").write_text(json.dumps(data))
        os.replace(f"{stem}.json.tmp", f"{stem}.json")


def main() -> None:
    runner = pyperf.Runner()
    add_worker_arguments(runner.argparser)
    args = runner.parse_args()
    if not args.worker:
        sys.exit("flushbench.measure.worker is started by 'flushbench run', not by hand")
    if args.netns:
        from .netns import enter_netns

        enter_netns(args.netns)
    for spec in args.strategy_plugin:
        strategies.load_plugin(spec)
    case = Case.from_dict(json.loads(args.case))
    # Our stderr goes to a file the manager reads when the case fails (the terminal shows
    # the progress bar, not worker tracebacks).
    err_dir = Path(args.parts_dir) / case.id
    err_dir.mkdir(parents=True, exist_ok=True)
    err_fd = os.open(err_dir / f"{os.getpid()}.err", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(err_fd, 2)
    os.close(err_fd)
    plan = Path(args.plan).read_text().split()
    if plan[args.worker_task] != case.id:
        sys.exit(f"worker task {args.worker_task} is {plan[args.worker_task]}, not {case.id}")
    task = CaseTask(case, parse_addr(args.peer), args)
    code = 0
    try:
        for name in plan:  # the same benchmark list, in the same order, as the manager
            runner.bench_time_func(name, task, inner_loops=case.msgs_per_op)
        task.save(Path(args.parts_dir))
    except Exception as exc:  # noqa: BLE001 - the manager records this line as the reason
        print(describe(exc, args.io_timeout), file=sys.stderr, flush=True)
        code = 1
    finally:
        if task.session is not None:
            task.session.close()
    # The values are in pyperf's pipe and the samples on disk: skip the interpreter's
    # tear-down, which cost ~55 ms per worker (10 s of a quick suite).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def describe(exc: BaseException, io_timeout: float) -> str:
    """One line, in plain words, for the table's error column."""
    if isinstance(exc, FlushbenchError):
        return str(exc)
    if isinstance(exc, ConnectionResetError):
        return "the peer reset the connection"
    if isinstance(exc, (BrokenPipeError, ConnectionAbortedError)):
        return "the peer closed the connection"
    if isinstance(exc, ConnectionRefusedError):
        return "the peer refused the connection (is it still running?)"
    if isinstance(exc, (BlockingIOError, TimeoutError)) or \
            getattr(exc, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK):
        return (f"no progress for {io_timeout:g} s: the peer stopped reading or answering "
                "(socket timeout)")
    if isinstance(exc, OSError):
        return f"socket error: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


if __name__ == "__main__":
    main()
