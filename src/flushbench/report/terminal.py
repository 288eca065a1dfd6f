"""Numbers -> the terminal: tables with rich, and the lines shown during a run.

Functions here return rich renderables or strings; only the CLI prints them. Text that came
from a run (case ids, errors, machine names, even column names) is never read as rich markup:
it goes into ``rich.text.Text`` through :func:`text`, which also shows control characters
escaped (:func:`~flushbench.report.markup.printable`), so no ESC sequence, carriage return or
bidi override from a run directory reaches the terminal.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..analysis.compare import coverage
from ..analysis.noise import noise_floor
from ..analysis.quality import findings
from ..analysis.runs import StoredRun
from ..case import THROUGHPUT_WORKLOADS
from . import verdicts
from .compare import display, geo_display, meta_display
from .format import finding_sentence, fmt_headline, fmt_us
from .markup import printable

console = Console(stderr=True)
if not console.is_terminal:  # logs and CI: do not fold case ids into 80 columns
    console = Console(stderr=True, width=200)


def text(value: Any, style: str = "") -> Text:
    """Run text for a rich table or line: never markup, control characters escaped."""
    return Text(printable(value), style=style)


def _fmt(value: Any, spec: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def progress_line(round_no: int, rounds: int, row: Mapping[Hashable, Any]) -> str:
    """One finished trial while a run goes on: round, cell, case, headline figure."""
    from .verdicts import case_label, setting

    if row.get("error"):
        status = "FAILED: " + str(row["error"])
    elif row.get("workload") in THROUGHPUT_WORKLOADS:
        status = fmt_headline(str(row["workload"]), row.get("throughput_bps"))
    else:
        status = f"p50 {fmt_us(row.get('lat_p50_us'))}  p99 {fmt_us(row.get('lat_p99_us'))}"
    return printable(f"{round_no}/{rounds} {row.get('workload')} {setting(row)}: "
                     f"{case_label(row)}  {status}")


VERDICT_STYLES = {"better": "green", "worse": "bold red"}


def verdict_table(run: StoredRun, cases: Sequence[str] | None = None, width: int = 80
                  ) -> Table | None:
    """The run's paired verdicts, a section per cell; None for a run without verdicts.

    Narrow on purpose (under 100 columns for the quick suite): a case is its strategy and the
    options not at their default, its baseline what differs along the compared axis
    ("sendall", "nodelay off"), its cell (workload and size) heads its section. ``cases``
    keeps the comparisons whose case is among them; ``width``: the terminal's columns (only
    the case column folds, at a space).
    """
    frame = verdicts.view(run)
    if cases is not None:
        frame = frame[frame["case"].isin(set(cases))]
    if frame.empty:
        return None
    rounds = sorted({int(r) for r in frame["rounds"] if r})
    shown = "–".join(str(r) for r in (rounds[:1] + rounds[-1:] if len(rounds) > 1 else rounds))
    table = Table(title=text(f"{run.label}: each case / its baseline, paired over "
                             f"{shown or 'no'} rounds"), box=box.SIMPLE_HEAD, pad_edge=False,
                  show_edge=False, header_style="bold", title_justify="left",
                  padding=(0, 1, 0, 0))
    from .summary import fit_width, indented

    ratios = [verdicts.fmt_factor(x) for x in frame["ratio"]]
    intervals = [verdicts.fmt_interval(lo, hi) for lo, hi in zip(frame["ci_low"], frame["ci_high"])]
    heads = [f"{w} {s}" for w, s in zip(frame["workload"], frame["setting"])]
    widths = [max(len(x) for x in [*(" " + str(v) for v in frame["label"]), *heads]),
              max(2, *(len(str(v)) for v in frame["vs_short"])),
              max(6, *(len(str(v)) for v in frame["metric_label"])),
              max(5, *map(len, ratios)), max(7, *map(len, intervals)),
              max(7, *(len(str(v)) for v in frame["verdict"]))]
    case_width = fit_width(widths, width)
    table.add_column("case", overflow="fold", width=case_width)
    table.add_column("vs", overflow="fold", min_width=widths[1])
    table.add_column("metric", overflow="fold", min_width=widths[2])
    # numbers and verdicts never fold: as wide as their widest cell
    table.add_column("ratio", justify="right", no_wrap=True, min_width=widths[3])
    table.add_column("95 % CI", justify="right", no_wrap=True, min_width=widths[4])
    table.add_column("verdict", no_wrap=True, min_width=widths[5])
    last_cell, last_pair = None, None
    for r in frame.to_dict("records"):
        cell = r["cell"]
        if cell != last_cell:
            if last_cell is not None:
                table.add_section()
            table.add_row(text(f"{r['workload']} {r['setting']}", style="bold"))
            last_cell = cell
        pair = (r["case"], r["baseline"])
        first = pair != last_pair
        last_pair = pair
        verdict = str(r["verdict"])
        table.add_row(indented(printable(r["label"]), case_width) if first else Text(""),
                      text(r["vs_short"] if first else ""), text(r["metric_label"]),
                      verdicts.fmt_factor(r["ratio"]),
                      verdicts.fmt_interval(r["ci_low"], r["ci_high"]),
                      text(verdict, style=VERDICT_STYLES.get(verdict, "")))
    return table


def noise_line(run: StoredRun) -> Text:
    """The A/A noise floor in one line; a WARNING (red) when a twin came out different."""
    warn, words = verdicts.noise_sentence(noise_floor(run.verdicts))
    if warn:
        return Text("WARNING: ", style="bold red") + text(words, style="red")
    return text(words)


def quality_lines(frame: pd.DataFrame) -> list[str]:
    """The run's quality findings in plain words (see :mod:`flushbench.analysis.quality`)."""
    return [printable(finding_sentence(f)) for f in findings(frame)]


