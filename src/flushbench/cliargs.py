"""What flushbench's parsers share: argument types (each refuses bad text with a one-line
reason), the case selectors and output-format options, and shell completion."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from .case import CC_NAME, parse_size

FORMATS = ("table", "csv", "json", "md")


def _pin(text: str) -> dict[str, int]:
    if text == "none":
        return {}
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


def _seed(text: str) -> int:
    if not text.isdigit() or int(text) >= 1 << 63:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def _cc(text: str) -> str:
    """A congestion control's name, or 'host' (the host's default: "")."""
    if text == "host":
        return ""
    if not re.fullmatch(CC_NAME, text):
        raise argparse.ArgumentTypeError(f"expected a congestion control like cubic or bbr, "
                                         f"or host, got {text!r}")
    return text


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.03, got {text!r}") from None
    if not 0 <= value < 1:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def _size(text: str) -> int:
    try:
        value = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a byte count >= 1, got {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port 0..65535, got {text!r}")
    return int(text)


def _sizes(text: str) -> list[int]:
    """--sizes: comma-separated byte counts (64K, 1M allowed), each a stream size."""
    try:
        sizes = [parse_size(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not sizes:
        raise argparse.ArgumentTypeError(f"expected sizes like 1024,128K, got {text!r}")
    return list(dict.fromkeys(sizes))  # 128K,131072: once


def _conns(text: str) -> int:
    """--conns: connections, 1..MAX_CONNS like a case's ``conns``."""
    from .case import MAX_CONNS

    if not text.isdigit() or not 1 <= int(text) <= MAX_CONNS:
        raise argparse.ArgumentTypeError(f"conns must be 1..{MAX_CONNS} connections, "
                                         f"got {text!r}")
    return int(text)



SELECTORS = ("workload", "strategy", "size", "nodelay", "sndbuf")


def _add_selectors(parser: argparse.ArgumentParser, what: str) -> None:
    """-f/--filter and the named selectors; all of them must hold (AND)."""
    group = parser.add_argument_group(
        "selecting cases", f"{what} that match every selector given (AND); commas inside "
        "one are alternatives (--strategy sendall,makefile)")
    group.add_argument("-f", "--filter", action="append", default=[], metavar="PAT",
                       help="a case id glob or substring (nd1, '*-s64-*'), or key=value "
                            "(workload=rr, size=16K, nodelay=on, sndbuf=auto, tls=on, "
                            "transport=unix, driver=trio, conns=16); repeatable")
    group.add_argument("--workload", metavar="W", help="stream, file, rr, wwr or pipeline")
    group.add_argument("--strategy", metavar="S", help="a send strategy (flushbench list)")
    group.add_argument("--size", metavar="N", help="message size: 64, 16K, 1M")
    group.add_argument("--nodelay", metavar="on|off", help="TCP_NODELAY on or off")
    group.add_argument("--sndbuf", metavar="N", help="SO_SNDBUF: auto or a size like 64K")


def _add_format(parser: argparse.ArgumentParser, records: str, short_o: bool = True) -> None:
    """--format and -o/--output FILE: data to standard output (or FILE), never to stderr."""
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help=f"table (default, for people), or csv, json (a list of records) "
                             f"or md: {records}")
    flags = ("-o", "--output") if short_o else ("--output",)
    parser.add_argument(*flags, type=Path, metavar="FILE",
                        help="write there instead of standard output")


def dash_patterns(argv: list[str]) -> list[str]:
    """``--filter -c1-`` as ``--filter=-c1-``: argparse takes a value that starts with a dash
    for an option, and a piece of a case id often does (-c1-, -nd0, -trio). Two or three
    letters (``-f -q``, ``-f -qv``) are left to argparse: a forgotten pattern, not a piece."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in ("-f", "--filter"):
            value = next(it, None)
            if value is not None and value.startswith("-") and not value.startswith("--") \
                    and (len(value) > 3 or not value[1:].isalpha()):
                out.append(f"--filter={value}")
                continue
            out.append(arg)
            if value is not None:
                out.append(value)
            continue
        out.append(arg)
    return out


def _fold_selectors(args: argparse.Namespace) -> None:
    """The named selectors as key=value filters beside --filter; a pattern that can never
    match (an unknown key, a bad value) is a usage error now."""
    from .suites import selection

    if not hasattr(args, "filter"):
        return
    for key in SELECTORS:
        value = getattr(args, key, None)
        if value is not None:
            args.filter.append(f"{key}={value}")
    selection.check(args.filter)

def complete(parser: argparse.ArgumentParser) -> None:
    """Shell completion (argcomplete): commands and options, and the names of suites,
    strategies and workloads where an option takes one."""
    import argcomplete

    from .case import WORKLOADS

    def suites(**_: object) -> list[str]:
        from .suites import available_suites

        return list(available_suites())

    def strategies(**_: object) -> list[str]:
        from .measure import strategies as registry
        from .measure.plugins import load_entry_points

        load_entry_points()
        return list(registry.REGISTRY)

    completers = {"--suite": suites, "--strategy": strategies,
                  "--workload": lambda **_: list(WORKLOADS),
                  "--nodelay": lambda **_: ["on", "off"]}
    for sub in parser._subparsers._group_actions if parser._subparsers else []:
        for command in getattr(sub, "choices", {}).values():
            for action in command._actions:
                for flag in action.option_strings:
                    if flag in completers:
                        action.completer = completers[flag]
    argcomplete.autocomplete(parser)


