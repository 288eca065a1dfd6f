"""Run-to-run agreement: how far two back-to-back runs of a suite agree, case by case.

    python bench/bench_repeat.py                              # two quick runs, compared
    python bench/bench_repeat.py --suite smoke --filter 'stream-*'
    python bench/bench_repeat.py --from RUN_A RUN_B           # two stored runs instead

On the throughput workloads (stream, file) a case agrees when its msgs_per_s in B is within
``--tolerance`` (default ±10 %) of A's. Cases are aligned as ``flushbench compare`` aligns
them (:func:`flushbench.analysis.compare.align`); cases failed in either run, or present in
only one, are listed apart and not counted. Printed beside the count: the run-wide factor
(geometric mean of B/A), the host CPU probe's B/A (a diagnostic: the figures are never
adjusted), and per noisy case whether ``flushbench compare``'s test
(:func:`flushbench.analysis.compare.compare_frame`) calls the change significant. A run's A/A
twins (ids ending in "-twin") are cases like any other here. These are absolute figures,
which the host's drift moves; bench_verdicts.py measures how far the case-to-baseline
ratios repeat.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from _common import cli, load_line, log_tail, run_suite, workdir

from flushbench.analysis.compare import align, compare_frame
from flushbench.analysis.runs import StoredRun, open_runs
from flushbench.analysis.stats import geomean
from flushbench.case import THROUGHPUT_WORKLOADS

TOLERANCE = 0.10  # two runs agree on a case within ±10 % of msgs_per_s
CASE_COLUMNS = ["case", "workload", "msgs_per_s_a", "msgs_per_s_b", "ratio", "dev", "within",
                "rate_rsd_a", "rate_rsd_b", "host_ratio"]


def _num(value: Any) -> float:
    v = pd.to_numeric(value, errors="coerce")
    return math.nan if v is None or pd.isna(v) else float(v)


@dataclass(frozen=True)
class Agreement:
    """How two runs agree on the throughput cases (``case`` is the alignment key)."""

    within: int
    total: int
    tolerance: float
    cases: pd.DataFrame  # CASE_COLUMNS, one row per case finished in both runs
    failed: list[str]
    missing: list[str]
    aligned_by: str = "case id"

    @property
    def fraction(self) -> float:
        return self.within / self.total if self.total else math.nan

    @property
    def shift(self) -> float:
        """The run-wide factor: geometric mean of B/A (1.0 when the runs agree on average)."""
        return geomean(self.cases["ratio"].tolist())

    @property
    def host_shift(self) -> float:
        """The host CPU probe's geometric-mean B/A over the cases (NaN without the probe)."""
        return geomean(self.cases["host_ratio"].dropna().tolist())

    def _count_within(self, ratios: pd.Series) -> int:
        return int(((ratios - 1).abs() <= self.tolerance + 1e-12).sum())

    def within_host_adjusted(self) -> int:
        """Cases within the tolerance once each case's own host-speed ratio is divided out.

        A diagnostic only (how far the host's speed explains the disagreement): the runs'
        figures are what was measured and are never adjusted.
        """
        return self._count_within(self.cases["ratio"] / self.cases["host_ratio"])

    def within_after_shift(self) -> int:
        """Cases within the tolerance once the run-wide factor is divided out."""
        return self._count_within(self.cases["ratio"] / self.shift)

    @property
    def noisy(self) -> pd.DataFrame:
        return self.cases[~self.cases["within"]].sort_values("dev", ascending=False)

    def headline(self) -> str:
        return (f"{self.within} of {self.total} throughput cases within "
                f"±{self.tolerance * 100:.0f} % ({self.fraction * 100:.0f} %)")


def repeat_agreement(runs: Sequence[StoredRun], tolerance: float = TOLERANCE) -> Agreement:
    """Compare msgs_per_s case by case on the throughput workloads of two stored runs."""
    if len(runs) != 2:
        raise ValueError(f"repeat compares exactly two runs, got {len(runs)}")
    keyed, how = align(runs)
    a, b = ({k: r for k, r in rows.items() if r["workload"] in THROUGHPUT_WORKLOADS}
            for rows in keyed)
    missing = sorted(set(a) ^ set(b))
    both = sorted(set(a) & set(b))
    failed = [k for k in both if a[k]["error"] or b[k]["error"]]
    rows = []
    for key in (k for k in both if k not in failed):
        ra, rb = a[key], b[key]
        ratio = _num(rb["msgs_per_s"]) / _num(ra["msgs_per_s"])
        dev = abs(ratio - 1)
        rows.append({"case": key, "workload": ra["workload"],
                     "msgs_per_s_a": _num(ra["msgs_per_s"]),
                     "msgs_per_s_b": _num(rb["msgs_per_s"]), "ratio": ratio, "dev": dev,
                     "within": bool(dev <= tolerance + 1e-12),
                     "rate_rsd_a": _num(ra["rate_rsd"]), "rate_rsd_b": _num(rb["rate_rsd"]),
                     # the host's own CPU speed around the case, B/A (NaN without the probe)
                     "host_ratio": _num(rb["host_speed"]) / _num(ra["host_speed"])})
    cases = pd.DataFrame(rows, columns=CASE_COLUMNS)
    return Agreement(int(cases["within"].sum()), len(cases), tolerance, cases, failed,
                     missing, how)


