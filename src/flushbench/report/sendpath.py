"""The charts that answer the question: the Nagle trap, each send path's throughput against
sendall, and what reaches the wire.

Throughput spans decades from 64 B to 1 MiB, so eight strategies drawn as absolute lines lie
on top of each other. Each strategy is drawn instead as its ratio to sendall at the same size
and options (paired by round, with its 95 % interval, where the run has verdicts; the ratio
of the table's figures otherwise), above sendall's own throughput. A workload measured at
one size is drawn as bars. Bars are horizontal, their figures printed beside them, level.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..analysis.runs import StoredRun
from ..case import size_label
from . import charts
from .format import finite, fmt_bps, fmt_us, numeric
from .verdicts import fmt_factor

BASELINE = "sendall"
KEY = ("workload", "msg_size", "nodelay", "sndbuf", "rcvbuf", "notsent_lowat", "parts",
       "reply", "batch", "transport", "tls")  # what a case shares with its sendall baseline


def _canon(value: Any) -> str:
    """One spelling per cell value, so 0, 0.0, '0', False and an empty cell match."""
    number = numeric(value)
    if finite(number):
        return str(float(number))
    text = "" if value is None or value is pd.NA else str(value)
    return {"True": "1.0", "False": "0.0", "nan": "", "<NA>": ""}.get(text, text)


def _key(row: Mapping[Hashable, Any]) -> tuple[str, ...]:
    return tuple(_canon(row.get(c)) for c in KEY)


def with_ratios(run: StoredRun, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus ``ratio``, ``low`` and ``high``: each case's throughput / its sendall
    baseline's (same workload, size and options): the paired ratio and its 95 % interval
    from verdicts.csv where the run has one, else the table's ratio (no interval)."""
    base = {_key(r): r for r in frame.to_dict("records") if r["strategy"] == BASELINE}
    judged = run.verdicts
    paired: dict[tuple[str, str], tuple[float, float, float]] = {}
    if not judged.empty:
        part = judged[judged["metric"] == "throughput_bps"]
        paired = {(str(c), str(b)): (float(r), float(lo), float(hi)) for c, b, r, lo, hi in zip(
            part["case"], part["baseline"], part["ratio"], part["ci_low"], part["ci_high"],
            strict=True)}
    out = []
    for row in frame.to_dict("records"):
        partner = base.get(_key(row))
        found = (np.nan, np.nan, np.nan)
        if partner is not None and row["strategy"] != BASELINE:
            found = paired.get((str(row["case"]), str(partner["case"])), (np.nan,) * 3)
            if not finite(found[0]):
                mine, theirs = numeric(row["throughput_bps"]), numeric(partner["throughput_bps"])
                found = (mine / theirs if theirs > 0 else np.nan, np.nan, np.nan)
        out.append(found)
    ratios = np.asarray(out, dtype=float).reshape(len(out), 3)
    return frame.assign(ratio=ratios[:, 0], low=ratios[:, 1], high=ratios[:, 2])


