"""A run's paired verdicts as people read them: labels, the noise-floor sentence, the tables.

The numbers come from ``verdicts.csv`` (:attr:`~flushbench.analysis.runs.StoredRun.verdicts`)
and the A/A twins' noise floor (:mod:`flushbench.analysis.noise`). One view of them,
:func:`view`, feeds the report's verdict tables, the forest plot (``forest.py``) and the
terminal's verdict table (``terminal.py``); the noise floor is worded once, in
:func:`noise_sentence`. ``document.py`` puts them at the head of a run's section.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import pandas as pd

from ..analysis.cells import AA
from ..analysis.hoststate import HostState, host_state
from ..analysis.noise import NoiseFloor
from ..analysis.runs import StoredRun
from ..case import WORKLOADS, size_label
from .format import SIZE_BANDS, finite, fmt_pct, is_true, numeric, size_band

METRIC_LABELS = {"throughput_bps": "throughput", "lat_p50_us": "p50", "lat_p99_us": "p99",
                 "segs_per_msg": "segs/msg"}
VIEW_COLUMNS = ["workload", "band", "msg_size", "setting", "cell", "case", "baseline", "axis",
                "twin", "label", "vs", "vs_short", "metric", "metric_label", "ratio", "ci_low",
                "ci_high", "q_value", "rounds", "verdict", "higher_is_better"]
_BANDS = [name for _, _, name in SIZE_BANDS]


def has_verdicts(run: StoredRun) -> bool:
    """Whether the run was measured in interleaved rounds and judged (schema 2)."""
    return not run.verdicts.empty


def _whole(row: Mapping[Hashable, Any], column: str) -> int:
    """A whole-number cell (0 when missing)."""
    value = numeric(row.get(column))
    return int(value) if math.isfinite(value) else 0


def case_label(row: Mapping[Hashable, Any]) -> str:
    """A case as its strategy and the options not at their default: 'makefile nodelay'."""
    bits = [str(row.get("strategy") or "?")]
    if _whole(row, "buffer") > 0:
        bits.append(f"buf {size_label(_whole(row, 'buffer'))}")
    if is_true(row.get("nodelay")):
        bits.append("nodelay")
    for column, name in (("sndbuf", "sndbuf"), ("notsent_lowat", "lowat")):
        if _whole(row, column) > 0:
            bits.append(f"{name} {size_label(_whole(row, column))}")
    if str(row.get("transport")) == "unix":
        bits.append("unix")
    if is_true(row.get("tls")):  # the version only as the two a case may hold
        version = str(row.get("tls_version"))
        bits.append(f"TLS {version if version in ('1.2', '1.3') else '?'}")
    driver = str(row.get("driver") or "")
    if driver and driver != "nan":
        bits.append(driver)
    if is_true(row.get("twin")):
        bits.append("twin")
    return " ".join(bits)


def short_vs(axis: str, baseline: Mapping[Hashable, Any]) -> str:
    """The baseline as what it changes along ``axis``: 'sendall', 'nodelay off', 'same code'.

    The rest of the baseline is the case's own options (that is what a comparison along one
    axis means), so a narrow table need not repeat them.
    """
    if axis == "strategy":
        return str(baseline.get("strategy") or "?")
    if axis == "nodelay":
        return "nodelay off"
    if axis == "sndbuf":
        return "sndbuf auto"
    if axis == "notsent_lowat":
        return "lowat off"
    if axis == AA:
        return "same code"
    if axis == "transport":
        return f"{baseline.get('transport') or '?'} TCP"
    if axis == "tls":
        return "TLS off"
    if axis == "driver":
        return str(baseline.get("driver") or "?")
    return case_label(baseline)


def setting(row: Mapping[Hashable, Any]) -> str:
    """What a cell's cases share besides the workload: '64 B', '64 B k16', '16 KiB 1 part'."""
    workload, size = row.get("workload"), _whole(row, "msg_size")
    bits = [size_label(size)]
    parts = _whole(row, "parts")
    if workload != "file" and parts and parts != 2:
        bits.append(f"{parts} part{'s' if parts != 1 else ''}")
    if _whole(row, "rcvbuf") > 0:
        bits.append(f"rcvbuf {size_label(_whole(row, 'rcvbuf'))}")
    reply = _whole(row, "reply")  # the table holds the reply size: named where not the default
    if workload in ("rr", "pipeline") and reply and reply != (size if workload == "rr" else 1):
        bits.append(f"reply {size_label(reply)}")
    if workload == "pipeline" and _whole(row, "batch"):
        bits.append(f"k{_whole(row, 'batch')}")
    driver = str(row.get("driver") or "")
    if driver and driver != "nan":
        conns = _whole(row, "conns")
        bits.append(f"{conns:,} connection{'s' if conns != 1 else ''}")
    return " ".join(bits)