def calibration_table(frame: pd.DataFrame, title: str = "") -> Table:
    """flushbench beside iperf3 and sockperf (``flushbench calibrate``): the median ratio over
    the rounds paired, with its min and max."""
    table = Table(title=text(title), header_style="bold")
    for name in ("metric", "flushbench", "reference", "tool", "ratio", "min-max", "rounds",
                 "case"):
        table.add_column(name, justify="left" if name in ("metric", "tool", "case") else "right")
    for row in frame.to_dict("records"):
        rounds = row.get("rounds") or 0
        spread = f"{_fmt(row.get('ratio_min'), '.3f')}-{_fmt(row.get('ratio_max'), '.3f')}" \
            if rounds else "–"
        table.add_row(text(row["metric"]), _fmt(row["flushbench"], ".2f"),
                      _fmt(row["reference"], ".2f"), text(row["tool"]),
                      _fmt(row["ratio"], ".3f"), spread, str(rounds), text(row["case"]))
    return table


def compare_tables(runs: Sequence[StoredRun], frame: pd.DataFrame) -> list[Table | Text]:
    """Rich tables: per compared run, the ratio of ratios (runs with trials) and the absolute
    comparison; then the geometric means, the metadata diff, coverage."""
    from ..analysis.ratios import ratio_frame
    from .compare import DRIFT_NOTE, ratio_display, ratio_summary

    out: list[Table | Text] = []
    styles = {"▲": "green", "▼": "red"}
    ratios = ratio_frame(runs)
    for run in runs[1:]:
        rshown = ratio_display(ratios, run.label).drop(columns=["baseline", "metric"])
        if not rshown.empty:
            table = Table(title=text(f"{run.label} vs {runs[0].label}: ratio of ratios, each "
                                     "case against its baseline in both runs (the host's "
                                     "drift cancels; throughput for stream/file, p50 latency "
                                     "for rr/wwr/pipeline)"), header_style="bold")
            for col in rshown.columns:
                table.add_column(text(col), justify="left" if col in ("case", "vs", "verdict")
                                 else "right", overflow="fold",
                                 min_width=24 if col == "case" else None)
            for _, r in rshown.iterrows():
                table.add_row(*(text(v) for v in r), style=styles.get(r["verdict"][:1]))
            out.append(table)
            out.append(text(ratio_summary(ratios, run.label) + "; every metric (p99, segments) "
                            "in compare-ratios.csv with --out"))
        shown = display(frame, run.label).drop(columns="metric")
        title = (f"{run.label} vs {runs[0].label} (reference): throughput for "
                 "stream/file, p50 latency for rr/wwr/pipeline")
        if not rshown.empty:
            title += f" — {DRIFT_NOTE}"
        table = Table(title=text(title), header_style="bold")
        for col in shown.columns:
            table.add_column(text(col), justify="left" if col in ("case", "verdict") else "right",
                             overflow="fold", min_width=24 if col == "case" else None)
        for _, r in shown.iterrows():
            table.add_row(*(text(v) for v in r), style=styles.get(r["verdict"][:1]))
        out.append(table)
    for title, data in (("geometric mean per workload", geo_display(frame, runs)),
                        ("what differs between the runs", meta_display(runs, True)),
                        ("cases not in every run (or failed)", coverage(frame))):
        if data.empty:
            continue
        table = Table(title=text(title), header_style="bold")
        for col in data.columns:
            table.add_column(text(col))
        for row in data.itertuples(index=False):
            table.add_row(*(text(v) for v in row))
        out.append(table)
    out.append(text(f"aligned by {frame.attrs.get('aligned_by', 'case id')}; intervals 95 %; "
                    "ratio = run / reference (throughput: higher is better; latency: lower)"))
    return out
