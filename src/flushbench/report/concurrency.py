"""The report's "Many connections: drivers" section: one client process driving N connections.

A driver case (``conns`` connections driven by ``driver``: threads, selectors, asyncio, uvloop
or trio) sits in a cell with the other drivers at the same workload, size and connection count
(``analysis/cells.py``); each driver is judged against ``threads`` there, paired by round (the
axis ``driver`` of verdicts.csv). This section draws the aggregate figures against the number
of connections (stream throughput, rr p99 latency, the stream's fairness and the spread from
the slowest to the fastest connection), tabulates every driver case's own figures and the
driver verdicts, and says how busy the peer was at the largest connection count.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from ..analysis.cells import AA, BASE_DRIVER
from ..analysis.runs import StoredRun
from ..case import DRIVERS, size_label
from . import charts, verdicts
from .format import finite, fmt_bps, fmt_num, fmt_us, numeric
from .markup import Doc

AXIS = "driver"
TITLE = "Many connections: drivers"
SEMANTICS = (
    "One client process drives every connection of a case at once: a thread per connection "
    "(threads), one selectors loop, asyncio, uvloop or trio; each connection sends its "
    "messages' parts as they come (the case's strategy). Aggregate figures are over all "
    "connections: throughput (stream) and requests/s (rr) summed, rr latency percentiles "
    "pooled over every connection's round trips. Jain's fairness index is taken over the "
    "connections' rates in each value (1: all equal; 1/N: one connection got everything), "
    "slowest and fastest are the extreme connections' bits/s; all three are means over "
    "values. CPU is seconds per second of values at each end (1.0 = one CPU busy).")
VERDICT_NOTE = (
    "Each driver against threads in the same cell (same workload, size and connection "
    "count), paired by round: ratio = driver / threads, its 95 % interval, and the verdict "
    "(“better” and “worse” already account for the metric's direction: higher throughput, "
    "lower latency and segments). The last column is the cell's A/A twin, threads against "
    "itself: the noise floor those ratios stand on.")
PEER_BUSY = 0.8  # a peer CPU share from which the peer may have been the limit
TWIN_COLUMN = "threads twin (A/A)"
STYLES = ("-", "--", ":", "-.")


def _driver(value: Any) -> str:
    text = "" if value is None else str(value)
    return "" if text in ("", "nan", "<NA>") else text


def _driver_key(name: str) -> tuple[int, str]:
    return (DRIVERS.index(name) if name in DRIVERS else len(DRIVERS), name)


def _color(name: str) -> tuple[float, float, float, float]:
    return charts.PALETTE[DRIVERS.index(name)] if name in DRIVERS else charts.color(name)


def _config(row: Mapping[Hashable, Any]) -> str:
    """What a driver case shares with the other drivers of its cell: '64 B sendall nodelay'."""
    return f"{size_label(int(numeric(row.get('msg_size'))))} " \
           f"{verdicts.case_label({**row, 'driver': '', 'twin': False})}"


def driver_rows(run: StoredRun, finished: bool = True) -> pd.DataFrame:
    """The run's driver cases (finished ones, twins left out, by default) with ``_driver``,
    ``_conns`` (NaN when unusable), ``_config`` and ``_series`` (the chart's line label)."""
    table = run.driver_ok if finished else run.table
    frame = table.loc[[bool(_driver(d)) for d in table["driver"]]].copy()  # rows, also none
    frame["_driver"] = [_driver(d) for d in frame["driver"]]
    conns = pd.to_numeric(frame["conns"], errors="coerce").astype(float)
    frame["_conns"] = conns.where(conns >= 1)
    frame["_config"] = pd.Series([_config(r) for r in frame.to_dict("records")],
                                 index=frame.index, dtype=object)
    several: list[bool] = (frame.groupby("workload")["_config"].transform("nunique") > 1
                           ).tolist() if not frame.empty else []
    frame["_series"] = pd.Series([f"{d} · {c}" if many else d for d, c, many in zip(
        frame["_driver"], frame["_config"], several, strict=True)], index=frame.index,
        dtype=object)
    frame["_key"] = pd.Series([_driver_key(d) for d in frame["_driver"]], index=frame.index,
                              dtype=object)
    ordered: pd.DataFrame = frame.sort_values(["workload", "_config", "_conns", "_key"],
                                              kind="stable")
    return ordered


def _lines(frame: pd.DataFrame, workload: str, column: str) -> pd.DataFrame:
    """Rows of ``workload`` with a positive ``column`` and a connection count, one per line
    and connection count, with ``_y`` the column's value."""
    part = frame[frame["workload"] == workload].copy()
    part["_y"] = pd.to_numeric(part[column], errors="coerce").astype(float)
    part = part[np.isfinite(part["_y"]) & (part["_y"] > 0) & part["_conns"].notna()]
    kept: pd.DataFrame = part.drop_duplicates(["_series", "_conns"])
    return kept


def _conns_axis(ax: Axes, conns: list[float]) -> None:
    """A log x axis ticked at the measured connection counts (1, 16, 256, 1,000)."""
    ax.set_xscale("log")
    ticks = sorted(set(conns))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] / 2, ticks[0] * 2)
    ax.set_xlabel("connections (one client process)")