def _fmt3(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def fmt_factor(x: Any) -> str:
    """A ratio to the baseline: '0.979×', '2,378×' ('–' when unknown)."""
    return f"{_fmt3(float(x))}×" if finite(x) else "–"


def fmt_interval(low: Any, high: Any) -> str:
    """A 95 % interval of a ratio: '0.958–1.02' ('–' when unknown)."""
    if not (finite(low) and finite(high)):
        return "–"
    return f"{_fmt3(float(low))}–{_fmt3(float(high))}"


def view(run: StoredRun) -> pd.DataFrame:
    """One row per comparison and metric with the labels every rendering uses.

    Rows come in a fixed order: workload, size band, size, the run's cell order, twins last
    in their cell, then verdicts.csv's order. Comparisons whose case is not in the table
    (a run edited by hand) are left out.
    """
    verdicts = run.verdicts
    if verdicts.empty:
        return pd.DataFrame(columns=VIEW_COLUMNS)
    rows = {str(r["case"]): r for r in run.table.to_dict("records")}
    cells = dict(zip(run.trials["case"], run.trials["cell"], strict=True))
    out = []
    for pos, v in enumerate(verdicts.to_dict("records")):
        case, base = rows.get(str(v["case"])), rows.get(str(v["baseline"]))
        if case is None or base is None:
            continue
        workload = str(case["workload"])
        twin = str(v["axis"]) == AA
        out.append({
            "workload": workload, "band": size_band(float(case["msg_size"])),
            "msg_size": int(case["msg_size"]), "setting": setting(case),
            "cell": cells.get(str(v["case"])) or f"{workload} {setting(case)}",
            "case": str(v["case"]), "baseline": str(v["baseline"]), "axis": str(v["axis"]),
            "twin": twin, "label": case_label(case), "vs": case_label(base),
            "vs_short": short_vs(str(v["axis"]), base),
            "metric": str(v["metric"]),
            "metric_label": METRIC_LABELS.get(str(v["metric"]), str(v["metric"])),
            "ratio": v["ratio"], "ci_low": v["ci_low"], "ci_high": v["ci_high"],
            "q_value": v["q_value"], "rounds": v["rounds"], "verdict": str(v["verdict"]),
            "higher_is_better": bool(v["higher_is_better"]), "_pos": pos})
    if not out:
        return pd.DataFrame(columns=VIEW_COLUMNS)
    frame = pd.DataFrame(out)
    order = {c: i for i, c in enumerate(dict.fromkeys(frame["cell"]))}
    frame["_w"] = frame["workload"].map(lambda w: WORKLOADS.index(w) if w in WORKLOADS else 99)
    frame["_b"] = frame["band"].map(_BANDS.index)
    frame["_c"] = frame["cell"].map(order)
    frame = frame.sort_values(["_w", "_b", "msg_size", "_c", "twin", "_pos"], kind="stable")
    result: pd.DataFrame = frame[VIEW_COLUMNS].reset_index(drop=True)
    return result


def noise_sentence(floor: NoiseFloor, code: Callable[[str], str] = str) -> tuple[bool, str]:
    """The A/A line: (warn, words). ``warn`` is True when a twin came out better or worse."""
    if not floor.measured:
        return False, ("A/A: no twin comparison with data in this run, so its noise floor is "
                       "unknown; read small differences with care.")
    metric = METRIC_LABELS.get(floor.widest_metric, floor.widest_metric)
    widest = f"±{fmt_pct(floor.widest)} (widest: {metric} of {code(floor.widest_case)})"
    twins = f"{floor.twins} twin{'s' if floor.twins != 1 else ''}"
    if not floor.called_different:
        return False, (f"A/A: {twins} ({floor.comparisons} comparisons), all same within "
                       f"{widest}: no identical pair was called different.")
    shown = ", ".join(f"{code(c)} {METRIC_LABELS.get(m, m)} {v}" for c, m, v in floor.flagged[:3])
    more = " …" if len(floor.flagged) > 3 else ""
    return True, (f"A/A: {floor.called_different} of {floor.comparisons} twin comparisons came "
                  f"out better or worse ({shown}{more}): identical code was called different, "
                  f"so this run's verdicts are less reliable than their q values say; the twins "
                  f"reach {widest}. Rerun on a quieter machine or with more --rounds.")


def host_state_sentence(state: HostState) -> str:
    """One warning when some rounds caught the host in a slow state ("" when none did)."""
    if not state.slow:
        return ""
    rounds = ", ".join(str(r + 1) for r in state.slow)
    which = f"round {rounds}" if len(state.slow) == 1 else f"rounds {rounds}"
    return (f"{len(state.slow)} of {state.rounds} rounds caught the host in a slow state "
            f"({which}: its wake-ups {state.factor:.3g}× as slow as in the quickest round, "
            f"a round trip to the peer in {state.slow_us:.3g} µs against "
            f"{state.quickest_us:.3g}). Paths that wait "
            "for the peer differently slow down by different factors there, so these "
            "verdicts mix two hosts; rerun when the host is steady (trials.csv, ready_us).")


def slow_rounds_warning(run: StoredRun) -> str:
    """:func:`host_state_sentence` for a stored run ("" when its host held its state)."""
    return host_state_sentence(host_state(run.trials))


def display(part: pd.DataFrame) -> pd.DataFrame:
    """Rows of :func:`view` as a report table (a comparison's case and vs shown once)."""
    rows = []
    last = None
    for r in part.to_dict("records"):
        key = (r["case"], r["baseline"])
        first = key != last
        last = key
        verdict = str(r["verdict"])
        rows.append({"size": r["setting"] if first else "",
                     "case": f"`{r['label']}`" if first else "",
                     "vs": f"`{r['vs']}`" if first else "",
                     "metric": r["metric_label"], "ratio": fmt_factor(r["ratio"]),
                     "95 % interval": fmt_interval(r["ci_low"], r["ci_high"]),
                     "verdict": f"**{verdict}**" if verdict in ("better", "worse") else verdict})
    table: pd.DataFrame = pd.DataFrame(rows)
    return table
