"""The bodies of flushbench's commands: argparse results in, work done, lines printed.

Each imports what it needs when it runs. Data goes to stdout: a run directory, a report's
path, and the tables of ``show`` and ``compare`` (``show --format csv|json|md`` for
programs); progress, a run's closing summary and warnings go to stderr. Errors are raised
as FlushbenchError; :mod:`.cli` turns them into one line and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import FlushbenchError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from .analysis.runs import StoredRun
    from .run.options import RunOptions, RunOutcome


def cmd_run(args: argparse.Namespace) -> int:
    started = time.monotonic()  # the suite's time budget counts from here (run/pace.py)
    from .report.terminal import console
    from .run.manager import run
    from .run.options import RunOptions, auto_pin
    from .run.progress import RunProgress

    if args.resume and (args.out or args.filter or args.suite != "quick" or args.fast
                        or args.rounds or args.values or args.loops_file or args.pin is not None
                        or args.cc is not None or args.peer_sink is not None
                        or args.seed is not None
                        or args.peer or args.link or args.transport):
        raise UsageError("--resume measures the rest as the run it resumes was measured "
                         "(suite, filters, directory, rounds, values, seed, loops, pinning, "
                         "congestion control, peer, peer sink, transport); "
                         "drop the other run options")
    opts = RunOptions(suite=args.suite, out=args.out, filters=args.filter, dry_run=args.dry_run,
                      fast=args.fast, resume=args.resume, loops_file=args.loops_file,
                      machine=args.machine, strategy_plugins=args.strategy_plugin,
                      pin=auto_pin() if args.pin is None else args.pin,
                      rounds=args.rounds, values=args.values, cc=args.cc, seed=args.seed,
                      min_effect=args.min_effect, quiet=args.quiet,
                      peers=args.peer, token_file=args.token_file, link=args.link,
                      inherit_environ=args.inherit_environ,
                      peer_sink=args.peer_sink or RunOptions.peer_sink,
                      transport=args.transport or "loopback", started=started,
                      report=args.report)
    if args.dry_run:
        from .listing import dry_run

        _link_hint(opts)
        return dry_run(opts, args.format, args.output)
    if args.format != "table" or args.output:
        raise UsageError("--format and --output go with --dry-run (a run writes its own "
                         "files; 'flushbench show RUN --format json' reads them)")
    _link_hint(opts)
    outcomes = run(opts, lambda suite, plan: RunProgress(suite, plan, args.quiet, console))
    code = 0
    for outcome in outcomes:
        code = max(code, _finish_run(outcome, args))
    return code


def _link_hint(opts: RunOptions) -> None:
    """A suite meant for an emulated link, run on plain loopback: say so (it still runs)."""
    if opts.link or opts.peers or opts.resume:
        return
    from .suites import load_suite

    suite = load_suite(opts.suite)
    if suite.link:
        _warnings([f"suite {suite.name} is meant for an emulated link: on loopback it shows "
                   f"little of what it is about; run it with --link {suite.link} (root)"])


def _finish_run(outcome: RunOutcome, args: argparse.Namespace) -> int:
    from .analysis.runs import open_runs
    from .report.terminal import console

    run_dir = outcome.run_dir
    if run_dir is None:
        if outcome.interrupted:
            console.print("interrupted before the run directory was created", highlight=False)
        return outcome.exit_code
    if outcome.interrupted:
        console.print(f"interrupted: {outcome.done} case(s) kept in {run_dir}; finish with:",
                      highlight=False, markup=False)
        console.out(f"flushbench run --resume {run_dir}", highlight=False)  # one line, unwrapped
        return outcome.exit_code
    if args.resume and not outcome.visits:
        console.print(f"nothing left to run: {run_dir} is finished", highlight=False,
                      markup=False)
    if not args.quiet:
        (stored,) = open_runs([run_dir])
        _print_run(stored, None, show_all=False, title=str(run_dir), console=console)
    if args.report:
        from .report.document import build_report

        index = build_report([Path(run_dir)], Path(run_dir) / "report")
        console.print(f"report: {Path(index).resolve().as_uri()}", highlight=False,
                      markup=False, soft_wrap=True)
    elif not args.quiet:
        console.print("next: a report with charts (RUN/report/index.html):", highlight=False)
        console.out(f"flushbench report {run_dir}", highlight=False)  # one line, unwrapped
    print(run_dir)
    if outcome.paced:  # even with --quiet: the run is not what the suite promises
        console.print(f"note: {outcome.paced}", highlight=False, markup=False, soft_wrap=True)
    if args.quiet:  # without --quiet the verdicts above carry it
        from .report.terminal import host_state_line

        (stored,) = open_runs([run_dir])
        slow = host_state_line(stored)
        if slow is not None:
            console.print(slow, highlight=False, soft_wrap=True)
    if outcome.failed:
        console.print(f"{outcome.failed} of {outcome.done} case(s) failed (see the error "
                      "column)", highlight=False)
    return outcome.exit_code


def _print_run(run: StoredRun, filters: list[str] | None, show_all: bool, title: str,
               console: Console | None = None) -> None:
    """A run in the terminal: its verdicts and noise floor (the summary table for runs
    without verdicts, or with ``show_all``) on ``console`` (standard output by default),
    then its quality warnings (standard error)."""
    from .report.terminal import (
        host_state_line,
        noise_line,
        quality_lines,
        text,
        verdict_table,
    )
    from .suites import id_matches

    if console is None:
        from rich.console import Console as RichConsole

        console = RichConsole()
    frame = run.table
    if filters:
        frame = frame[frame["case"].map(lambda cid: id_matches(cid, filters))]
    table = verdict_table(run, list(frame["case"]), console.width)
    if show_all or table is None:
        from .report.summary import summary_tables

        console.print(summary_tables(frame, title=title, width=console.width))
    if table is not None:
        console.print(table)
        console.print(noise_line(run), highlight=False)
        slow = host_state_line(run)
        if slow is not None:
            console.print(slow, highlight=False)
        if not show_all:
            console.print(text(f"every figure of every case: flushbench show --all {run.path}",
                               style="dim"), highlight=False)
    _warnings(quality_lines(frame, run.verdicts, run.trials))


def _skipped(run_dir: Path, why: str) -> None:
    """A broken run inside a folder of runs: one warning line, and the rest go on."""
    _warnings([f"skipped {run_dir}: {why}"])


def _warnings(lines: list[str]) -> None:
    from rich.text import Text

    from .report.terminal import console

    for line in lines:
        console.print(Text("warning: ", style="yellow") + Text(line), highlight=False)


def cmd_list(args: argparse.Namespace) -> int:
    from .listing import list_all

    return list_all(args.format, args.output)


def _one_line_errors(body: Callable[[argparse.Namespace], int],
                     ) -> Callable[[argparse.Namespace], int]:
    """A command on stored runs whose errors are one printable line: a run's files, and the
    paths and fields an error names, may come from another machine and hold line breaks or
    ESC sequences."""
    def command(args: argparse.Namespace) -> int:
        from .report.markup import printable

        try:
            return body(args)
        except FlushbenchError as exc:
            raise type(exc)(printable(exc)) from None
    return command


@_one_line_errors
def cmd_show(args: argparse.Namespace) -> int:
    from .analysis.runs import open_runs

    runs = open_runs(args.runs, _skipped)
    if args.format != "table":
        from .report.export import run_records, write_records

        write_records(run_records(runs, args.filter, args.all), args.format, args.output)
        return 0
    with _data_console(args.output) as out:
        for run in runs:
            _print_run(run, args.filter, args.all, f"{run.machine} / {run.run_id}", out)
    return 0


@contextlib.contextmanager
def _data_console(path: Path | None) -> Iterator[Console]:
    """Where data goes: standard output (a terminal's width; 200 columns for a pipe or a
    file, so ids are not folded), or ``path``, plain text."""
    from rich.console import Console

    if path is None:
        out = Console()
        yield out if out.is_terminal else Console(width=200)
        return
    from .files import open_output

    try:
        with open_output(path) as fh:  # the umask's mode; under sudo, the sudo user's
            yield Console(file=fh, width=200, no_color=True, color_system=None)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .case import MAX_SIZE
    from .report.terminal import console
    from .run.calibrate import calibrate
    from .run.options import RunOptions, auto_pin
    from .run.progress import RunProgress
    from .run.reftools import INSTALL_HINT, IPERF3_MAX_STREAMS, SOCKPERF_SIZES, tool_status
    from .suites.files import MAX_ROUNDS

    bad = [n for n in args.sizes if not 8 <= n <= MAX_SIZE]
    if bad:
        raise UsageError(f"--sizes: each size must be 8..{MAX_SIZE} bytes, got {bad[0]}")
    low, high = SOCKPERF_SIZES
    if not low <= args.rr_size <= high:
        raise UsageError(f"--rr-size: sockperf ping-pong takes {low}..{high} bytes, got "
                         f"{args.rr_size}")
    if args.rounds > MAX_ROUNDS:
        raise UsageError(f"--rounds must be <= {MAX_ROUNDS}, got {args.rounds}")
    if args.seconds > 3600:  # also inf: the tools take whole seconds
        raise UsageError(f"--seconds must be <= 3600 per tool run, got {args.seconds:g}")

    def say(line: str) -> None:
        if not args.quiet:
            console.print(line, highlight=False, markup=False, soft_wrap=True)

    have = tool_status()
    missing = [name for name, path in have.items() if not path]
    if missing:  # said even with --quiet: the table will lack these references
        kept = [name for name in have if name not in missing]
        what = f"{' and '.join(kept)} and flushbench still run" if kept else \
            "only flushbench's side is measured"
        console.print(f"{' and '.join(missing)} not found: {what}; install with: "
                      f"{INSTALL_HINT}", highlight=False, markup=False)
    if have["iperf3"] and args.conns > IPERF3_MAX_STREAMS:
        console.print(f"iperf3 runs at most {IPERF3_MAX_STREAMS} streams (-P): the "
                      f"{args.conns}-connection stream gets no reference", highlight=False)
    opts = RunOptions(out=args.out, machine=args.machine, quiet=args.quiet,
                      pin=auto_pin() if args.pin is None else args.pin,
                      link=args.link, peers=args.peer, filters=args.filter, cc=args.cc,
                      peer_sink="copy")  # its receiver copies, as iperf3's and sockperf's do
    result = calibrate(opts, args.sizes, args.rr_size, args.seconds,
                       lambda suite, plan: RunProgress(suite, plan, args.quiet, console),
                       rounds=args.rounds, conns=args.conns, say=say)
    from .report.terminal import calibration_table

    console.print(calibration_table(result.table, f"harness ceiling: {result.run_dir}"))
    failed = [r for r in result.tools if r["error"]]
    if failed:
        console.print(f"{len(failed)} of {len(result.tools)} tool runs failed (their rounds "
                      f"are not paired), e.g. round {failed[0]['round'] + 1}: "
                      f"{failed[0]['error']}", highlight=False, markup=False)
    print(result.run_dir)
    if result.interrupted:
        console.print("interrupted: the ratios pair the rounds measured so far",
                      highlight=False)
        return 130
    return 0


@_one_line_errors
def cmd_report(args: argparse.Namespace) -> int:
    from .report.document import build_report

    out = args.out
    if out is None:  # one run: its own report folder; never over the published report
        if len(args.runs) != 1 or not (Path(args.runs[0]) / "meta.json").is_file():
            raise UsageError("several runs (or a folder of runs) need --out DIR: where to "
                             "write index.html, README.md and charts/")
        out = Path(args.runs[0]) / "report"
    print(build_report(args.runs, out, _skipped))
    return 0


@_one_line_errors
def cmd_compare(args: argparse.Namespace) -> int:
    from .analysis.compare import compare_frame
    from .analysis.runs import open_runs
    from .report.compare import write_outputs
    from .report.terminal import compare_tables

    stored = open_runs(args.runs, _skipped)
    if len(stored) < 2:
        raise UsageError(f"compare needs at least two runs; found {len(stored)} in "
                         f"{', '.join(map(str, args.runs))}")
    frame = compare_frame(stored)
    if args.format != "table":
        from .listing import compare_records
        from .report.export import write_records

        write_records(compare_records(stored, frame), args.format, args.output)
        if args.out is not None:
            write_outputs(stored, frame, Path(args.out))
        return 0
    with _data_console(args.output) as console:
        for renderable in compare_tables(stored, frame, console.width):
            console.print(renderable)
    if args.out is not None:
        _note(f"wrote {write_outputs(stored, frame, Path(args.out))}")
    return 0


def _note(line: str) -> None:
    """A line for people, not data: standard error."""
    from .report.terminal import console

    console.print(line, highlight=False, markup=False, soft_wrap=True)


def cmd_netlab(args: argparse.Namespace) -> int:
    from . import netlab

    if args.netlab_command == "up":
        lab = netlab.Netlab(args.link, args.name, persistent=True).start()
        lab.detach()
        print("\n".join(lab.describe()))
    elif args.netlab_command == "down":
        if args.all == bool(args.name):
            raise UsageError("netlab down: give a lab name (see 'netlab status') or --all")
        netlab.check_support()
        if args.all:  # every persistent and every stale lab; labs in use stay with their owner
            removed, in_use, failures = netlab.destroy_all()
            for name in removed:
                print(f"removed {name}")
            for name in in_use:
                print(f"left {name}: in use by a running process "
                      f"('flushbench netlab down {name}' removes it anyway)")
            if failures:
                raise netlab.TeardownError(failures)
        elif not netlab.destroy(args.name):
            raise UsageError(f"no lab named {args.name!r} (see 'flushbench netlab status')")
    else:
        print("\n".join(netlab.status_lines()))
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from .remote.agent import Limits, serve

    if args.new_token is not None:
        from .remote.token import new_token_file

        path = new_token_file(args.new_token)
        print(f"wrote a new token to {path} (mode 600); copy it to the other host and use it "
              f"on both: flushbench agent --token-file {path} / flushbench run --peer HOST "
              f"--token-file {path}")
        return 0
    limits = Limits(args.max_duration, args.max_bytes, args.handshake_timeout)
    return serve(args.bind, args.port, args.token_file, limits, args.exit_with_stdin)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "list": cmd_list, "show": cmd_show, "calibrate": cmd_calibrate,
    "report": cmd_report, "compare": cmd_compare, "netlab": cmd_netlab, "agent": cmd_agent}