def _plot(ax: Axes, part: pd.DataFrame, scale: float = 1.0) -> None:
    configs = list(dict.fromkeys(part["_config"]))
    for series, rows in sorted(part.groupby("_series", sort=False),
                               key=lambda item: _driver_key(str(item[1]["_driver"].iloc[0]))):
        rows = rows.sort_values("_conns")
        first = rows.iloc[0]
        ax.plot(rows["_conns"].to_numpy(dtype=float), rows["_y"].to_numpy(dtype=float) / scale,
                marker="o", ms=4, lw=1.4, color=_color(str(first["_driver"])),
                ls=STYLES[configs.index(first["_config"]) % len(STYLES)], label=str(series))


def _line_chart(frame: pd.DataFrame, workload: str, column: str, scale: float,
                ylabel: str, title: str, fmt: Callable[[float], str] | None = None
                ) -> Figure | None:
    """``column`` of ``workload``'s driver cases against connections, a line per driver,
    log axes."""
    part = _lines(frame, workload, column)
    if part.empty:
        return None
    fig, axes = charts.panel(height=4.2)
    ax = axes[0][0]
    _plot(ax, part, scale)
    _conns_axis(ax, part["_conns"].tolist())
    charts.log_axis(ax, "y", fmt)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best")
    fig.suptitle(title)
    return fig


def throughput_chart(frame: pd.DataFrame) -> Figure | None:
    """Aggregate stream throughput against connections, a line per driver."""
    return _line_chart(frame, "stream", "throughput_bps", 1e9, "aggregate throughput (Gbit/s)",
                       "stream: aggregate throughput vs connections, by driver")


def latency_chart(frame: pd.DataFrame) -> Figure | None:
    """rr p99 latency (pooled over all connections' round trips) against connections."""
    return _line_chart(frame, "rr", "lat_p99_us", 1.0, "p99 latency per request (log)",
                       "rr: p99 latency over all connections vs connections, by driver",
                       fmt_us)


def fairness_chart(frame: pd.DataFrame) -> Figure | None:
    """The stream's Jain index, and fastest / slowest connection, against connections."""
    jain = _lines(frame, "stream", "jain_fairness")
    spread = frame.assign(_spread=pd.to_numeric(frame["conn_max_bps"], errors="coerce")
                          / pd.to_numeric(frame["conn_min_bps"], errors="coerce"))
    spread = _lines(spread, "stream", "_spread")
    if jain.empty and spread.empty:
        return None
    fig, axes = charts.panel(2, 1, height=7.6)  # stacked: one phone-wide image
    left, right = axes[:, 0]
    if not jain.empty:
        _plot(left, jain)
        _conns_axis(left, jain["_conns"].tolist())
        left.set_ylim(0.0, 1.05)
        left.axhline(1.0, color="grey", lw=0.8, ls="--")
    left.set_ylabel("Jain's fairness index (1 = equal shares)")
    left.set_title("fairness")
    if not spread.empty:
        _plot(right, spread)
        _conns_axis(right, spread["_conns"].tolist())
        charts.log_axis(right, "y", lambda v: f"{v:g}×")
        right.axhline(1.0, color="grey", lw=0.8, ls="--")
    right.set_ylabel("fastest / slowest connection")
    right.set_title("spread between connections")
    charts.figure_legend(fig, axes)
    fig.suptitle("stream: how evenly the connections share the throughput")
    return fig


