"""Charts of one stored run, drawn with matplotlib's Agg canvas (no pyplot, no display).

Every builder takes a :class:`~flushbench.analysis.runs.StoredRun` and returns a ``Figure`` or
``None`` when the run has no data for it. :func:`save` writes PNG and SVG with fixed sizes,
fonts, hash salt and no dates, so unchanged data gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from ..analysis.runs import StoredRun
from ..case import size_label
from .format import fmt_us, with_keys

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

STYLE: dict[RcKeyType, Any] = {
    "svg.hashsalt": "flushbench", "svg.fonttype": "path", "font.family": "DejaVu Sans",
    "font.size": 9, "axes.titlesize": 10, "figure.titlesize": 11, "legend.fontsize": 8,
    "axes.grid": True, "grid.alpha": 0.3, "path.simplify": True, "savefig.dpi": 100,
    # labels are run text, maybe from elsewhere: a "$" is a character, never mathtext
    "text.parse_math": False,
}
if "svg.id" in matplotlib.rcParams:  # matplotlib >= 3.8: a fixed id for the root <svg>
    STYLE["svg.id"] = "flushbench"
STRATEGY_ORDER = ("send", "sendall", "makefile", "sendmsg", "coalesce", "cork", "msg_more",
                  "sendfile", "asyncio")
PALETTE = [matplotlib.colormaps["tab10"](i) for i in range(10)]
ND_COLORS = {False: "#4c72b0", True: "#dd8452"}  # nodelay off / on


@contextmanager
def style() -> Iterator[None]:
    with matplotlib.rc_context(STYLE), warnings.catch_warnings():  # run text: any character
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        yield


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``name.png`` and ``name.svg``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    with style():
        canvas: FigureCanvasBase = FigureCanvasAgg(fig)  # FigureCanvasAgg.draw is untyped
        canvas.draw()  # lay out once, then freeze it for both formats
        fig.set_layout_engine("none")
        fig.savefig(png, format="png", metadata={"Software": None})
        fig.savefig(svg, format="svg", metadata={"Date": None})
    return [png, svg]


def slug(text: str) -> str:
    """A run label as a file name: <= 60 [A-Za-z0-9._-], 8 hex of its SHA-256 (m/r-x ≠ m-r/x)."""
    clean = re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-.")[:60].strip("-.") or "run"
    return f"{clean}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def color(strategy: str) -> tuple[float, float, float, float]:
    base = strategy.split(" · ")[0]
    if base in STRATEGY_ORDER:
        return PALETTE[STRATEGY_ORDER.index(base)]
    return PALETTE[(len(STRATEGY_ORDER) + sum(map(ord, base))) % 10]


def strategy_key(name: str) -> tuple[int, str]:
    base = name.split(" · ")[0]
    return (STRATEGY_ORDER.index(base) if base in STRATEGY_ORDER else 99, name)


def new_figure(ncols: int, nrows: int = 1, width: float = 4.6, height: float = 3.4,
               **kw: Any) -> tuple[Figure, np.ndarray]:
    with style():
        fig = Figure(figsize=(min(width * ncols + 1.2, 16), height * nrows + 0.6), dpi=100,
                     layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def size_axis(ax: Axes, sizes: list[int], axis: str = "x") -> None:
    """A log2 axis ticked at the measured sizes (every other one when they crowd)."""
    getattr(ax, f"set_{axis}scale")("log", base=2)
    target = ax.xaxis if axis == "x" else ax.yaxis
    ticks = sorted(set(sizes))
    while len(ticks) > 7:
        ticks = ticks[::2]
    target.set_major_locator(FixedLocator(ticks))
    target.set_minor_locator(NullLocator())
    target.set_major_formatter(FuncFormatter(lambda v, _: size_label(round(v))))


def log_axis(ax: Axes, axis: str = "y", fmt: Callable[[float], str] | None = None,
             base: float = 10) -> None:
    """A log axis with plain labels ('0.5', '20', '1 ms') instead of powers of ten."""
    getattr(ax, f"set_{axis}scale")("log", base=base)
    target = ax.xaxis if axis == "x" else ax.yaxis
    low, high = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    narrow = base == 10 and low > 0 and high / low < 100  # < 2 decades: label 1-2-5
    target.set_major_locator(LogLocator(base=base, subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
    target.set_major_formatter(FuncFormatter(lambda v, _: fmt(v) if fmt else f"{v:g}"))
    target.set_minor_locator(NullLocator())  # minor ticks cost more to draw than they tell


def _ok(run: StoredRun, workload: str | tuple[str, ...], auto_sndbuf: bool = True
        ) -> pd.DataFrame:
    workloads = (workload,) if isinstance(workload, str) else workload
    frame: pd.DataFrame = with_keys(run.ok[run.ok["workload"].isin(workloads)])
    if auto_sndbuf and (frame["sb"] == 0).any():
        frame = frame[frame["sb"] == 0]
    elif auto_sndbuf and frame["sb"].nunique() > 1:  # no auto case: keep sizes apart
        frame = frame.assign(series=[f"{s} · sndbuf {size_label(b)}"
                                     for s, b in zip(frame["series"], frame["sb"], strict=True)])
    ordered: pd.DataFrame = frame.sort_values(["series", "nd", "msg_size", "case"], kind="stable")
    return ordered


def _nd(value: bool) -> str:
    return f"TCP_NODELAY {'on' if value else 'off'}"


def throughput(run: StoredRun, workload: str = "stream") -> Figure | None:
    """Throughput vs message size, a line per strategy, faceted by nodelay; ±1 SD bars."""
    frame = _ok(run, workload)
    frame = frame[pd.to_numeric(frame["throughput_bps"], errors="coerce") > 0]
    if frame.empty:
        return None
    facets = sorted(frame["nd"].unique())
    fig, axes = new_figure(len(facets), sharey=True)
    for ax, nd in zip(axes[0], facets, strict=True):
        part = frame[frame["nd"] == nd]
        for series in sorted(part["series"].unique(), key=strategy_key):
            rows = part[part["series"] == series].sort_values("msg_size")
            y = rows["throughput_bps"].astype(float).to_numpy() / 1e9
            with np.errstate(over="ignore", invalid="ignore"):  # rates from elsewhere
                err = [np.std(r, ddof=1) / 1e9 if (r := run.value_rates(row)) is not None
                       and len(r) > 1 else 0.0 for _, row in rows.iterrows()]
            ax.errorbar(rows["msg_size"].astype(int), y, yerr=err, marker="o", ms=3,
                        capsize=2, lw=1.2, color=color(series), label=series)
        size_axis(ax, frame["msg_size"].astype(int).tolist())
        log_axis(ax)
        ax.set_title(_nd(nd))
        ax.set_xlabel("file size" if workload == "file" else "message size")
    axes[0][0].set_ylabel("throughput (Gbit/s)")
    axes[0][-1].legend(loc="lower right")
    fig.suptitle(f"{workload}: throughput vs size (error bars: ±1 SD of per-value rates)")
    return fig


def ccdf(run: StoredRun, workload: str) -> Figure | None:
    """Latency CCDF per strategy (log-log), p50/p99/p99.9 marked; facets size × nodelay."""
    frame = _ok(run, workload, auto_sndbuf=False)
    lat = {c: a for c in frame["case"] if (a := run.latencies_us(c)) is not None}
    frame = frame[frame["case"].isin(lat)]
    if frame.empty:
        return None
    sizes = sorted(frame["msg_size"].astype(int).unique())[:4]
    facets = sorted(frame["nd"].unique())
    fig, axes = new_figure(len(facets), len(sizes), sharex=True, sharey=True)
    marks = ((0.5, "o", "p50"), (0.01, "s", "p99"), (0.001, "^", "p99.9"))
    for i, size in enumerate(sizes):
        for j, nd in enumerate(facets):
            ax = axes[i][j]
            part = frame[(frame["msg_size"] == size) & (frame["nd"] == nd)]
            for _, row in part.iterrows():
                a = lat[row["case"]]
                label = row["series"] + (
                    "" if row["sb"] == 0 else f" · sndbuf {size_label(row['sb'])}")
                probs = np.geomspace(1.0, 1.0 / len(a), 200)
                ax.plot(np.quantile(a, 1 - probs), probs, lw=1.2, color=color(row["series"]),
                        ls="-" if row["sb"] == 0 else ":", label=label)
                for p, marker, _ in marks:
                    if len(a) * p >= 1:
                        ax.plot([np.quantile(a, 1 - p)], [p], marker, ms=4,
                                color=color(row["series"]))
            for p, _, name in marks:
                ax.axhline(p, color="grey", lw=0.6, ls="--")
                ax.annotate(name, (1.0, p), xycoords=("axes fraction", "data"), fontsize=7,
                            ha="right", va="bottom", color="grey")
            log_axis(ax, "x", fmt_us)
            log_axis(ax, "y", lambda v: f"{v:g}")
            ax.set_title(f"{size_label(size)}, {_nd(nd)}")
            if part.empty:
                ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center",
                        color="grey")
        axes[i][0].set_ylabel("P(latency > x)")
    for ax in axes[-1]:
        ax.set_xlabel("latency per operation")
    figure_legend(fig, axes)
    fig.suptitle(f"{workload}: latency CCDF (markers: p50 ●, p99 ■, p99.9 ▲)")
    return fig


def figure_legend(fig: Figure, axes: np.ndarray, ncols: int = 5) -> None:
    """One legend below the panels, each label once, in first-seen order."""
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=min(ncols, len(handles)))


def _grouped_bars(ax: Axes, part: pd.DataFrame, column: str, log: bool,
                  fmt: Callable[[float], str], upper: str | None = None) -> None:
    names = sorted(part["series"].unique(), key=strategy_key)
    x = np.arange(len(names))
    for k, nd in enumerate((False, True)):
        sub = part[part["nd"] == nd].drop_duplicates("series").set_index("series")
        vals = [float(sub[column].get(n, np.nan)) for n in names]
        tops = np.asarray(vals, dtype=float)
        yerr = None
        if upper is not None:
            hi = [float(sub[upper].get(n, np.nan)) for n in names]
            yerr = [np.zeros(len(names)), np.clip(np.nan_to_num(np.subtract(hi, vals)), 0, None)]
            tops = np.fmax(vals, hi)
        xs = x + (k - 0.5) * 0.4
        ax.bar(xs, vals, 0.4, yerr=yerr, capsize=2, color=ND_COLORS[nd], label=_nd(nd))
        # the figure above the bar and its whisker
        for xi, top, v in zip(xs, tops, vals, strict=True):
            if np.isfinite(v):
                ax.annotate(fmt(v), (xi, top), textcoords="offset points", xytext=(0, 3),
                            ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(x, names, rotation=30, ha="right")
    if log:
        log_axis(ax, "y", fmt)
    ax.margins(y=0.25)


def nagle(run: StoredRun) -> Figure | None:
    """The Nagle × delayed-ACK trap: wwr p50 (bar) to p99 (whisker) by strategy × nodelay."""
    frame = _ok(run, "wwr")
    frame = frame[pd.to_numeric(frame["lat_p50_us"], errors="coerce") > 0]
    if frame.empty:
        return None
    sizes = sorted(frame["msg_size"].astype(int).unique())[:4]
    fig, axes = new_figure(len(sizes), sharey=True, width=5.2)
    for ax, size in zip(axes[0], sizes, strict=True):
        _grouped_bars(ax, frame[frame["msg_size"] == size], "lat_p50_us", True, fmt_us,
                      upper="lat_p99_us")
        ax.set_title(f"write-write-read, {size_label(size)}")
    axes[0][0].set_ylabel("latency per request (log)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    fig.suptitle("The Nagle trap: p50 (bar) and p99 (whisker) by strategy and TCP_NODELAY")
    return fig


def segments(run: StoredRun) -> Figure | None:
    """TCP segments and send calls per message by strategy, each workload's smallest size."""
    frame = _ok(run, ("stream", "rr", "wwr", "pipeline", "file"))
    metrics = [(c, t) for c, t in (("segs_per_msg", "TCP segments per message"),
                                   ("send_calls_per_msg", "send calls per message"))
               if pd.to_numeric(frame[c], errors="coerce").notna().any()]
    if frame.empty or not metrics:
        return None
    workloads = [w for w in ("stream", "rr", "wwr", "pipeline", "file")
                 if w in set(frame["workload"])]
    fig, axes = new_figure(len(workloads), len(metrics), width=3.6, height=3.0)
    for j, workload in enumerate(workloads):
        part = frame[frame["workload"] == workload]
        size = int(part["msg_size"].min())
        part = part[part["msg_size"] == size]
        for i, (column, title) in enumerate(metrics):
            _grouped_bars(axes[i][j], part, column, False, lambda v: f"{v:.3g}")
            axes[i][j].set_title(f"{workload} {size_label(size)}")
            axes[i][0].set_ylabel(title)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    fig.suptitle("What reaches the wire: segments and send calls per message")
    return fig


