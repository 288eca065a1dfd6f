"""The run's further charts: latency CCDFs, CPU per GB, SO_SNDBUF, and the host round by round.

A CCDF is drawn for each size and TCP_NODELAY setting the run measured (a panel each, on
shared axes), never an empty box for a combination it did not measure.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..analysis.hoststate import MIN_ROUNDS, SLOW_FACTOR, host_state, ready_trials
from ..analysis.runs import StoredRun
from ..case import size_label
from . import charts
from .format import fmt_us, with_keys

MARKS = ((0.5, "o", "p50"), (0.01, "s", "p99"), (0.001, "^", "p99.9"))


def ccdf(run: StoredRun, workload: str) -> list[Figure] | None:
    """Latency CCDF per strategy (log-log), p50/p99/p99.9 marked: a panel per size and
    TCP_NODELAY setting with data (the first four sizes), all on the same axes."""
    frame = charts.run_frame(run, workload, auto_sndbuf=False)
    lat = {c: a for c in frame["case"] if (a := run.latencies_us(c)) is not None}
    frame = frame[frame["case"].isin(lat)]
    if frame.empty:
        return None
    sizes = sorted(frame["msg_size"].astype(int).unique())[:4]
    frame = frame[frame["msg_size"].isin(sizes)]
    lows = [float(lat[c][0]) for c in frame["case"]]
    highs = [float(lat[c][-1]) for c in frame["case"]]
    floor = min(1.0 / len(lat[c]) for c in frame["case"])
    xlim = (min(lows) / 1.5, max(highs) * 1.5)
    figs = []
    for size in sizes:
        for nd in sorted(frame.loc[frame["msg_size"] == size, "nd"].unique()):
            part = frame[(frame["msg_size"] == size) & (frame["nd"] == nd)]
            fig, axes = charts.panel(height=4.6)
            ax = axes[0][0]
            for _, row in part.iterrows():
                a = lat[row["case"]]
                label = row["series"] + (
                    "" if row["sb"] == 0 else f" · sndbuf {size_label(row['sb'])}")
                probs = np.geomspace(1.0, 1.0 / len(a), 200)
                ax.plot(np.quantile(a, 1 - probs), probs, lw=1.4, color=charts.color(row["series"]),
                        ls="-" if row["sb"] == 0 else ":", label=label)
                for p, marker, _ in MARKS:
                    if len(a) * p >= 1:
                        ax.plot([np.quantile(a, 1 - p)], [p], marker, ms=5,
                                color=charts.color(row["series"]))
            for p, _, name in MARKS:
                ax.axhline(p, color="grey", lw=0.6, ls="--")
                ax.annotate(name, (1.0, p), xycoords=("axes fraction", "data"), fontsize=8,
                            ha="right", va="bottom", color="grey")
            ax.set_xlim(*xlim)
            ax.set_ylim(floor / 1.5, 1.5)
            charts.log_axis(ax, "x", fmt_us)
            charts.log_axis(ax, "y", lambda v: f"{v:g}")
            ax.set_ylabel("P(latency > x)")
            ax.set_xlabel("latency per operation (log)")
            charts.legend_below(fig, [ax], ncols=2)
            fig.suptitle(f"{workload} {size_label(size)}, {charts.nd_label(nd)}: latency CCDF "
                         "(● p50, ■ p99, ▲ p99.9)")
            figs.append(fig)
    return figs


def cpu(run: StoredRun) -> Figure | None:
    """CPU seconds per GB moved, client and peer, vs message size (stream and file)."""
    frame = charts.run_frame(run, ("stream", "file"))
    cols = [("cpu_s_per_gb_client", "client"), ("cpu_s_per_gb_peer", "peer")]
    frame = frame[frame[[c for c, _ in cols]].apply(pd.to_numeric, errors="coerce")
                  .gt(0).any(axis=1)]
    if frame.empty:
        return None
    fig, axes = charts.panel(2, 1, height=8.4, sharex=True, sharey=True)
    for ax, (column, side) in zip(axes[:, 0], cols, strict=True):
        for (workload, series, nd), rows in frame.groupby(["workload", "series", "nd"],
                                                          sort=True):
            rows = rows.sort_values("msg_size")
            label = f"{series} ({'nd on' if nd else 'nd off'})" + (
                "" if workload == "stream" else f" [{workload}]")
            ax.plot(rows["msg_size"].astype(int), pd.to_numeric(rows[column], errors="coerce"),
                    marker="o" if workload == "stream" else "D", ms=4, lw=1.3,
                    ls="--" if nd else "-", color=charts.color(series), label=label)
        charts.size_axis(ax, frame["msg_size"].astype(int).tolist())
        charts.log_axis(ax)
        ax.set_title(f"{side} CPU")
        ax.set_ylabel("CPU seconds per GB (log)")
    axes[-1][0].set_xlabel("message size")
    charts.legend_below(fig, list(axes[:, 0]), ncols=3)
    fig.suptitle("CPU cost per GB moved (dashed: TCP_NODELAY on)")
    return fig


def _read_back(set_rows: pd.DataFrame, eff: pd.Series) -> Figure:
    fig, axes = charts.panel(height=4.4)
    ax = axes[0][0]
    pairs = pd.DataFrame({"req": set_rows["sb"], "eff": eff}).dropna().drop_duplicates()
    pairs = pairs.sort_values(["req", "eff"])
    ax.plot(pairs["req"], pairs["eff"], "o", ms=7, color="#c44e52", label="read back")
    grid = np.array(sorted(set(pairs["req"])), dtype=float)
    ax.plot(grid, grid, color="grey", lw=0.8, ls="--", label="as requested")
    ax.plot(grid, 2 * grid, color="grey", lw=0.8, ls=":", label="2 × requested")
    ax.set_xlim(grid[0] / 2, grid[-1] * 2)
    for axis in ("x", "y"):  # whole bytes only: no '0 B' at 0.5
        charts.log_axis(ax, axis, lambda v: size_label(v) if v >= 1 else "", base=2)
    floor = int(pairs["eff"].min())
    ax.annotate(f"floor: {floor} B", (grid[0], floor), textcoords="offset points",
                xytext=(8, 8), fontsize=charts.LABEL_SIZE)
    ax.set_xlabel("SO_SNDBUF requested (bytes)")
    ax.set_ylabel("SO_SNDBUF read back (bytes)")
    ax.legend(loc="upper left")
    fig.suptitle("SO_SNDBUF: the kernel doubles and clamps")
    return fig


def _heatmap(stream: pd.DataFrame, swept: pd.DataFrame) -> Figure:
    counts = swept["strategy"].value_counts()
    strategy = max(sorted(counts.index), key=lambda s: (counts[s], s == "sendall"))
    part = stream[stream["strategy"] == strategy]
    nd = part.loc[part["sb"] > 0, "nd"].mode().iloc[0]
    part = part[part["nd"] == nd]
    table = part.pivot_table(index="sb", columns="msg_size", values="throughput_bps",
                             aggfunc="first").sort_index() / 1e9
    fig, axes = charts.panel(height=1.6 + 0.55 * table.shape[0])
    ax = axes[0][0]
    shown = np.log10(table / table.loc[0]) if 0 in table.index else np.log10(table)
    finite = np.abs(shown.to_numpy(dtype=float))
    finite = finite[np.isfinite(finite)]
    span = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    im = ax.imshow(shown.to_numpy(dtype=float), cmap="RdBu", vmin=-span, vmax=span,
                   aspect="auto")
    for (i, j), v in np.ndenumerate(table.to_numpy(dtype=float)):
        if not np.isfinite(v):
            ax.text(j, i, "–", ha="center", va="center", fontsize=charts.LABEL_SIZE,
                    color="grey")
        else:
            dark = abs(float(shown.iat[i, j])) > 0.6 * span
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=charts.LABEL_SIZE,
                    color="white" if dark else "black")
    ax.set_xticks(range(table.shape[1]), [size_label(s) for s in table.columns])
    ax.set_yticks(range(table.shape[0]),
                  ["auto" if s == 0 else size_label(s) for s in table.index])
    ax.grid(False)
    ax.set_xlabel("message size")
    ax.set_ylabel("SO_SNDBUF requested")
    fig.colorbar(im, ax=ax, label="log10 (throughput / auto)" if 0 in table.index
                 else "log10 Gbit/s")
    fig.suptitle(f"stream/{strategy}, {charts.nd_label(nd)}: Gbit/s by SO_SNDBUF "
                 "(–: not measured)")
    return fig


def sndbuf(run: StoredRun) -> list[Figure] | None:
    """SO_SNDBUF requested vs read back, and throughput by sndbuf × size (heatmap)."""
    frame = with_keys(run.ok)
    set_rows = frame[frame["sb"] > 0]
    eff = pd.to_numeric(set_rows["sndbuf_eff"], errors="coerce")
    if set_rows.empty or not eff.notna().any():
        return None
    stream = frame[(frame["workload"] == "stream")
                   & pd.to_numeric(frame["throughput_bps"], errors="coerce").gt(0)]
    swept = stream[stream["sb"] > 0]
    figs = [_read_back(set_rows, eff)]
    if not swept.empty:
        figs.append(_heatmap(stream, swept))
    return figs


def host_rounds(run: StoredRun) -> Figure | None:
    """Each value's untimed GO/READY round trip through the peer, round by round: every
    trial's median (dots), the round's median (line), and the line above which a round
    counts as slow (analysis/hoststate.py). None for runs without the figure."""
    trials = ready_trials(run.trials)
    trials = trials[trials["ready_us"] < 1e9]  # over 1,000 s: not a round trip (hostile)
    state = host_state(trials)  # the rule on the figures drawn: rings and line match the dots
    if state.rounds < MIN_ROUNDS:
        return None
    by_round = trials.groupby("round")["ready_us"].median()
    fig, axes = charts.panel(1, 1, height=3.4)
    ax = axes[0][0]
    ax.scatter(trials["round"].astype(int) + 1, trials["ready_us"], s=7, alpha=0.3,
               color="0.55", lw=0, label="a trial (median of its values)")
    ax.plot(by_round.index.astype(int) + 1, by_round.to_numpy(), marker="o", ms=5, lw=1.5,
            color=charts.color("sendall"), label="the round (median of its trials)")
    slow = by_round[by_round.index.isin(state.slow)]
    if len(slow):
        ax.plot(slow.index.astype(int) + 1, slow.to_numpy(), ls="none", marker="o", ms=8,
                mfc="none", mec="tab:red", mew=1.6, label="a slow round")
    line = SLOW_FACTOR * state.quickest_us
    ax.axhline(line, ls="--", lw=1, color="tab:red",
               label=f"{SLOW_FACTOR:g}× the quickest round: slow above")
    ax.set_ylim(top=max(line, float(trials["ready_us"].max())) * 1.3)  # room for the legend
    charts.log_axis(ax, fmt=fmt_us)
    ax.set_xticks(range(1, int(by_round.index.max()) + 2))
    ax.set_xlabel("round")
    ax.set_ylabel("GO/READY round trip (log)")
    charts.legend_below(fig, [ax], ncols=2)
    fig.suptitle("The host's wake-ups, round by round")
    return fig


# name, title, builder: after the sections on transports, TLS and drivers
CHARTS: list[tuple[str, str, Callable[[StoredRun], charts.Chart]]] = [
    ("ccdf-rr", "Latency CCDF: request/response", lambda r: ccdf(r, "rr")),
    ("ccdf-wwr", "Latency CCDF: write-write-read", lambda r: ccdf(r, "wwr")),
    ("ccdf-pipeline", "Latency CCDF: pipeline", lambda r: ccdf(r, "pipeline")),
    ("cpu", "CPU seconds per GB", cpu),
    ("sndbuf", "SO_SNDBUF requested vs effective", sndbuf),
]