def _ratio_lines(ax: Axes, part: pd.DataFrame, sizes: list[int]) -> None:
    """Each strategy's ratio to sendall against size, with its interval where paired."""
    for series in sorted(part["series"].unique(), key=charts.strategy_key):
        rows = part[part["series"] == series].sort_values("msg_size")
        x = rows["msg_size"].astype(int).to_numpy()
        y = rows["ratio"].to_numpy(dtype=float)
        low, high = rows["low"].to_numpy(dtype=float), rows["high"].to_numpy(dtype=float)
        err = np.vstack([np.clip(np.nan_to_num(y - low), 0, None),
                         np.clip(np.nan_to_num(high - y), 0, None)])
        ax.errorbar(x, y, yerr=err, ms=4, capsize=2, lw=1.4, label=series,
                    **charts.series_style(series))
    ax.axhline(1.0, color="black", lw=1.0)
    charts.size_axis(ax, sizes)
    values = part[["ratio", "low", "high"]].to_numpy(dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    low, high = float(min(values.min(), 1.0)), float(max(values.max(), 1.0))
    pad = max((high / low) ** 0.08, 1.05)
    ax.set_ylim(low / pad, high * pad)
    charts.ratio_axis(ax, "y")


def _baselines(ax: Axes, run: StoredRun, frame: pd.DataFrame, sizes: list[int]) -> None:
    """sendall's own throughput (and its variants'), the scale the ratios stand on."""
    base = frame[frame["strategy"] == BASELINE]
    if base.empty:  # no sendall in the run: every strategy, absolute
        base = frame
    for (series, nd), rows in base.groupby(["series", "nd"], sort=True):
        rows = rows.sort_values("msg_size")
        with np.errstate(over="ignore", invalid="ignore"):  # rates from elsewhere
            err = [np.std(r, ddof=1) / 1e9 if (r := run.value_rates(row)) is not None
                   and len(r) > 1 else 0.0 for _, row in rows.iterrows()]
        look = charts.series_style(str(series)) | ({"ls": "--"} if nd else {})
        ax.errorbar(rows["msg_size"].astype(int), rows["throughput_bps"].astype(float) / 1e9,
                    yerr=err, ms=4, capsize=2, lw=1.4, **look,
                    label=f"{series}, nodelay {'on' if nd else 'off'}")
    sinks = base["peer_sink"] if "peer_sink" in base.columns else pd.Series(dtype=object)
    if {"copy", "discard"} <= set(sinks.dropna()):  # a discarding run's mixed cells
        copied = base[sinks == "copy"]
        ax.scatter(copied["msg_size"].astype(int), copied["throughput_bps"].astype(float) / 1e9,
                   s=90, facecolors="none", edgecolors="0.35", lw=1.0, zorder=3,
                   label="the peer copied (a cell with a TLS or unix case)")
    charts.size_axis(ax, sizes)
    charts.log_axis(ax, "y")
    ax.set_ylabel("Gbit/s (log)")


def _bars(frame: pd.DataFrame, workload: str) -> Figure:
    """One size: a bar per strategy and TCP_NODELAY, its throughput and ratio to sendall."""
    size = int(frame["msg_size"].iloc[0])
    names = sorted(frame["series"].unique(), key=charts.strategy_key)
    facets = sorted(frame["nd"].unique())
    groups, texts = [], []
    for nd in facets:
        sub = frame[frame["nd"] == nd].drop_duplicates("series").set_index("series")
        vals = [float(sub["throughput_bps"].get(n, np.nan)) / 1e9 for n in names]
        ratios = [float(sub["ratio"].get(n, np.nan)) for n in names]
        groups.append((charts.nd_label(nd), charts.ND_COLORS[nd], vals, None))
        texts.append([fmt_bps(v * 1e9) + (f"  {fmt_factor(r)}" if finite(r) else "")
                      for v, r in zip(vals, ratios, strict=True)])
    fig, axes = charts.panel(height=1.4 + 0.42 * len(names) * len(facets))
    charts.hbars(axes[0][0], names, groups, lambda v: fmt_bps(v * 1e9), log=True, texts=texts)
    paired = frame["ratio"].notna().any()
    axes[0][0].set_xlabel("throughput (log)" + (f"; ×: ratio to {BASELINE}" if paired else ""))
    if len(facets) > 1:
        charts.legend_below(fig, [axes[0][0]])
    fig.suptitle(f"{workload} {size_label(size)}: throughput by send path")
    return fig


def throughput(run: StoredRun, workload: str = "stream") -> list[Figure] | None:
    """Throughput against sendall's by size: per TCP_NODELAY setting, each strategy's ratio
    to sendall (above sendall's own throughput); a single size as bars."""
    frame = charts.run_frame(run, workload)
    frame = frame[pd.to_numeric(frame["throughput_bps"], errors="coerce") > 0]
    if frame.empty:
        return None
    frame = with_ratios(run, frame)
    sizes = sorted(frame["msg_size"].astype(int).unique())
    if len(sizes) == 1:
        return [_bars(frame, workload)]
    figs: list[Figure] = []
    for nd in sorted(frame["nd"].unique()):
        part = frame[(frame["nd"] == nd) & np.isfinite(frame["ratio"])]
        first = not figs
        if part.empty and not first:
            continue
        rows = (1 if part.empty else 2) if first else 1
        fig, axes = charts.panel(rows, 1, height=3.6 * rows + 1.0, sharex=True)
        if not part.empty:
            ax = axes[0][0]
            _ratio_lines(ax, part, sizes)
            ax.set_ylabel(f"throughput / {BASELINE}'s (log; 1 = {BASELINE})")
            ax.set_title(f"{charts.nd_label(nd)}: each send path against {BASELINE}")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 if rows == 1 else -0.08),
                      ncols=3)
        if first:
            ax = axes[-1][0]
            _baselines(ax, run, frame, sizes)
            ax.set_title(f"{BASELINE} itself: the scale the ratios stand on")
            ax.legend(loc="lower right")
        axes[-1][0].set_xlabel("file size" if workload == "file" else "message size")
        fig.suptitle(f"{workload}: throughput against {BASELINE}"
                     + (" (paired by round, 95 % intervals)" if part["low"].notna().any()
                        else ""))
        figs.append(fig)
    return figs


