# PYTHON_ARGCOMPLETE_OK
"""Command line: every argparse parser of flushbench and the dispatch to its commands.

User mistakes print one line, ``flushbench: error: …``, and exit 2; no traceback. The
command bodies are in :mod:`flushbench.commands`; they import what they need when they run,
so ``flushbench --help`` pays for neither pandas nor matplotlib.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from .cliargs import (
    _add_format,
    _add_selectors,
    _cc,
    _conns,
    _fold_selectors,
    _fraction,
    _pin,
    _port,
    _positive,
    _seconds,
    _seed,
    _size,
    _sizes,
    complete,
    dash_patterns,
)
from .errors import FlushbenchError
from .measure.sink import SINKS
from .remote.agent import DEFAULT_DURATION, DEFAULT_HANDSHAKE
from .remote.protocol import DEFAULT_PORT

EXIT_CODES = """exit codes:
  0    done
  1    a case failed (its reason is in the table's error column)
  2    a usage error (one line says what was wrong and what to do)
  130  interrupted (flushbench run --resume RUN finishes it)
"""
EXAMPLES = """examples:
  flushbench run                       the quick suite on loopback (~3 min)
  flushbench run -s smoke --report     a 20-second check, with its HTML report
  flushbench run -s quick -f 'rr-*'    only the request/response cases
  flushbench run --dry-run -s full     list the cases and the estimated time
  flushbench show RUN                  a stored run's verdicts
  flushbench compare RUN_A RUN_B       two machines or two versions, paired
  flushbench report RUN                the run's report in RUN/report

case ids read workload-strategy-s<size>-p<parts>-nd<nodelay 0|1>-sb<sndbuf|auto>[-rb<rcvbuf>]
[-lw<notsent_lowat>][-r<reply>][-k<batch>][-b<makefile buffer>][-tls13][-c<conns>-<driver>]
-<transport>[-twin], sizes as 64, 16K, 1M.

"""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (no usage dump), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# -- the parsers ------------------------------------------------------------------------------

def _add_run(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    run = sub.add_parser("run", help="run a suite and write a run directory",
                         epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("-s", "--suite", default="quick",
                     help="suite name or .toml file (default: quick)")
    run.add_argument("-o", "--out", type=Path,
                     help="run directory (default: results/<machine>/<run-id>)")
    _add_selectors(run, "run only the cases")
    run.add_argument("--dry-run", action="store_true", help="list the cases and estimated time")
    _add_format(run, "with --dry-run, one record per case (case, estimate_s, skipped)",
                short_o=False)
    run.add_argument("--fast", action="store_true", help="one worker per case, fewer values")
    run.add_argument("--resume", type=Path, metavar="RUN", help="finish an interrupted run")
    run.add_argument("--loops-file", type=Path, metavar="FILE",
                     help="pin loop counts (a loops.json or a run directory) for comparisons")
    run.add_argument("--machine", help="machine id for the results folder (default: hostname)")
    run.add_argument("--strategy-plugin", action="append", default=[], metavar="MODULE:CLASS",
                     help="register your own Strategy subclass (repeatable)")
    run.add_argument("--pin", type=_pin, default=None, metavar="client=N,peer=M",
                     help="pin client workers and the peer to CPUs (default: two different "
                          "CPUs where there are two; 'none' leaves placement to the kernel)")
    run.add_argument("--rounds", type=_positive,
                     help="override the suite's rounds (each measures every case once)")
    run.add_argument("--values", type=_positive, help="override the suite's values per trial")
    run.add_argument("--cc", type=_cc, metavar="NAME",
                     help="TCP congestion control of the client's connections (TCP_CONGESTION), "
                          "instead of the suite's cc; 'host' keeps the host's default")
    run.add_argument("--seed", type=_seed, metavar="N",
                     help="seed of the interleaved schedule (default: a fresh one, recorded)")
    run.add_argument("--min-effect", type=_fraction, default=0.03, metavar="F",
                     help="ratios within F of 1 are 'same' whatever their interval "
                          "(default 0.03 = 3 %%)")
    run.add_argument("--inherit-environ", metavar="VARS",
                     help="comma-separated environment variables workers keep (pyperf drops "
                          "the rest)")
    run.add_argument("--peer-sink", choices=SINKS, default=None,
                     help="how the peer takes in stream and file data: discard (default: "
                          "dropped in the kernel, MSG_TRUNC, so only the client copies; a "
                          "cell with a TLS or unix case copies throughout) or copy (into a "
                          "buffer, as a receiving program does)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    run.add_argument("--peer", action="append", default=[], metavar="HOST:PORT",
                     help="run against a remote 'flushbench agent' (repeatable: one run each)")
    run.add_argument("--token-file", type=Path, metavar="F",
                     help="the agents' token (--peer needs it; made with 'flushbench agent "
                          "--new-token F'; mode 600)")
    run.add_argument("--link", metavar="SPEC",
                     help="emulated hosts: e.g. rate=100mbit,delay=10ms or a profile (root)")
    run.add_argument("--transport", choices=("loopback", "unix"),
                     help="measure every case over this local transport (default: each case's "
                          "own, loopback unless the suite says unix); unix: AF_UNIX sockets, "
                          "not with --peer or --link")
    run.add_argument("--report", action="store_true",
                     help="build the run's report in RUN/report when it finishes")


def _add_calibrate(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    cal = sub.add_parser("calibrate", help="flushbench beside iperf3 and sockperf, paired by "
                         "round", description="Runs flushbench's stream and rr cases in R "
                         "interleaved rounds; at the start of each round iperf3 and sockperf "
                         "run once. Each ratio pairs the best case's trial in a round with "
                         "the tool's figure of the same round: the median over rounds is "
                         "printed with its min and max.")
    cal.add_argument("--sizes", type=_sizes, default=[131072], metavar="N[,N...]",
                     help="stream sizes, comma-separated bytes, e.g. 1024,128K "
                     "(default: 131072)")
    cal.add_argument("--rr-size", type=_size, default=64, metavar="N",
                     help="ping-pong size in bytes, 14..65507 as sockperf takes (default 64)")
    cal.add_argument("--rounds", type=_positive, default=5,
                     help="rounds: the tools run once at the start of each (default 5)")
    cal.add_argument("--conns", type=_conns, default=1, metavar="N",
                     help="also the stream on N connections (threads and selectors drivers) "
                     "beside iperf3 -P N (default 1: one connection only)")
    cal.add_argument("--filter", action="append", default=[], metavar="PAT",
                     help="only the calibration cases whose id matches (glob or substring; "
                     "repeatable), e.g. sendall")
    cal.add_argument("--seconds", type=_seconds, default=2.0,
                     help="seconds per tool run, whole (default 2)")
    cal.add_argument("--cc", type=_cc, default="host", metavar="NAME",
                     help="TCP congestion control of flushbench's client connections and of "
                     "iperf3's sender (-C), e.g. cubic (default: host, the host's default)")
    cal.add_argument("-o", "--out", type=Path,
                     help="run directory (default: results/<machine>/<run-id>)")
    cal.add_argument("--link", metavar="SPEC", help="calibrate over emulated hosts (root)")
    cal.add_argument("--peer", action="append", default=[], help=argparse.SUPPRESS)
    cal.add_argument("--machine", help="machine id for the results folder")
    cal.add_argument("--pin", type=_pin, default=None, metavar="client=N,peer=M",
                     help="CPUs of flushbench's workers and peer, and of the tools' clients and "
                     "servers alike (default: as 'run' pins; 'none' leaves placement to the "
                     "kernel)")
    cal.add_argument("-q", "--quiet", action="store_true",
                     help="no progress output (the table is still printed)")


def _add_stored(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    report = sub.add_parser("report", help="build the HTML/Markdown report of stored runs")
    report.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                        help="run directories, or folders holding runs (results/ for all)")
    report.add_argument("-o", "--out", type=Path, default=None, metavar="DIR",
                        help="where to write index.html, README.md and charts/ (default, "
                             "for one run: RUN/report; several runs need it)")
    compare = sub.add_parser("compare", help="compare stored runs (the first is the reference)")
    compare.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                         help="run directories or folders holding runs; the first is the "
                              "reference")
    compare.add_argument("--out", type=Path, default=None, metavar="DIR",
                         help="also write compare.csv, compare.md, index.html and charts here")
    _add_format(compare, "the comparisons as records: each names its comparison "
                "(ratio_of_ratios: each case against its baseline in both runs; absolute: "
                "the same case in both runs), case, runs, ratio and interval")
    listing = sub.add_parser("list", help="list strategies, workloads, suites and the case id "
                             "grammar")
    _add_format(listing, "one record per strategy, workload and suite (kind, name, summary, "
                "cases, unavailable)")
    show = sub.add_parser("show", help="print a stored run's verdicts (or its table) in the "
                          "terminal")
    show.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                      help="run directories, or folders holding runs")
    _add_selectors(show, "show only the cases")
    show.add_argument("--all", action="store_true",
                      help="also print the full table: every case with throughput, latency, "
                      "segments, calls and SO_SNDBUF (runs without verdicts always get it)")
    _add_format(show, "the verdicts (with --all: every column of the table) as records; "
                "each names its run and machine")


def _add_netlab(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    netlab = sub.add_parser("netlab", help="emulated hosts by hand: up | down | status (root)")
    cmds = netlab.add_subparsers(dest="netlab_command", required=True, metavar="up|down|status",
                                 parser_class=OneLineParser)
    up = cmds.add_parser("up", help="create a persistent lab: no clean-up removes it, only "
                         "'netlab down NAME' or 'netlab down --all'")
    up.add_argument("--link", default="none", help="rate=100mbit,delay=10ms,jitter=1ms,"
                    "loss=0.1%%,mtu=1500 or a profile (see profiles.toml)")
    up.add_argument("--name", default=None, help="lab name (fb-NAME); default fb-N")
    what = ("tear down a lab by name (even one in use), or --all; every step is tried, "
            "each failure printed, exit 2 if any")
    down = cmds.add_parser("down", help=what, description=what)
    down.add_argument("name", nargs="?", help="lab name, e.g. fb-0")
    down.add_argument("--all", action="store_true",
                      help="every lab made by 'netlab up' and every stale lab (its owner gone, "
                      "or an earlier teardown failed); labs in use by a running flushbench "
                      "are left to it, fb- namespaces without a flushbench record are never "
                      "touched")
    cmds.add_parser("status", help="list the labs")


def _add_agent(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    agent = sub.add_parser("agent", help="serve peers to 'flushbench run --peer' from this host")
    agent.add_argument("--new-token", type=Path, metavar="F",
                       help="write a new random token to F (mode 600, never overwritten) and "
                            "exit; copy F to the client host")
    agent.add_argument("--bind", default="127.0.0.1", metavar="ADDR",
                       help="address to listen on (default 127.0.0.1)")
    agent.add_argument("--port", type=_port, default=DEFAULT_PORT,
                       help=f"control port (default {DEFAULT_PORT}; 0: any free port, printed "
                            "on the readiness line)")
    agent.add_argument("--token-file", type=Path, metavar="F",
                       help="the token (required; mode 600): clients must prove they hold it")
    agent.add_argument("--max-duration", type=_seconds, default=DEFAULT_DURATION, metavar="S",
                       help="end a session (and its peer) after S seconds (default %(default)g)")
    agent.add_argument("--max-bytes", type=_size, default=None, metavar="N",
                       help="bytes a session's peer may move, e.g. 50G (default: no limit)")
    agent.add_argument("--handshake-timeout", type=_seconds, default=DEFAULT_HANDSHAKE,
                       metavar="S", help="cut off clients that have not authenticated after S "
                                         "seconds (default %(default)g)")
    agent.add_argument("--exit-with-stdin", action="store_true",
                       help="exit when stdin closes (for agents started over ssh)")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="flushbench", description="How should a Python program write "
                           "to a TCP socket? Measure the send paths and socket options.",
                           epilog=EXAMPLES + EXIT_CODES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-V", "--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=OneLineParser)
    for add in (_add_run, _add_calibrate, _add_stored, _add_netlab, _add_agent):
        add(sub)
    return parser


def _version() -> str:
    from . import __version__

    return f"flushbench {__version__}"


def main(argv: list[str] | None = None) -> int:
    from . import commands

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions: answer and exit
        complete(parser)
    if not argv:  # bare flushbench: what it can do, not an error line
        parser.print_help()
        return 2
    args = parser.parse_args(dash_patterns(argv))
    try:
        _fold_selectors(args)
        return commands.COMMANDS[args.command](args)
    except FlushbenchError as exc:
        print(f"flushbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:
        return 141
    except Exception as exc:
        if not _from_interrupt(exc):
            raise
        return _interrupted()


_said = {"interrupted": False}


def _interrupted() -> int:
    """Say "interrupted" once per process; the exit code of an interrupt."""
    if not _said["interrupted"]:
        _said["interrupted"] = True
        print("flushbench: interrupted", file=sys.stderr)
    return 130


def _from_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` wraps a Ctrl-C: Python turns a KeyboardInterrupt raised while a class
    is being defined (a lazy import mid-way) into a RuntimeError caused by it."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def entry() -> None:
    """The console script and ``python -m flushbench``: main(), then exit."""
    code: int | None = None
    try:
        code = main()
        # The work is done (or stopped cleanly): a late Ctrl-C must not turn the exit into a
        # traceback during interpreter shutdown. Only here, never in main(): a caller that
        # runs main() in-process would pass an ignored SIGINT on to every child it starts.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:
        # A Ctrl-C that surfaced outside main()'s own try: on its way out, or in the call
        # above (which runs a pending handler first). Once in a full check, a run stopped
        # by Ctrl-C said so and then died by SIGINT (exit -2) instead of exiting 130.
        with contextlib.suppress(KeyboardInterrupt):  # yet another, pending here
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if code is None:
            code = _interrupted()
    if code == 130:
        _leave_interrupted()
    sys.exit(code)


def _leave_interrupted() -> NoReturn:
    """Exit 130 without the interpreter's finalization, once an interrupted run has reaped its
    children and closed its files: atexit handlers (a netlab's clean-up) and a flush of
    stdout and stderr, then ``os._exit``. Once in a full check, an interpreter stopped early
    by Ctrl-C (before the run directory existed) aborted while finalizing ("Fatal Python
    error: PyThreadState_Get", exit -6) after it had said "interrupted"; 660 attempts here
    did not bring it back, so the step that failed is left out instead."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(130)


if __name__ == "__main__":
    entry()
