"""Wall time of a whole ``flushbench run``, as a user sees it (one subprocess per sample).

    python bench/bench_wall.py                          # smoke and quick, once each
    python bench/bench_wall.py --suite smoke --runs 5   # median and min over 5 runs
    python bench/bench_wall.py --suite quick --filter 'stream-*' --out /tmp/wall

Each sample is ``python -m flushbench run --suite S --out DIR`` on loopback, timed from
spawn to exit, with the host's load average before and after. The runs themselves are kept
only with ``--out``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from _common import load_line, log_tail, run_suite, workdir

DEFAULT_SUITES = ("smoke", "quick")


def summary(suite: str, walls: list[float]) -> str:
    """The line for several runs of one suite."""
    return (f"wall: --suite {suite}: median {statistics.median(walls):.1f} s, "
            f"min {min(walls):.1f} s over {len(walls)} runs")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", action="append",
                   help="suite to time; repeat for several (default: smoke, quick)")
    p.add_argument("--runs", type=int, default=1, help="runs per suite (default 1)")
    p.add_argument("--filter", action="append", default=[], help="passed to flushbench run")
    p.add_argument("--out", type=Path, help="keep the runs here (default: a temp dir)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    extra = [f"--filter={f}" for f in args.filter]
    failed = 0
    with workdir(args.out, "flushbench-wall-") as work:
        for suite in args.suite or DEFAULT_SUITES:
            walls = []
            for i in range(args.runs):
                before = load_line()
                wall, code, log = run_suite(suite, work / f"wall-{suite}-{i + 1}", extra)
                walls.append(wall)
                cmd = f"flushbench run --suite {suite} " + " ".join(extra)
                print(f"wall: {cmd.strip()}: {wall:.1f} s (exit {code}; before: {before}; "
                      f"after: {load_line()})", flush=True)
                if code:
                    failed += 1
                    print(log_tail(log), file=sys.stderr)
            if len(walls) > 1:
                print(summary(suite, walls), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