def cpu(run: StoredRun) -> Figure | None:
    """CPU seconds per GB moved, client and peer, vs message size (stream and file)."""
    frame = _ok(run, ("stream", "file"))
    cols = [("cpu_s_per_gb_client", "client"), ("cpu_s_per_gb_peer", "peer")]
    frame = frame[frame[[c for c, _ in cols]].apply(pd.to_numeric, errors="coerce")
                  .gt(0).any(axis=1)]
    if frame.empty:
        return None
    fig, axes = new_figure(2, sharey=True)
    for ax, (column, side) in zip(axes[0], cols, strict=True):
        for (workload, series, nd), rows in frame.groupby(["workload", "series", "nd"],
                                                          sort=True):
            rows = rows.sort_values("msg_size")
            label = f"{series} ({'nd on' if nd else 'nd off'})" + (
                "" if workload == "stream" else f" [{workload}]")
            ax.plot(rows["msg_size"].astype(int), pd.to_numeric(rows[column], errors="coerce"),
                    marker="o" if workload == "stream" else "D", ms=3, lw=1.1,
                    ls="--" if nd else "-", color=color(series), label=label)
        size_axis(ax, frame["msg_size"].astype(int).tolist())
        log_axis(ax)
        ax.set_title(f"{side} CPU")
        ax.set_xlabel("message size")
    axes[0][0].set_ylabel("CPU seconds per GB")
    axes[0][1].legend(loc="upper right", ncols=2)
    fig.suptitle("CPU cost per GB moved (dashed: TCP_NODELAY on)")
    return fig