CHARTS = (("drivers-throughput", "Aggregate throughput vs connections, by driver (stream)",
           throughput_chart),
          ("drivers-p99", "p99 latency vs connections, by driver (rr)", latency_chart),
          ("drivers-fairness", "Fairness and spread between connections, by driver (stream)",
           fairness_chart))


def _count(x: Any) -> str:
    return f"{float(x):,.0f}" if finite(x) else "–"


def _share(x: Any) -> str:
    return f"{float(x):.2f}" if finite(x) else "–"


def figures(frame: pd.DataFrame, workload: str) -> pd.DataFrame:
    """Each driver case's own figures, for one workload, as report cells."""
    out = []
    several = frame.loc[frame["workload"] == workload, "_config"].nunique() > 1
    for row in frame[frame["workload"] == workload].to_dict("records"):
        slow, fast = numeric(row.get("conn_min_bps")), numeric(row.get("conn_max_bps"))
        cells: dict[str, str] = {
            "connections": f"{row['_conns']:,.0f}" if finite(row["_conns"]) else "–",
            "driver": f"`{row['_driver']}`" + (f" ({row['_config']})" if several else "")}
        if workload == "rr":
            cells.update({"requests/s": _count(row.get("msgs_per_s")),
                          "p50": fmt_us(row.get("lat_p50_us")),
                          "p99": fmt_us(row.get("lat_p99_us")),
                          "p99.9": fmt_us(row.get("lat_p999_us"))})
        else:
            cells["throughput"] = fmt_bps(row.get("throughput_bps"))
        cells.update({
            "Jain": fmt_num(row.get("jain_fairness")),
            "slowest conn": fmt_bps(row.get("conn_min_bps")),
            "fastest conn": fmt_bps(row.get("conn_max_bps")),
            "fastest / slowest": verdicts.fmt_factor(fast / slow)
            if finite(slow) and finite(fast) and slow > 0 else "–",
            "CPU client": _share(row.get("cpu_share_client")),
            "CPU peer": _share(row.get("cpu_share_peer")),
            "case": f"`{row['case']}`"})
        out.append(cells)
    return pd.DataFrame(out)


def _verdict_cell(r: Mapping[Hashable, Any]) -> str:
    """'4.16× (1.42–12.2) same', the verdict in bold where it is better or worse."""
    word = str(r["verdict"])
    interval = verdicts.fmt_interval(r["ci_low"], r["ci_high"])
    return (f"{verdicts.fmt_factor(r['ratio'])} ({interval}) "
            f"{f'**{word}**' if word in ('better', 'worse') else word}")


def verdict_rows(run: StoredRun) -> pd.DataFrame:
    """Driver verdicts and the A/A twins of driver cells, from :func:`verdicts.view`, with
    the case's ``_conns``, ``_config`` and ``_column`` (its driver; the twin column)."""
    frame = verdicts.view(run)
    if frame.empty:
        return frame
    rows = {str(r["case"]): r for r in run.table.to_dict("records")}
    drivers = {c for c, r in rows.items() if _driver(r.get("driver"))}
    frame = frame[(frame["axis"] == AXIS) | ((frame["axis"] == AA) & frame["case"].isin(drivers))]
    if not (frame["axis"] == AXIS).any():
        return frame.iloc[0:0]
    frame = frame.copy()
    conns = [numeric(rows[c].get("conns")) for c in frame["case"]]
    frame["_conns"] = [c if finite(c) else np.nan for c in conns]
    frame["_config"] = [_config(rows[c]) for c in frame["case"]]
    frame["_column"] = [TWIN_COLUMN if axis == AA else _driver(rows[c].get("driver"))
                        for c, axis in zip(frame["case"], frame["axis"], strict=True)]
    return frame


