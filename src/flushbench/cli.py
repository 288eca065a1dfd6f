"""Command line: thin argparse dispatch (pyperf's own argparse does not mix well with click).

User mistakes print one line, ``flushbench: error: …``, and exit 2; no traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .errors import FlushbenchError, UsageError


def _pin(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in text.split(","):
        role, _, cpu = item.partition("=")
        if role not in ("client", "peer") or not cpu.isdigit():
            raise argparse.ArgumentTypeError(f"--pin {text!r}: expected client=N,peer=M")
        out[role] = int(cpu)
    return out


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (no usage dump), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="flushbench", description="How should a Python program write "
                           "to a TCP socket? Measure the send paths and socket options.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=OneLineParser)

    run = sub.add_parser("run", help="run a suite and write a run directory")
    run.add_argument("--suite", default="quick", help="suite name or .toml file (default: quick)")
    run.add_argument("--out", type=Path, help="run directory (default: results/<machine>/<run-id>)")
    run.add_argument("--filter", action="append", default=[], metavar="PAT",
                     help="keep cases whose id matches (glob or substring; repeatable)")
    run.add_argument("--dry-run", action="store_true", help="list the cases and estimated time")
    run.add_argument("--fast", action="store_true", help="one worker per case, fewer values")
    run.add_argument("--resume", type=Path, metavar="RUN", help="finish an interrupted run")
    run.add_argument("--loops-file", type=Path, metavar="FILE",
                     help="pin loop counts (a loops.json or a run directory) for comparisons")
    run.add_argument("--machine", help="machine id for the results folder (default: hostname)")
    run.add_argument("--strategy-plugin", action="append", default=[], metavar="MODULE:CLASS",
                     help="register your own Strategy subclass (repeatable)")
    run.add_argument("--pin", type=_pin, default={}, metavar="client=N,peer=M",
                     help="pin client workers and the peer to CPUs")
    run.add_argument("--processes", type=_positive, help="override the suite's worker processes")
    run.add_argument("--values", type=_positive, help="override the suite's values per process")
    run.add_argument("--inherit-environ", metavar="VARS",
                     help="comma-separated environment variables workers keep (pyperf drops "
                          "the rest)")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--peer", action="append", default=[], metavar="HOST:PORT",
                     help="run against a remote 'flushbench agent' (repeatable: one run each)")
    run.add_argument("--token-file", type=Path, metavar="F", help="the agent's shared token")
    run.add_argument("--link", metavar="SPEC",
                     help="emulated hosts: e.g. rate=100mbit,delay=10ms or a profile (root)")
    run.add_argument("--report", action="store_true",
                     help="build the run's report in RUN/report when it finishes")

    cal = sub.add_parser("calibrate", help="flushbench beside iperf3 and sockperf, same session")
    cal.add_argument("--sizes", default="131072", help="stream sizes, comma-separated bytes "
                     "(default: 131072)")
    cal.add_argument("--rr-size", type=_positive, default=64, help="ping-pong size (default 64)")
    cal.add_argument("--seconds", type=float, default=3.0, help="seconds per tool run")
    cal.add_argument("--out", type=Path, help="run directory")
    cal.add_argument("--link", metavar="SPEC", help="calibrate over emulated hosts (root)")
    cal.add_argument("--peer", action="append", default=[], help=argparse.SUPPRESS)
    cal.add_argument("--machine", help="machine id for the results folder")
    cal.add_argument("--pin", type=_pin, default={}, metavar="client=N,peer=M")
    cal.add_argument("--quiet", action="store_true")

    # report and compare pull in matplotlib and scipy (over a second): their arguments are
    # added only when one of them is the command
    for name, text in (("report", "build the HTML/Markdown report of stored runs"),
                       ("compare", "compare stored runs (the first is the reference)"),
                       ("netlab", "emulated hosts by hand: up | down | status (root)"),
                       ("agent", "serve peers to 'flushbench run --peer' from this host")):
        sub_parser = sub.add_parser(name, help=text)
        if name == command:
            import importlib

            module = "netlab_cli" if name == "netlab" else name
            importlib.import_module(f"flushbench.{module}").add_arguments(sub_parser)
    sub.add_parser("list", help="list strategies, workloads and suites")

    show = sub.add_parser("show", help="print a stored run as a terminal table")
    show.add_argument("runs", nargs="+", type=Path, metavar="RUN")
    show.add_argument("--filter", action="append", default=[], metavar="PAT")
    return parser


def _version() -> str:
    from . import __version__

    return f"flushbench {__version__}"


def cmd_run(args: argparse.Namespace) -> int:
    from . import console as ui
    from .runner import RunOptions, estimate_case_s, prepare_suite, run

    if args.resume and (args.out or args.filter or args.suite != "quick" or args.fast
                        or args.processes or args.values or args.loops_file or args.pin
                        or args.peer or args.link):
        raise UsageError("--resume measures the rest as the run it resumes was measured "
                         "(suite, filters, directory, processes, values, loops, pinning, peer); "
                         "drop the other run options")
    opts = RunOptions(suite=args.suite, out=args.out, filters=args.filter, dry_run=args.dry_run,
                      fast=args.fast, resume=args.resume, loops_file=args.loops_file,
                      machine=args.machine, strategy_plugins=args.strategy_plugin, pin=args.pin,
                      processes=args.processes, values=args.values, quiet=args.quiet,
                      peers=args.peer, token_file=args.token_file, link=args.link,
                      inherit_environ=args.inherit_environ)
    if args.dry_run:
        from .results import read_meta

        suite = prepare_suite(opts, read_meta(args.resume) if args.resume else None)
        rtt = 0.0
        if args.link:
            from .linkspec import LinkSpec

            rtt = LinkSpec.parse(args.link).rtt_s
        total = 0.0
        for case in suite.cases:
            est = estimate_case_s(case, suite, rtt)
            total += est
            print(f"{case.id}\t~{est:.1f} s")
        print(f"{len(suite.cases)} cases, estimated {total / 60:.1f} min "
              f"({suite.processes} processes x {suite.values} values per case)")
        return 0

    outcomes = run(opts, lambda suite, plan: ui.RunProgress(suite, plan, args.quiet))
    code = 0
    for outcome in outcomes:
        code = max(code, _finish_run(outcome, args))
    return code


def _finish_run(outcome, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from . import console as ui
    from .results import load

    run_dir = outcome.run_dir
    if run_dir is None:
        if outcome.interrupted:
            ui.console.print("interrupted before the run directory was created", highlight=False)
        return outcome.exit_code
    if outcome.interrupted:
        ui.console.print(f"interrupted: {outcome.done} case(s) kept in {run_dir}; finish with: "
                         f"flushbench run --resume {run_dir}", highlight=False)
        return outcome.exit_code
    frame = load(run_dir)
    if not args.quiet:
        ui.console.print(ui.summary_table(frame, title=str(run_dir)))
        for line in ui.quality_warnings(frame):
            ui.console.print(f"[yellow]warning:[/] {line}", highlight=False)
    if args.report:
        from .report import build_report

        index = build_report([Path(run_dir)], Path(run_dir) / "report")
        ui.console.print(f"report: {index}", highlight=False)
    print(run_dir)
    if outcome.failed:
        ui.console.print(f"{outcome.failed} of {outcome.done} case(s) failed (see the error "
                         "column)", highlight=False)
    return outcome.exit_code


def cmd_list(args: argparse.Namespace) -> int:
    from . import strategies
    from .suite import DEFAULT_OPS, available_suites, load_suite

    strategies.load_entry_points()
    print("strategies:")
    for name, cls in strategies.REGISTRY.items():
        why = cls.unavailable()
        print(f"  {name:<10} {cls.summary}" + (f"  [unavailable: {why}]" if why else ""))
    print("workloads:")
    for name in DEFAULT_OPS:
        print(f"  {name}")
    print("suites:")
    for name, path in available_suites().items():
        try:
            suite = load_suite(str(path))
            print(f"  {name:<10} {len(suite.cases):>4} cases  {suite.description}")
        except FlushbenchError as exc:
            print(f"  {name:<10} broken: {exc}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from . import console as ui
    from .results import load
    from .suite import id_matches

    frame = load(args.runs)
    if args.filter:
        frame = frame[frame["case"].map(lambda cid: id_matches(cid, args.filter))]
    for run_id, part in frame.groupby("run", sort=False):
        ui.console.print(ui.summary_table(part, title=f"{part['machine'].iloc[0]} / {run_id}"))
        for line in ui.quality_warnings(part):
            ui.console.print(f"[yellow]warning:[/] {line}", highlight=False)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from . import console as ui
    from .calibrate import INSTALL_HINT, calibrate, tool_status
    from .runner import RunOptions

    try:
        sizes = [int(x) for x in args.sizes.split(",") if x]
    except ValueError:
        raise UsageError(f"--sizes {args.sizes!r}: expected bytes, e.g. 1024,131072") from None
    if not sizes or min(sizes) < 8:
        raise UsageError(f"--sizes {args.sizes!r}: each size must be >= 8 bytes")
    missing = [name for name, path in tool_status().items() if not path]
    if missing:
        ui.console.print(f"{' and '.join(missing)} not found: only flushbench's side will be "
                         f"measured; install with: {INSTALL_HINT}", highlight=False)
    opts = RunOptions(out=args.out, machine=args.machine, pin=args.pin, quiet=args.quiet,
                      link=args.link, peers=args.peer)
    run_dir, table = calibrate(opts, sizes, args.rr_size, args.seconds,
                               lambda suite, plan: ui.RunProgress(suite, plan, args.quiet))
    ui.console.print(ui.calibration_table(table, title=f"harness ceiling: {run_dir}"))
    print(run_dir)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from . import report

    return report.main(args)


def cmd_agent(args: argparse.Namespace) -> int:
    from . import agent

    return agent.main(args)


def cmd_netlab(args: argparse.Namespace) -> int:
    from . import netlab_cli

    return netlab_cli.main(args)


def cmd_compare(args: argparse.Namespace) -> int:
    from . import compare

    return compare.main(args)


COMMANDS = {"run": cmd_run, "list": cmd_list, "show": cmd_show, "calibrate": cmd_calibrate,
            "report": cmd_report, "compare": cmd_compare, "netlab": cmd_netlab,
            "agent": cmd_agent}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except FlushbenchError as exc:
        print(f"flushbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flushbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141


def entry() -> None:
    """The console script and ``python -m flushbench``: main(), then exit."""
    code = main()
    # The work is done (or stopped cleanly): a late Ctrl-C must not turn the exit into a
    # traceback during interpreter shutdown. Only here, never in main(): a caller that
    # runs main() in-process would pass an ignored SIGINT on to every child it starts.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    entry()