def sndbuf(run: StoredRun) -> Figure | None:
    """SO_SNDBUF requested vs read back, and throughput by sndbuf × size (heatmap)."""
    frame = with_keys(run.ok)
    set_rows = frame[frame["sb"] > 0]
    eff = pd.to_numeric(set_rows["sndbuf_eff"], errors="coerce")
    if set_rows.empty or not eff.notna().any():
        return None
    stream = frame[(frame["workload"] == "stream")
                   & pd.to_numeric(frame["throughput_bps"], errors="coerce").gt(0)]
    swept = stream[stream["sb"] > 0]
    fig, axes = new_figure(2 if not swept.empty else 1, width=5.4, height=3.8)
    ax = axes[0][0]
    pairs = pd.DataFrame({"req": set_rows["sb"], "eff": eff}).dropna().drop_duplicates()
    pairs = pairs.sort_values(["req", "eff"])
    ax.plot(pairs["req"], pairs["eff"], "o", color="#c44e52", label="read back")
    grid = np.array(sorted(set(pairs["req"])), dtype=float)
    ax.plot(grid, grid, color="grey", lw=0.8, ls="--", label="as requested")
    ax.plot(grid, 2 * grid, color="grey", lw=0.8, ls=":", label="2 × requested")
    log_axis(ax, "x", size_label, base=2)
    log_axis(ax, "y", size_label, base=2)
    floor = int(pairs["eff"].min())
    ax.annotate(f"floor: {floor} B", (grid[0], floor), textcoords="offset points",
                xytext=(6, 8), fontsize=8)
    ax.set_xlabel("SO_SNDBUF requested (bytes)")
    ax.set_ylabel("SO_SNDBUF read back (bytes)")
    ax.set_title("the kernel doubles and clamps")
    ax.legend(loc="upper left")
    if not swept.empty:
        counts = swept["strategy"].value_counts()
        strategy = max(sorted(counts.index), key=lambda s: (counts[s], s == "sendall"))
        part = stream[stream["strategy"] == strategy]
        nd = part.loc[part["sb"] > 0, "nd"].mode().iloc[0]
        part = part[part["nd"] == nd]
        table = part.pivot_table(index="sb", columns="msg_size", values="throughput_bps",
                                 aggfunc="first").sort_index() / 1e9
        ax = axes[0][1]
        shown = np.log10(table / table.loc[0]) if 0 in table.index else np.log10(table)
        finite = np.abs(shown.to_numpy(dtype=float))
        finite = finite[np.isfinite(finite)]
        span = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        im = ax.imshow(shown.to_numpy(dtype=float), cmap="RdBu", vmin=-span, vmax=span,
                       aspect="auto")
        for (i, j), v in np.ndenumerate(table.to_numpy(dtype=float)):
            if not np.isfinite(v):
                ax.text(j, i, "not measured", ha="center", va="center", fontsize=6,
                        color="grey")
            else:
                dark = abs(float(shown.iat[i, j])) > 0.6 * span
                ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
        ax.set_xticks(range(table.shape[1]), [size_label(s) for s in table.columns])
        ax.set_yticks(range(table.shape[0]),
                      ["auto" if s == 0 else size_label(s) for s in table.index])
        ax.grid(False)
        ax.set_xlabel("message size")
        ax.set_ylabel("SO_SNDBUF requested")
        ax.set_title(f"stream/{strategy}, {_nd(nd)}: Gbit/s")
        fig.colorbar(im, ax=ax, label="log10 (throughput / auto)" if 0 in table.index
                     else "log10 Gbit/s")
    fig.suptitle("SO_SNDBUF: requested vs effective, and what it does to throughput")
    return fig


# name, title, builder: the order is the report's order
RUN_CHARTS: list[tuple[str, str, Callable[[StoredRun], Figure | None]]] = [
    ("throughput-stream", "Throughput vs message size (stream)", throughput),
    ("throughput-file", "Throughput vs file size (file)", lambda r: throughput(r, "file")),
    ("ccdf-rr", "Latency CCDF: request/response", lambda r: ccdf(r, "rr")),
    ("ccdf-wwr", "Latency CCDF: write-write-read", lambda r: ccdf(r, "wwr")),
    ("ccdf-pipeline", "Latency CCDF: pipeline", lambda r: ccdf(r, "pipeline")),
    ("nagle", "The Nagle trap (write-write-read)", nagle),
    ("segments", "Segments and send calls per message", segments),
    ("cpu", "CPU seconds per GB", cpu),
    ("sndbuf", "SO_SNDBUF requested vs effective", sndbuf),
]


def render(builder: Callable[..., Figure | None], *args: Any, out_dir: Path, name: str
           ) -> list[Path] | None:
    """Build a chart under the fixed style and save it; ``None`` when it has no data."""
    with style():
        fig = builder(*args)
        if fig is None:
            return None
        return save(fig, out_dir, name)
