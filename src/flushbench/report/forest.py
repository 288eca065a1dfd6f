"""The forest plot: each case's paired ratio to its baseline, with its 95 % interval.

One panel per workload, on the workload's headline metric (throughput for stream and file,
p50 latency for the others), a row per comparison, a log axis with a line at 1. Green for
"better", red for "worse", grey for "same"; the A/A twins are hollow diamonds, so the run's
noise floor sits beside the effects it bounds. Drawn with matplotlib's Agg canvas under the
fixed style of :mod:`.charts` (byte-identical files for unchanged data).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from ..analysis.runs import StoredRun
from ..case import headline
from . import charts
from .verdicts import view

COLORS = {"better": "#1a7f37", "worse": "#b42318", "same": "#8c8c8c"}
ROW_HEIGHT = 0.24  # inches per comparison
PANEL_EXTRA = 0.9  # inches per panel: title, axis and tick labels
WIDTH = 8.0  # inches: beside the verdict tables on a wide screen, alone on a phone


def rows(run: StoredRun) -> pd.DataFrame:
    """The comparisons the plot draws: headline metric, a finite ratio and interval."""
    frame = view(run)
    if frame.empty:
        return frame
    keep = [m == headline(w).column for w, m in zip(frame["workload"], frame["metric"],
                                                    strict=True)]
    frame = frame[keep]
    values = frame[["ratio", "ci_low", "ci_high"]].apply(pd.to_numeric, errors="coerce")
    finite = np.isfinite(values.to_numpy(dtype=float)).all(axis=1) & \
        (values.to_numpy(dtype=float) > 0).all(axis=1)
    kept: pd.DataFrame = frame[finite]
    return kept


def _label(row: pd.Series) -> str:
    if row["twin"]:
        return f"{row['setting']}  {row['vs']} (A/A twin)"
    return f"{row['setting']}  {row['label']}  vs {row['vs']}"


def _ratio_axis(ax: Axes) -> None:
    """A log x axis ticked at plain ratios (0.8, 0.9, 1, 1.25; 0.01, 0.1, 0.5, 1, 2)."""
    charts.ratio_axis(ax, "x", most=7)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def forest(run: StoredRun, axis: str | None = None,
           cases: Collection[str] | None = None) -> Figure | None:
    """The forest plot of one run (only the comparisons along ``axis``, of ``cases``, where
    given), or None when it has no verdict with data."""
    frame = rows(run)
    if axis is not None and not frame.empty:
        frame = frame[frame["axis"] == axis]
    if cases is not None and not frame.empty:
        frame = frame[frame["case"].isin(list(cases))]
    if frame.empty:
        return None
    workloads = list(dict.fromkeys(frame["workload"]))
    counts = [int((frame["workload"] == w).sum()) for w in workloads]
    height = ROW_HEIGHT * sum(counts) + PANEL_EXTRA * len(workloads) + 0.8
    with charts.style():
        fig = Figure(figsize=(WIDTH, height), dpi=100, layout="constrained")
        axes = fig.subplots(len(workloads), 1, squeeze=False,
                            gridspec_kw={"height_ratios": [c + 2.5 for c in counts]})
    for ax, workload in zip(axes[:, 0], workloads, strict=True):
        part = frame[frame["workload"] == workload].reset_index(drop=True)
        y = np.arange(len(part))[::-1]
        for yi, (_, row) in zip(y, part.iterrows(), strict=True):
            colour = COLORS.get(str(row["verdict"]), COLORS["same"])
            ratio, low, high = (float(row[c]) for c in ("ratio", "ci_low", "ci_high"))
            ax.plot([low, high], [yi, yi], color=colour, lw=1.6, solid_capstyle="butt")
            if row["twin"]:
                ax.plot([ratio], [yi], "D", ms=6, mfc="white", mec=colour, mew=1.4)
            else:
                ax.plot([ratio], [yi], "o", ms=5, color=colour)
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_yticks(y, [_label(r) for _, r in part.iterrows()], fontsize=9)
        ax.set_ylim(-0.7, len(part) - 0.3)
        ax.grid(False, axis="y")
        low = float(part["ci_low"].astype(float).min())
        high = float(part["ci_high"].astype(float).max())
        pad = max((high / low) ** 0.05, 1.02)
        ax.set_xlim(min(low, 1.0) / pad, max(high, 1.0) * pad)
        _ratio_axis(ax)
        head = headline(workload)
        ax.set_title(f"{workload}: {head.label}, case / baseline "  # over the labels too
                     f"({'higher' if head.higher_is_better else 'lower'} is better)", loc="right")
    axes[-1, 0].set_xlabel("ratio to the baseline (log scale; 1 = no difference)")
    handles = [Line2D([], [], color=COLORS[v], marker="o", lw=1.6, label=v)
               for v in ("better", "worse", "same")]
    handles.append(Line2D([], [], color=COLORS["same"], marker="D", mfc="white", lw=1.6,
                          label="A/A twin (identical code)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=4)
    fig.suptitle("Paired verdicts: each case against its baseline, 95 % intervals over rounds")
    return fig
