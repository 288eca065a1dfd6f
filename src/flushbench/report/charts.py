"""What every chart shares: matplotlib's Agg canvas (no pyplot, no display), one fixed style,
the axes flushbench draws on, and how a chart reaches the report.

A builder takes what it charts (a :class:`~flushbench.analysis.runs.StoredRun`, a frame) and
returns a ``Figure``, a list of figures (panels, each its own image: side by side on a wide
screen, stacked on a phone), or ``None`` when there is no data for it. :func:`save` writes
PNG and SVG with fixed sizes, fonts, hash salt and no dates, so unchanged data gives
byte-identical files. The run's charts are in :mod:`.sendpath` (the Nagle trap, throughput
against sendall, what reaches the wire) and :mod:`.morecharts` (latency CCDFs, CPU, SO_SNDBUF).
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from ..analysis.runs import StoredRun
from ..case import size_label
from ..files import hand_over, make_dirs
from .format import finite, with_keys
from .markup import Doc

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

STYLE: dict[RcKeyType, Any] = {
    "svg.hashsalt": "flushbench", "svg.fonttype": "path", "font.family": "DejaVu Sans",
    "font.size": 10, "axes.titlesize": 11, "figure.titlesize": 12, "legend.fontsize": 9,
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
PANEL_WIDTH = 6.4  # inches (640 px): a panel fills a phone's width, two sit side by side
LABEL_SIZE = 9  # points: figures printed on bars
# plain ratios to tick a log ratio axis at: wide, and narrow (< 2.5x from end to end)
COARSE = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.33, 0.5, 0.67, 1.0, 1.5, 2.0,
          3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
FINE = (0.5, 0.6, 0.67, 0.75, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.3, 1.4, 1.5, 1.75, 2.0)
VARIANTS = {"TLS": (":", "s"), "unix": ("-.", "^")}  # line style, marker of a series' variant

Chart: TypeAlias = Figure | Sequence[Figure] | None


@contextmanager
def style() -> Iterator[None]:
    with matplotlib.rc_context(STYLE), warnings.catch_warnings():  # run text: any character
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        yield


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``name.png`` and ``name.svg`` (the umask's mode; under sudo, the sudo user's);
    returns both paths."""
    make_dirs(out_dir)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    with style():
        FigureCanvasAgg(fig)
        fig.savefig(png, format="png", metadata={"Software": None})  # lays it out (Agg)
        fig.set_layout_engine("none")  # then the SVG keeps that layout
        fig.savefig(svg, format="svg", metadata={"Date": None})
    for path in (png, svg):
        hand_over(path)
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


def series_style(series: str) -> dict[str, Any]:
    """Colour by strategy; a TLS or unix variant of it dotted or dash-dotted, other variants
    ('· 1 parts') with diamonds, so a strategy's lines can be told apart."""
    bits = series.split(" · ")[1:]
    ls, marker = "-", "D" if bits else "o"
    for bit in bits:
        ls, marker = VARIANTS.get(bit, (ls, marker))
    return {"color": color(series), "ls": ls, "marker": marker}


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


def panel(nrows: int = 1, ncols: int = 1, height: float = 3.8, width: float = PANEL_WIDTH,
          **kw: Any) -> tuple[Figure, np.ndarray]:
    """One panel's figure, ``width`` inches wide whatever it holds (axes: nrows × ncols)."""
    with style():
        fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
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
    """A log axis with plain labels ('0.5', '20', '1 ms') instead of powers of ten, ticked
    densely enough to read: 1-2-3…9 within a decade, 1-2-5 up to 4 decades."""
    getattr(ax, f"set_{axis}scale")("log", base=base)
    target = ax.xaxis if axis == "x" else ax.yaxis
    low, high = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    decades = float(np.log10(high / low)) if low > 0 and high > low else 99.0
    subs: tuple[float, ...] = (1.0,)
    if base == 10:
        subs = tuple(float(k) for k in range(1, 10)) if decades < 1 else \
            (1.0, 2.0, 5.0) if decades <= 4 else (1.0,)
    target.set_major_locator(LogLocator(base=base, subs=subs, numticks=12))
    target.set_major_formatter(FuncFormatter(lambda v, _: fmt(v) if fmt else f"{v:g}"))
    target.set_minor_locator(NullLocator())  # minor ticks cost more to draw than they tell


