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
from rich.console import Console, Group, JustifyMethod, RenderableType
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
                  ) -> Group | None:
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
    from .summary import SectionRow, sectioned_table

    sections: dict[str, list[SectionRow]] = {}
    last_pair = None
    for r in frame.to_dict("records"):
        pair = (r["case"], r["baseline"])
        first = pair != last_pair
        last_pair = pair
        verdict = str(r["verdict"])
        sections.setdefault(f"{r['workload']} {r['setting']}", []).append(
            (printable(r["label"]) if first else "",
             [printable(r["vs_short"]) if first else "", printable(r["metric_label"]),
              verdicts.fmt_factor(r["ratio"]), verdicts.fmt_interval(r["ci_low"], r["ci_high"]),
              text(verdict, style=VERDICT_STYLES.get(verdict, ""))], None))
    headers: list[tuple[str, JustifyMethod]] = [
        ("case", "left"), ("vs", "left"), ("metric", "left"), ("ratio", "right"),
        ("95 % CI", "right"), ("verdict", "left")]
    return sectioned_table(text(f"{run.label}: each case / its baseline, paired over "
                                f"{shown or 'no'} rounds"), headers, sections, width)


def noise_line(run: StoredRun) -> Text:
    """The A/A noise floor in one line; a WARNING (red) when a twin came out different."""
    warn, words = verdicts.noise_sentence(noise_floor(run.verdicts))
    if warn:
        return Text("WARNING: ", style="bold red") + text(words, style="red")
    return text(words)


def host_state_line(run: StoredRun) -> Text | None:
    """A WARNING (red) when some rounds caught the host in a slow state; None otherwise."""
    words = verdicts.slow_rounds_warning(run)
    return Text("WARNING: ", style="bold red") + text(words, style="red") if words else None


def quality_lines(frame: pd.DataFrame, verdicts: pd.DataFrame | None = None,
                  trials: pd.DataFrame | None = None) -> list[str]:
    """The quality findings of a run's table (and verdicts, trials) in plain words (see
    :mod:`flushbench.analysis.quality`)."""
    return [printable(finding_sentence(f)) for f in findings(frame, verdicts, trials)]


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


def compare_tables(runs: Sequence[StoredRun], frame: pd.DataFrame, width: int = 80
                   ) -> list[RenderableType]:
    """Rich tables in ``width`` columns: per compared run, the ratio of ratios (runs with
    trials) and the absolute comparison, a section per cell, cases named by strategy and
    options; then the geometric means, the metadata diff, coverage."""
    from ..analysis.ratios import ratio_frame
    from .compare import DRIFT_NOTE, host_state_notes, ratio_display, ratio_summary
    from .summary import SectionRow, id_row, sectioned_table

    out: list[RenderableType] = []
    styles = {"▲": "green", "▼": "red"}

    def sections(shown: pd.DataFrame, cells: Sequence[str]) -> dict[str, list[SectionRow]]:
        grouped: dict[str, list[SectionRow]] = {}
        for r in shown.to_dict("records"):
            row = id_row(str(r["case"]))
            grouped.setdefault(f"{row['workload']} {verdicts.setting(row)}", []).append(
                (printable(verdicts.case_label(row)), [printable(r[c]) for c in cells],
                 styles.get(str(r["verdict"])[:1])))
        return grouped

    ratios = ratio_frame(runs)
    out.extend(Text("WARNING: ", style="bold red") + text(note, style="red")
               for note in host_state_notes(runs))
    for run in runs[1:]:
        rshown = ratio_display(ratios, run.label)
        if not rshown.empty:
            rshown["vs"] = [verdicts.short_vs(str(axis), id_row(str(base)))
                            for axis, base in zip(rshown["vs"], rshown["baseline"])]
            cells = ["vs", "case/base (ref)", "case/base (run)", "run/ref", "95% CI", "verdict"]
            headers: list[tuple[str, JustifyMethod]] = [
                ("case", "left"), ("vs", "left"), ("ref", "right"), ("run", "right"),
                ("run/ref", "right"), ("95 % CI", "right"), ("verdict", "left")]
            out.append(sectioned_table(
                text(f"{run.label} vs {runs[0].label}: ratio of ratios, each case / its "
                     "baseline in the reference (ref) and in this run (run), and run/ref (the "
                     "hosts' drift cancels); throughput for stream/file, p50 for "
                     "rr/wwr/pipeline"),
                headers, sections(rshown, cells), width))
            out.append(text(ratio_summary(ratios, run.label) + "; every metric (p99, segments) "
                            "in compare-ratios.csv with --out, or with --format csv"))
        shown = display(frame, run.label)
        title = (f"{run.label} vs {runs[0].label} (reference): throughput for "
                 "stream/file, p50 latency for rr/wwr/pipeline")
        if not rshown.empty:
            title += f" — {DRIFT_NOTE}"
        cells = ["reference", "this run", "ratio", "95% CI", "verdict"]
        headers = [("case", "left"), ("reference", "right"), ("this run", "right"),
                   ("ratio", "right"), ("95 % CI", "right"), ("verdict", "left")]
        out.append(sectioned_table(text(title), headers, sections(shown, cells), width))
    for title, data in (("geometric mean per workload", geo_display(frame, runs)),
                        ("what differs between the runs", meta_display(runs, True)),
                        ("cases not in every run (or failed)", coverage(frame))):
        if data.empty:
            continue
        table = Table(title=text(title), header_style="bold", title_justify="left")
        for col in data.columns:
            table.add_column(text(col), overflow="fold")
        for row in data.itertuples(index=False):
            table.add_row(*(text(v) for v in row))
        out.append(table)
    out.append(text(f"aligned by {frame.attrs.get('aligned_by', 'case id')}; intervals 95 %; "
                    "ratio = run / reference (throughput: higher is better; latency: lower)"))
    return out