def verdict_table(part: pd.DataFrame) -> pd.DataFrame:
    """One row per connection count and metric, a column per driver (and the twin)."""
    columns = sorted({c for c in part["_column"] if c != TWIN_COLUMN}, key=_driver_key)
    if (part["_column"] == TWIN_COLUMN).any():
        columns.append(TWIN_COLUMN)
    metrics = list(dict.fromkeys(part["metric_label"]))
    keys = sorted({(c, m) for c, m in zip(part["_conns"].fillna(-1), part["metric_label"],
                                          strict=True)},
                  key=lambda k: (k[0], metrics.index(k[1])))
    cells = {(c, m, col): _verdict_cell(r) for c, m, col, r in zip(
        part["_conns"].fillna(-1), part["metric_label"], part["_column"],
        part.to_dict("records"), strict=True)}
    out = []
    for conns, metric in keys:
        row = {"connections": f"{conns:,.0f}" if conns >= 0 else "–", "metric": metric}
        row.update({col: cells.get((conns, metric, col), "–") for col in columns})
        out.append(row)
    return pd.DataFrame(out)


def peer_sentence(frame: pd.DataFrame, meta: Mapping[str, Any]) -> str:
    """The peer's CPU share at the largest connection count, and what it says."""
    counted = frame[frame["_conns"].notna()]
    if counted.empty:
        return "No driver case has a connection count, so the peer's CPU share is not shown."
    most = float(counted["_conns"].max())
    top = counted[counted["_conns"] == most]
    peer = pd.to_numeric(top["cpu_share_peer"], errors="coerce").astype(float)
    if not np.isfinite(peer).any():
        return (f"The peer's CPU share was not recorded at {most:,.0f} connections, the "
                "largest count measured.")
    busiest = str(top["case"].iloc[int(np.nanargmax(peer.to_numpy(dtype=float)))])
    cpus = numeric((meta.get("peer") or {}).get("cpu_count"))
    has = f"; the peer machine has {cpus:,.0f} CPUs" if finite(cpus) and cpus >= 1 else ""
    share = round(float(peer.max()), 2)  # judged as shown
    said = ("near one CPU, about what one Python process gets (the peer serves a driver "
            "case's connections from one event-loop thread), so **the peer may have been the "
            "limit**"
            if share >= PEER_BUSY else
            "under one CPU, so the peer's CPU was probably not the limit")
    return (f"Peer CPU at the largest connection count ({most:,.0f}): at most {share:.2f} CPU "
            f"(`{busiest}`; 1.0 = one CPU busy{has}): {said}.")


def add_section(doc: Doc, run: StoredRun, charts_dir: Path, prefix: str) -> None:
    """The section, when the run has driver cases (nothing otherwise)."""
    every = driver_rows(run, finished=False)
    if every.empty:
        return
    frame = driver_rows(run)
    failed = int((every["error"] != "").sum())
    doc.heading(3, TITLE)
    doc.note(SEMANTICS)
    slug = charts.slug(run.label)
    for name, title, builder in CHARTS:
        charts.show(doc, builder, frame, out_dir=charts_dir, prefix=prefix, name=f"{slug}-{name}",
                    alt=title, caption=title, skipped=f"{title}: skipped, no data in this run.")
    for workload in ("stream", "rr"):
        table = figures(frame, workload) if not frame.empty else pd.DataFrame()
        if not table.empty:
            doc.heading(4, f"{workload}: each driver case's figures")
            doc.table(table, collapse_after=20, summary=f"{len(table)} {workload} driver cases",
                      wide=True)
    if failed:
        doc.note(f"{failed} driver case(s) failed and are left out (see Quality notes).")
    judged = verdict_rows(run)
    if not judged.empty:
        doc.note(VERDICT_NOTE)
        for (judged_workload, config), part in judged.groupby(["workload", "_config"],
                                                              sort=False):
            doc.heading(4, f"{judged_workload} · {config} · drivers against {BASE_DRIVER}")
            doc.table(verdict_table(part), collapse_after=40,
                      summary=f"{len(part)} driver verdicts", wide=True)
    if not frame.empty:
        doc.para(peer_sentence(frame, run.meta))
    left_out = [(str(p[0]), str(p[1])) for p in run.meta.get("skipped") or []
                if isinstance(p, list) and len(p) == 2 and str(p[1]).startswith("driver ")]
    if left_out:
        doc.para(f"{len(left_out)} case(s) left out as their driver is unavailable here:")
        doc.bullets(f"`{case}`: {why}" for case, why in left_out)