def ratio_axis(ax: Axes, axis: str = "x", most: int = 9) -> None:
    """A log ratio axis ticked at plain ratios (0.8, 0.9, 1, 1.25; or 0.5, 1, 2, 5), at
    most ``most`` of them."""
    log_axis(ax, axis, lambda v: f"{v:g}×")
    low, high = ax.get_xlim() if axis == "x" else ax.get_ylim()
    if high / low <= 5000:
        ticks = [t for t in (FINE if high / low <= 2.5 else COARSE) if low <= t <= high]
        while len(ticks) > most:
            keep = ticks.index(1.0) % 2 if 1.0 in ticks else 0  # keep 1 among the ticks
            ticks = ticks[keep::2]
        (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(FixedLocator(ticks))


def legend_below(fig: Figure, axes: Sequence[Axes], ncols: int = 3) -> None:
    """One legend below the panels, each label once, in first-seen order."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=min(ncols, len(handles)))


def figure_legend(fig: Figure, axes: np.ndarray, ncols: int = 5) -> None:
    """One legend below the panels of a grid of axes (:func:`legend_below`)."""
    legend_below(fig, list(axes.flat), ncols)


def hbars(ax: Axes, labels: Sequence[str],
          groups: Sequence[tuple[str, Any, Sequence[float], Sequence[float] | None]],
          fmt: Callable[[float], str], log: bool = False,
          texts: Sequence[Sequence[str]] | None = None) -> None:
    """Horizontal bars, a row per label (the first on top) and a bar per group in it:
    (name, colour, values, upper whisker or None). The figure is printed beside each bar,
    level and in :data:`LABEL_SIZE` type (``texts`` replaces it)."""
    rows = np.arange(len(labels))[::-1].astype(float)
    height = 0.8 / max(len(groups), 1)
    ends: list[float] = []
    for g, (name, colour, values, upper) in enumerate(groups):
        ys = rows + 0.4 - height * (g + 0.5)
        vals = np.asarray(values, dtype=float)
        tops = vals.copy()
        xerr = None
        if upper is not None:
            hi = np.asarray(upper, dtype=float)
            xerr = [np.zeros(len(vals)), np.clip(np.nan_to_num(hi - vals), 0, None)]
            tops = np.fmax(vals, hi)
        ax.barh(ys, np.nan_to_num(vals), height * 0.92, xerr=xerr, capsize=2,
                color=colour, label=name, error_kw={"lw": 1.0})
        for k, (y, v, top) in enumerate(zip(ys, vals, tops, strict=True)):
            if finite(v):
                text = texts[g][k] if texts is not None else fmt(float(v))
                ax.annotate(text, (float(top), float(y)), textcoords="offset points",
                            xytext=(4, 0), ha="left", va="center", fontsize=LABEL_SIZE)
                ends.append(float(top))
    ax.set_yticks(rows, list(labels))
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.grid(False, axis="y")
    shown = [v for v in ends if v > 0]
    if not shown:
        return
    if log:
        starts = [float(np.nanmin(np.asarray(v, dtype=float))) for _, _, v, _ in groups
                  if np.isfinite(np.asarray(v, dtype=float)).any()]
        ax.set_xlim(max(min(starts) / 2.5, 1e-12), max(shown) * 8)
        log_axis(ax, "x", fmt)
    else:
        ax.set_xlim(0, max(shown) * 1.35)


def nd_label(value: bool) -> str:
    return f"TCP_NODELAY {'on' if value else 'off'}"


def run_frame(run: StoredRun, workload: str | tuple[str, ...], auto_sndbuf: bool = True
              ) -> pd.DataFrame:
    """The finished cases of ``workload`` with :func:`~.format.with_keys`' columns; with
    ``auto_sndbuf`` only SO_SNDBUF auto where the run has it (else sizes apart in series)."""
    workloads = (workload,) if isinstance(workload, str) else workload
    frame: pd.DataFrame = with_keys(run.ok[run.ok["workload"].isin(workloads)])
    if auto_sndbuf and (frame["sb"] == 0).any():
        frame = frame[frame["sb"] == 0]
    elif auto_sndbuf and frame["sb"].nunique() > 1:  # no auto case: keep sizes apart
        frame = frame.assign(series=[f"{s} · sndbuf {size_label(b)}"
                                     for s, b in zip(frame["series"], frame["sb"], strict=True)])
    ordered: pd.DataFrame = frame.sort_values(["series", "nd", "msg_size", "case"], kind="stable")
    return ordered


def figures_of(made: Chart) -> list[Figure]:
    if made is None:
        return []
    return [made] if isinstance(made, Figure) else list(made)


def render(builder: Callable[..., Chart], *args: Any, out_dir: Path, name: str
           ) -> list[Path] | None:
    """Build a chart under the fixed style and save it: ``name.png``/``.svg`` for the first
    panel, ``name-2`` … for more; ``None`` when it has no data."""
    with style():
        made = figures_of(builder(*args))
        if not made:
            return None
        paths: list[Path] = []
        for k, fig in enumerate(made, 1):
            paths += save(fig, out_dir, name if k == 1 else f"{name}-{k}")
        return paths


def show(doc: Doc, builder: Callable[..., Chart], *args: Any, out_dir: Path, prefix: str,
         name: str, alt: str, caption: str = "", skipped: str = "") -> bool:
    """Render a chart and add it to ``doc`` as one figure of its panels; when it has no
    data, add the note ``skipped`` (if any). Returns whether it was drawn."""
    paths = render(builder, *args, out_dir=out_dir, name=name)
    if not paths:
        if skipped:
            doc.note(skipped)
        return False
    doc.figures([(f"{prefix}/{png.name}", f"{prefix}/{svg.name}")
                 for png, svg in zip(paths[::2], paths[1::2], strict=True)], alt, caption)
    return True
