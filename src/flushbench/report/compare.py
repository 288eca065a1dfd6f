"""How a comparison is shown: Markdown/HTML sections, CSV and charts (terminal tables are in
:mod:`.terminal`).

Formatting returns blocks or figures; only :func:`write_outputs` writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from ..analysis.compare import compare_frame, coverage, geomeans, host_speed, metadata_diff
from ..analysis.ratios import (
    METRIC_LABELS,
    RATIOS,
    headline_rows,
    ratio_frame,
    summary,
    timer_bound,
)
from ..analysis.runs import RATIO_RANGE, StoredRun, open_runs
from ..case import THROUGHPUT_WORKLOADS
from ..files import make_dirs
from ..results import atomic_write
from . import charts, verdicts
from .format import fmt_headline, fmt_ratio, with_keys
from .markup import Doc

GOOD, BAD, GREY = "#1a7f37", "#b42318", "#8c8c8c"
COARSE_TICKS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50,
                100, 200, 500, 1000, 2000, 5000]
FINE_TICKS = [0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1, 1.2, 1.3, 1.5, 1.7, 2]


def verdict(row: pd.Series) -> str:
    status: str = row["status"]
    if status != "ok":
        return status
    if not row["significant"]:
        return "≈ within noise" if np.isfinite(row["ci_low"]) else "no interval"
    return "▲ better" if row["better"] else "▼ worse"


def display(frame: pd.DataFrame, run: str) -> pd.DataFrame:
    """The comparison of one run against the reference, as strings for tables."""
    part = frame[frame["run"] == run]
    rows = []
    for _, r in part.iterrows():
        ci = (f"{r['ci_low']:.3g}–{r['ci_high']:.3g}" if np.isfinite(r["ci_low"]) else "–")
        rows.append({"case": r["key"], "metric": r["metric"],
                     "reference": fmt_headline(r["workload"], r["ref_value"]),
                     "this run": fmt_headline(r["workload"], r["value"]),
                     "ratio": fmt_ratio(r["ratio"]), "95% CI": ci,
                     "p": f"{r['p_value']:.2g}" if np.isfinite(r["p_value"]) else "–",
                     "verdict": verdict(r)})
    table: pd.DataFrame = pd.DataFrame(rows, columns=["case", "metric", "reference", "this run",
                                                      "ratio", "95% CI", "p", "verdict"])
    return table


RATIO_MARKS = {"better": "▲ better", "worse": "▼ worse", "same": "≈ same"}
DRIFT_NOTE = ("absolute figures: each run carries its own host's speed and drift, so a ratio "
              "here moves with the machines as well as with the send path")


def _ci(low: float, high: float) -> str:
    return f"{low:.3g}–{high:.3g}" if np.isfinite(low) and np.isfinite(high) else "–"


def ratio_display(ratios: pd.DataFrame, run: str, headline: bool = True) -> pd.DataFrame:
    """Ratio of ratios of one run against the reference, as strings for tables.

    ``headline``: only each comparison's headline figure (throughput or p50 latency).
    """
    part = headline_rows(ratios) if headline else ratios
    part = part[part["run"] == run]
    rows = []
    for _, r in part.iterrows():
        rows.append({"case": r["key"], "vs": r["axis"], "baseline": r["baseline"],
                     "metric": METRIC_LABELS.get(r["metric"], r["metric"]),
                     "case/base (ref)": fmt_ratio(r["ref_ratio"]),
                     "case/base (run)": fmt_ratio(r["run_ratio"]),
                     "run/ref": fmt_ratio(r["ratio"]), "95% CI": _ci(r["ci_low"], r["ci_high"]),
                     "q": f"{r['q_value']:.2g}" if np.isfinite(r["q_value"]) else "–",
                     "verdict": (RATIO_MARKS.get(r["verdict"], r["verdict"])
                                 if r["status"] == "ok" else r["status"])
                     + (" †" if timer_bound(float(r["ref_ratio"]), float(r["run_ratio"]),
                                            metric=str(r["metric"])) else "")})
    table: pd.DataFrame = pd.DataFrame(rows, columns=[
        "case", "vs", "baseline", "metric", "case/base (ref)", "case/base (run)", "run/ref",
        "95% CI", "q", "verdict"])
    return table


def ratio_summary(ratios: pd.DataFrame, run: str) -> str:
    """One line: how many cases moved against their baselines, and the A/A control."""
    n = summary(ratios, run)
    line = (f"{n['better']} better, {n['worse']} worse, {n['same']} same against their "
            f"baselines (headline figure)")
    if n["no data"]:
        line += f", {n['no data']} without data"
    if n["twins"]:
        line += (f"; A/A twins called different: {n['twins different']} of {n['twins']} "
                 "(identical code: any call here is noise)")
    if n["timer"]:
        line += (f"; † {n['timer']} over 10× from 1: one side waits on a timer (the 40 ms "
                 "delayed-ACK trap), so the ratio carries the other side's absolute speed "
                 "and moves with the host, as an absolute figure does")
    return line


def host_state_notes(runs: Sequence[StoredRun], code: Callable[[str], str] = str
                     ) -> list[str]:
    """One warning per compared run whose rounds caught the host in a slow state."""
    notes = []
    for run in runs:
        words = verdicts.slow_rounds_warning(run)
        if words:
            notes.append(f"{code(run.label)}: {words}")
    return notes


def ratio_intro(ref: str) -> str:
    return ("Each case's ratio to its baseline (the same case at the default of the compared "
            "axis, measured beside it in every round) in each run, and the ratio of those "
            f"ratios, run / {ref}. A host's speed and drift move a case and its baseline "
            "alike, so they cancel within each run: this is the figure to compare between "
            "machines, except where one side waits on a timer (a ratio over 10× from 1, "
            "marked †: the 40 ms delayed-ACK trap does not move with the host). 95 % "
            "interval and p from Welch's t on the two runs' per-round log ratios; q: "
            "Benjamini–Hochberg over the run's tests; better / worse when q < 0.05, "
            "the interval excludes 1 and the change is at least 3 %. Better / worse means the "
            "case gained / lost on its baseline in the run.")


def geo_display(frame: pd.DataFrame, runs: Sequence[StoredRun]) -> pd.DataFrame:
    geo = geomeans(frame)
    host = host_speed(runs)
    if not host.empty:
        geo = pd.concat([geo, host], ignore_index=True)
    geo["geomean ratio"] = geo["geomean ratio"].map(fmt_ratio)
    return geo


def meta_display(runs: Sequence[StoredRun], only_diff: bool) -> pd.DataFrame:
    diff = metadata_diff(runs)
    if only_diff:
        diff = diff[diff["differs"]]
    shown: pd.DataFrame = diff.drop(columns="differs").reset_index(drop=True)
    return shown


def add_sections(doc: Doc, runs: Sequence[StoredRun], frame: pd.DataFrame, charts_dir: Path,
                 rel: str, level: int = 2, ratios: pd.DataFrame | None = None) -> None:
    """The comparison as document sections; charts are saved into ``charts_dir``.

    ``ratios``: the ratio of ratios (:func:`ratio_frame`), computed here when not given.
    """
    ref = runs[0].label
    ratios = ratio_frame(runs) if ratios is None else ratios
    if not ratios.empty:
        add_ratio_sections(doc, runs, ratios, level)
    doc.para(f"Reference: **{ref}**. Cases aligned by {frame.attrs.get('aligned_by')}. "
             "Ratio = run / reference of the headline figure (throughput for stream and file: "
             "higher is better; p50 latency for rr, wwr and pipeline: lower is better); a case "
             "is significant when its 95 % interval excludes 1.")
    if not ratios.empty:
        doc.note(f"From here on, {DRIFT_NOTE}; the ratio of ratios above cancels it.")
    doc.heading(level + 1, "Geometric mean per workload")
    doc.table(geo_display(frame, runs))
    if not host_speed(runs).empty:
        doc.note("host CPU (probe): the same pure-Python loop timed on the benchmark's CPUs "
                 "around every case. On shared or virtual machines the CPU's own speed "
                 "drifts; a workload ratio close to the host's moved with the machine, not "
                 "with the socket path.")
    doc.heading(level + 1, "What differs between the runs")
    diff = metadata_diff(runs)
    shown = diff[diff["differs"] | ~diff["field"].str.contains("sysctl|net\\.|mtu", regex=True)]
    doc.table(shown.drop(columns="differs"), highlight=shown["differs"].tolist())
    same = len(diff) - len(shown)
    if same:
        doc.note(f"{same} further kernel settings and interface MTUs are identical in all runs.")
    cov = coverage(frame)
    doc.heading(level + 1, "Cases not in every run")
    if cov.empty:
        doc.para("Every case is present and finished in every run.")
    else:
        doc.table(cov, collapse_after=20, summary=f"{len(cov)} cases missing or failed")
    name = "compare-curves"
    if charts.render(curves_chart, runs, out_dir=charts_dir, name=name):
        doc.figure(f"{rel}/{name}.png", f"{rel}/{name}.svg", "throughput curves per run",
                   "Stream throughput vs message size, run by run (same y axis)")
    else:
        doc.note("Side-by-side throughput curves skipped: no run has stream cases.")
    for run in runs[1:]:
        doc.heading(level + 1, f"{run.label} vs {ref}")
        name = f"compare-ratio-{charts.slug(run.label)}"
        if charts.render(ratio_chart, frame, run.label, out_dir=charts_dir, name=name):
            doc.figure(f"{rel}/{name}.png", f"{rel}/{name}.svg", f"ratio to {ref}",
                       f"{run.label} / {ref} per case, with 95 % intervals")
        else:
            doc.note("Ratio chart skipped: no case finished in both runs.")
        shown_rows = display(frame, run.label)
        shown_rows["case"] = "`" + shown_rows["case"] + "`"
        doc.table(shown_rows, collapse_after=40, summary=f"all {len(shown_rows)} cases")


def add_ratio_sections(doc: Doc, runs: Sequence[StoredRun], ratios: pd.DataFrame,
                       level: int) -> None:
    """The ratio of ratios per compared run (every metric; headline first)."""
    ref = runs[0].label
    doc.heading(level + 1, "Ratio of ratios: each case against its baseline, run by run")
    doc.para(ratio_intro(ref))
    for note in host_state_notes(runs, lambda label: f"`{label}`"):
        doc.para(f"**WARNING** — {note}", css="bad")
    missing = ratios.attrs.get("without_trials") or []
    if missing:
        doc.note("No ratio of ratios for " + ", ".join(missing) + ": no trials.csv (a run "
                 "made before interleaved rounds); only the absolute comparison below.")
    for run in runs[1:]:
        if not (ratios["run"] == run.label).any():
            continue
        doc.heading(level + 2, f"{run.label} vs {ref}: ratio of ratios")
        doc.para(ratio_summary(ratios, run.label) + ".")
        shown = ratio_display(ratios, run.label, headline=False).drop(columns="vs")
        shown["case"] = "`" + shown["case"] + "`"
        shown["baseline"] = "`" + shown["baseline"] + "`"
        doc.table(shown, collapse_after=40, summary=f"all {len(shown)} comparisons")


def compare_runs(runs: Sequence[Path], out: Path | None = None) -> pd.DataFrame:
    """Compare stored runs (the first is the reference); write CSV/MD/HTML/charts to ``out``."""
    stored = open_runs(runs)
    frame = compare_frame(stored)
    if out is not None:
        write_outputs(stored, frame, Path(out))
    return frame


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def no_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would run as a formula get a leading ``'`` (run text may come
    from another machine: a case id like ``=HYPERLINK(...)`` must stay text)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = [f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_START) else v
                        for v in out[col].astype(object)]
    return out


def write_outputs(runs: Sequence[StoredRun], frame: pd.DataFrame, out: Path) -> Path:
    """compare.csv, compare-ratios.csv (runs with trials), README.md and index.html (with
    charts/) in ``out``; returns index.html."""
    make_dirs(out)  # the umask's mode; under sudo, the sudo user's
    with atomic_write(out / "compare.csv") as fh:
        no_formulas(frame).to_csv(fh, index=False, float_format="%.6g", lineterminator="\n")
    ratios = ratio_frame(runs)
    if not ratios.empty:  # runs with trials.csv: the ratio of ratios
        with atomic_write(out / RATIOS) as fh:
            no_formulas(ratios).to_csv(fh, index=False, float_format="%.6g",
                                       lineterminator="\n")
    else:  # not one left from an earlier comparison in the same folder
        (out / RATIOS).unlink(missing_ok=True)
    doc = Doc(f"flushbench comparison: {', '.join(r.label for r in runs)}")
    add_sections(doc, runs, frame, out / "charts", "charts", ratios=ratios)
    for name, text in (("README.md", doc.markdown()), ("index.html", doc.page())):
        with atomic_write(out / name) as fh:
            fh.write(text)
    return out / "index.html"


# -- charts ---------------------------------------------------------------------------------

def ratio_chart(frame: pd.DataFrame, run: str) -> Figure | None:
    """Ratio to the reference per case on a log axis, 1.0 line, 95 % whiskers (cut at the
    axis). Ratios past RATIO_RANGE (samples from elsewhere may hold zeros) stay in the table
    only: around them a log axis overflows."""
    ratios = frame["ratio"].astype(float)
    part = frame[(frame["run"] == run) & (frame["status"] == "ok")
                 & (ratios >= RATIO_RANGE[0]) & (ratios <= RATIO_RANGE[1])]
    if part.empty:
        return None
    groups = [(t, g) for t, g in (
        ("throughput ratio (higher is better)", part[part["workload"].isin(THROUGHPUT_WORKLOADS)]),
        ("p50 latency ratio (lower is better)", part[~part["workload"].isin(THROUGHPUT_WORKLOADS)]))
        if not g.empty]
    heights = [len(g) * 0.2 + 0.9 for _, g in groups]
    fig = Figure(figsize=(10, min(sum(heights) + 0.6, 120)), dpi=100, layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (title, g) in zip(axes, groups, strict=True):
        y = np.arange(len(g))[::-1]
        ratio = g["ratio"].astype(float).to_numpy()
        # The axis follows the ratios; very wide intervals (two values per side) run off it.
        low, high = float(ratio.min()) / 1.6, float(ratio.max()) * 1.6
        low, high = min(low, 0.8), max(high, 1.25)
        lo, hi = (np.clip(g[c].astype(float).to_numpy(), low, high) for c in ("ci_low",
                                                                            "ci_high"))
        colors = [GREY if not s else (GOOD if b else BAD)
                  for s, b in zip(g["significant"], g["better"], strict=True)]
        err = np.vstack([np.nan_to_num(ratio - lo), np.nan_to_num(hi - ratio)]).clip(0)
        ax.errorbar(ratio, y, xerr=err, fmt="none", ecolor="#555", elinewidth=0.8, capsize=2)
        ax.scatter(ratio, y, c=colors, s=18, zorder=3)
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_yticks(y, g["key"].tolist(), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        nice = FINE_TICKS if high / low < 4 else COARSE_TICKS
        ticks = [t for t in nice if low <= t <= high]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(-0.7, len(g) - 0.3)
        ax.set_title(title)
    fig.suptitle(f"{run} relative to {part['reference'].iloc[0]} "
                 "(green/red: significantly better/worse; grey: within noise)")
    return fig


def curves_chart(runs: Sequence[StoredRun]) -> Figure | None:
    """Stream throughput vs size, one panel per run, shared y axis."""
    frames = []
    for run in runs:
        f = with_keys(run.ok[run.ok["workload"] == "stream"])
        f = f[(f["sb"] == 0) & (pd.to_numeric(f["throughput_bps"], errors="coerce") > 0)]
        frames.append(f)
    if all(f.empty for f in frames):
        return None
    fig, axes = charts.new_figure(len(runs), sharey=True, width=4.2)
    for ax, run, f in zip(axes[0], runs, frames, strict=True):
        for (series, nd), rows in f.groupby(["series", "nd"], sort=True):
            rows = rows.sort_values("msg_size")
            ax.plot(rows["msg_size"].astype(int), rows["throughput_bps"].astype(float) / 1e9,
                    marker="o", ms=3, lw=1.1, ls="--" if nd else "-",
                    color=charts.color(str(series)),
                    label=f"{series}{' (nodelay)' if nd else ''}")
        if not f.empty:  # each panel labels its own sizes (runs may differ)
            charts.size_axis(ax, f["msg_size"].astype(int).tolist())
        charts.log_axis(ax)
        ax.set_title(run.label if not f.empty else f"{run.label}: no stream cases")
        ax.set_xlabel("message size")
    axes[0][0].set_ylabel("throughput (Gbit/s)")
    charts.figure_legend(fig, axes)
    fig.suptitle("Stream throughput by run (dashed: TCP_NODELAY on; sndbuf auto)")
    return fig

