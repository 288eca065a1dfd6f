"""Terminal output: the progress bar during a run, the summary table, plain-word warnings.

Functions that format return rich renderables or lines; only the CLI prints them.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .runner import estimate_case_s
from .suite import Case, Suite

NOISY_RSD = 0.10  # per-value rates spread more than this: say so

console = Console(stderr=True)
if not console.is_terminal:  # logs and CI: do not fold case ids into 80 columns
    console = Console(stderr=True, width=200)


class RunProgress:
    """A progress bar whose ETA comes from each case's estimated time, not from averages."""

    def __init__(self, suite: Suite, plan: list[Case], quiet: bool = False) -> None:
        self.suite, self.plan, self.quiet = suite, plan, quiet
        self.estimates = {c.id: estimate_case_s(c, suite) for c in plan}
        self.interactive = console.is_terminal and not quiet
        self.bar = Progress(TextColumn("[bold]{task.fields[case]}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=console, disable=not self.interactive)
        self.task = self.bar.add_task("run", total=len(plan), case="")
        self.index = 0

    def __enter__(self) -> RunProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def start_case(self, case: Case) -> None:
        self.index += 1
        self.bar.update(self.task, case=case.id)

    def end_case(self, case: Case, row: dict[str, Any]) -> None:
        self.bar.advance(self.task)
        if not self.interactive and not self.quiet:
            status = ("FAILED: " + row["error"]) if row.get("error") else _headline(row)
            console.print(f"[{self.index}/{len(self.plan)}] {case.id}: {status}",
                          highlight=False, soft_wrap=True)


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    return format(value, spec)


def _headline(row: dict[str, Any]) -> str:
    if row.get("workload") in ("stream", "file"):
        return f"{_fmt(row['throughput_bps'] / 1e9, '.2f')} Gbit/s"
    p50, p99 = _fmt(row.get("lat_p50_us"), ".1f"), _fmt(row.get("lat_p99_us"), ".1f")
    return f"p50 {p50} us, p99 {p99} us"


def summary_table(frame: pd.DataFrame, title: str = "") -> Table:
    table = Table(title=title, show_lines=False, header_style="bold")
    for name, justify in (("case", "left"), ("Gbit/s", "right"), ("msg/s", "right"),
                          ("p50 us", "right"), ("p99 us", "right"), ("segs/msg", "right"),
                          ("calls/msg", "right"), ("sndbuf eff", "right"), ("note", "left")):
        table.add_column(name, justify=justify, no_wrap=name == "case")
    for row in frame.to_dict("records"):
        note = row.get("error") or row.get("opt_mismatch") or ""
        if not row.get("error") and (row.get("rate_rsd") or 0) > NOISY_RSD:
            note = (note + "; " if note else "") + f"noisy ±{row['rate_rsd']:.0%}"
        table.add_row(row["case"], _fmt(row.get("throughput_bps", math.nan) / 1e9, ".3f"),
                      _fmt(row.get("msgs_per_s"), ",.0f"), _fmt(row.get("lat_p50_us"), ".1f"),
                      _fmt(row.get("lat_p99_us"), ".1f"), _fmt(row.get("segs_per_msg"), ".2f"),
                      _fmt(row.get("send_calls_per_msg"), ".2f"),
                      _fmt(row.get("sndbuf_eff"), ".0f"), note,
                      style="red" if row.get("error") else None)
    return table


def quality_warnings(frame: pd.DataFrame) -> list[str]:
    """Plain words about results not to trust as they are (like pyperf's format_checks)."""
    lines = []
    ok = frame[frame["error"] == ""]
    noisy = ok[ok["rate_rsd"].fillna(0) > NOISY_RSD]
    if len(noisy):
        worst = noisy.sort_values("rate_rsd", ascending=False).iloc[0]
        lines.append(f"{len(noisy)} case(s) are noisy: their values differ by more than "
                     f"{NOISY_RSD:.0%} (worst {worst['case']}, ±{worst['rate_rsd']:.0%}). Close "
                     "other programs, pin CPUs (--pin) or rerun with more --processes/--values.")
    few = ok[(ok["workload"].isin(["rr", "wwr", "pipeline"])) & (ok["lat_samples"] < 1000)]
    if len(few):
        lines.append(f"{len(few)} latency case(s) have under 1,000 samples (slow operations "
                     "stopped at the value time): their p99.9 and max rest on few requests.")
    failed = frame[frame["error"] != ""]
    if len(failed):
        lines.append(f"{len(failed)} case(s) failed; see the note column.")
    return lines


def calibration_table(frame: pd.DataFrame, title: str = "") -> Table:
    table = Table(title=title, header_style="bold")
    for name in ("metric", "flushbench", "reference", "tool", "ratio", "case"):
        table.add_column(name, justify="left" if name in ("metric", "tool", "case") else "right")
    for row in frame.to_dict("records"):
        table.add_row(row["metric"], _fmt(row["flushbench"], ".2f"),
                      _fmt(row["reference"], ".2f"), row["tool"], _fmt(row["ratio"], ".3f"),
                      row["case"])
    return table