def significance(runs: Sequence[StoredRun]) -> dict[str, bool]:
    """Per alignment key: does ``flushbench compare`` call B's change significant?"""
    frame = compare_frame(runs)
    ok = frame[frame["status"] == "ok"]
    return {str(k): bool(s) for k, s in zip(ok["key"], ok["significant"], strict=True)}


def format_agreement(agr: Agreement, sig: dict[str, bool] | None = None) -> list[str]:
    lines = [agr.headline() + f" (aligned by {agr.aligned_by})"]
    pct = f"±{agr.tolerance * 100:.0f} %"
    if agr.total:
        dev = agr.cases["dev"]
        lines.append(f"  |B/A - 1|: median {dev.median() * 100:.1f} %, "
                     f"max {dev.max() * 100:.1f} %; run-wide factor (geomean B/A) "
                     f"{agr.shift:.3f}, {agr.within_after_shift()} of {agr.total} within "
                     f"{pct} once it is divided out")
        if not math.isnan(agr.host_shift):
            ratios = agr.cases["host_ratio"]
            lines.append(f"  host CPU speed probe B/A: geomean {agr.host_shift:.3f}, per case "
                         f"{ratios.min():.2f}-{ratios.max():.2f}; {agr.within_host_adjusted()} "
                         f"of {agr.total} within {pct} once each case's own host ratio is "
                         "divided out (diagnostic)")
    if agr.failed:
        lines.append(f"  failed in a run (not counted): {', '.join(agr.failed)}")
    if agr.missing:
        lines.append(f"  in one run only (not counted): {', '.join(agr.missing)}")
    noisy = agr.noisy
    if len(noisy):
        width = max(48, *(len(str(c)) for c in noisy["case"]))  # twins end in "-twin"
        lines.append(f"noisy cases (outside {pct}):")
        lines.append(f"  {'case':<{width}} {'msgs/s A':>11} {'msgs/s B':>11} {'B/A':>6} "
                     f"{'rsd A':>6} {'rsd B':>6} {'host':>6}  significant")
        for row in noisy.to_dict("records"):
            case = str(row["case"])
            mark = "" if sig is None else ("yes" if sig.get(case) else "no")
            lines.append(f"  {case:<{width}} {row['msgs_per_s_a']:>11.4g} "
                         f"{row['msgs_per_s_b']:>11.4g} {row['ratio']:>6.3f} "
                         f"{row['rate_rsd_a'] * 100:>5.1f}% {row['rate_rsd_b'] * 100:>5.1f}% "
                         f"{row['host_ratio']:>6.3f}  {mark}")
    return lines


def two_runs(work: Path, suite: str, filters: list[str]) -> list[Path] | None:
    """Run the suite twice, back to back; None (with the log shown) if a run left no table."""
    extra = [f"--filter={f}" for f in filters]
    dirs = []
    for label in ("a", "b"):
        before = load_line()
        out = work / f"repeat-{label}"
        wall, code, log = run_suite(suite, out, extra)
        cmd = f"flushbench run --suite {suite} {' '.join(extra)}".rstrip()
        print(f"repeat {label}: {cmd}: {wall:.1f} s (exit {code}; before: {before}; "
              f"after: {load_line()})", flush=True)
        if code and not (out / "table.csv").exists():
            print(log_tail(log), file=sys.stderr)
            return None
        dirs.append(out)
    return dirs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", default="quick", help="suite to run twice (default quick)")
    p.add_argument("--filter", action="append", default=[], help="passed to flushbench run")
    p.add_argument("--tolerance", type=float, default=TOLERANCE,
                   help=f"relative agreement per case (default {TOLERANCE})")
    p.add_argument("--from", dest="from_runs", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"),
                   help="compare two stored runs instead of running")
    p.add_argument("--out", type=Path, help="keep the runs here (default: a temp dir)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with workdir(args.out, "flushbench-repeat-") as work:
        dirs = args.from_runs or two_runs(work, args.suite, args.filter)
        if dirs is None:
            return 1
        runs = open_runs(dirs)
        if len(runs) != 2:
            print(f"expected two runs, found {len(runs)} under {' '.join(map(str, dirs))}",
                  file=sys.stderr)
            return 2
        agr = repeat_agreement(runs, args.tolerance)
        sig = significance(runs) if agr.total else None
        print("\n".join(format_agreement(agr, sig)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(cli(main, "bench_repeat"))