def nagle(run: StoredRun) -> list[Figure] | None:
    """The Nagle × delayed-ACK trap: wwr p50 (bar) to p99 (whisker) by strategy × nodelay,
    a panel per size."""
    frame = charts.run_frame(run, "wwr")
    frame = frame[pd.to_numeric(frame["lat_p50_us"], errors="coerce") > 0]
    if frame.empty:
        return None
    figs = []
    for size in sorted(frame["msg_size"].astype(int).unique())[:4]:
        part = frame[frame["msg_size"] == size]
        names = sorted(part["series"].unique(), key=charts.strategy_key)
        groups = []
        for nd in (False, True):
            sub = part[part["nd"] == nd].drop_duplicates("series").set_index("series")
            groups.append((charts.nd_label(nd), charts.ND_COLORS[nd],
                           [float(sub["lat_p50_us"].get(n, np.nan)) for n in names],
                           [float(sub["lat_p99_us"].get(n, np.nan)) for n in names]))
        fig, axes = charts.panel(height=1.6 + 0.6 * len(names))
        charts.hbars(axes[0][0], names, groups, fmt_us, log=True)
        axes[0][0].set_xlabel("latency per request (log): p50 bar, p99 whisker")
        charts.legend_below(fig, [axes[0][0]])
        fig.suptitle(f"The Nagle trap: write-write-read, {size_label(size)}")
        figs.append(fig)
    return figs


def _per_message(ax: Axes, part: pd.DataFrame, column: str, names: Sequence[str]) -> None:
    groups = []
    for nd in sorted(part["nd"].unique()):
        sub = part[part["nd"] == nd].drop_duplicates("series").set_index("series")
        groups.append((charts.nd_label(nd), charts.ND_COLORS[nd],
                       [float(numeric(sub[column].get(n, np.nan))) for n in names], None))
    charts.hbars(ax, names, groups, lambda v: f"{v:.3g}")


def segments(run: StoredRun) -> list[Figure] | None:
    """TCP segments and send calls per message by strategy, each workload's smallest size."""
    frame = charts.run_frame(run, ("stream", "rr", "wwr", "pipeline", "file"))
    metrics = [(c, t) for c, t in (("segs_per_msg", "TCP segments per message"),
                                   ("send_calls_per_msg", "send calls per message"))
               if pd.to_numeric(frame[c], errors="coerce").notna().any()]
    if frame.empty or not metrics:
        return None
    figs = []
    for workload in ("stream", "rr", "wwr", "pipeline", "file"):
        part = frame[frame["workload"] == workload]
        if part.empty:
            continue
        size = int(part["msg_size"].min())
        part = part[part["msg_size"] == size]
        names = sorted(part["series"].unique(), key=charts.strategy_key)
        fig, axes = charts.panel(1, len(metrics), height=1.6 + 0.5 * len(names), sharey=True)
        for ax, (column, title) in zip(axes[0], metrics, strict=True):
            _per_message(ax, part, column, names)
            ax.set_xlabel(title)
        charts.legend_below(fig, [axes[0][0]])
        fig.suptitle(f"What reaches the wire: {workload} {size_label(size)}")
        figs.append(fig)
    return figs


# name, title, builder: the report's order, right after the verdicts
CHARTS: list[tuple[str, str, Callable[[StoredRun], charts.Chart]]] = [
    ("nagle", "The Nagle trap (write-write-read)", nagle),
    ("throughput-stream", "Throughput vs message size (stream)", throughput),
    ("throughput-file", "Throughput vs file size (file)", lambda r: throughput(r, "file")),
    ("segments", "Segments and send calls per message", segments),
]
