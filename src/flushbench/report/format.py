"""Numbers -> words: units, headline figures, option labels and chart series names.

One place for how flushbench writes a figure, shared by the terminal, the report and the
comparison. Sizes use :func:`flushbench.case.size_label`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from ..analysis.quality import Finding
from ..case import THROUGHPUT_WORKLOADS, size_label

# Options that, with the strategy, make a "configuration"; msg_size is the x axis.
OPTION_COLUMNS = ("nodelay", "sndbuf", "rcvbuf", "notsent_lowat", "parts", "reply", "batch",
                  "buffer", "transport")
SIZE_BANDS = ((0, 1024, "small (< 1 KiB)"), (1024, 64 * 1024, "medium (1–64 KiB)"),
              (64 * 1024, math.inf, "large (≥ 64 KiB)"))


def size_band(n: float) -> str:
    for low, high, name in SIZE_BANDS:
        if low <= n < high:
            return name
    return SIZE_BANDS[-1][2]


def fmt_bps(bps: Any) -> str:
    if not finite(bps):
        return "–"
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if abs(bps) >= scale:
            return f"{bps / scale:.3g} {unit}"
    return f"{bps:.3g} bit/s"


def fmt_us(us: Any) -> str:
    if not finite(us):
        return "–"
    if us >= 1e6:
        return f"{us / 1e6:.3g} s"
    if us >= 1e3:
        return f"{us / 1e3:.3g} ms"
    return f"{us:.3g} µs"


def fmt_num(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if finite(x) else "–"


def fmt_ratio(x: Any) -> str:
    if not finite(x):
        return "–"
    return f"{x:,.0f}×" if x >= 100 else f"{x:.3g}×"


def fmt_headline(workload: str, value: Any) -> str:
    return fmt_bps(value) if workload in THROUGHPUT_WORKLOADS else fmt_us(value)


def numeric(x: Any) -> float:
    """``pd.to_numeric(x, errors="coerce")`` for one cell: NaN for None, NA or text."""
    value: float = pd.to_numeric(x, errors="coerce")
    return value


def finite(x: Any) -> bool:
    try:
        return x is not None and x is not pd.NA and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def is_true(x: Any) -> bool:
    """True for True/1, False for False/0/NA/None (a nullable boolean cell)."""
    return x is not None and x is not pd.NA and not (isinstance(x, float) and math.isnan(x)) \
        and bool(x)


def options_label(row: Any, with_size: bool = False) -> str:
    """'nodelay on, sndbuf auto' plus any option that is not at its default."""
    bits = [f"nodelay {'on' if is_true(row.get('nodelay')) else 'off'}",
            "sndbuf " + (size_label(row["sndbuf"]) if finite(row.get("sndbuf"))
                         and row["sndbuf"] > 0 else "auto")]
    for col, name in (("rcvbuf", "rcvbuf"), ("notsent_lowat", "notsent_lowat"),
                      ("buffer", "buffer"), ("reply", "reply")):
        if finite(row.get(col)) and row[col] > 0:
            bits.append(f"{name} {size_label(row[col])}")
    if finite(row.get("batch")) and row["batch"] > 1:
        bits.append(f"batch {int(row['batch'])}")
    if with_size:
        bits.insert(0, size_label(row["msg_size"]))
    return ", ".join(bits)


VARIANT_COLUMNS = (("rcvbuf", "rcvbuf"), ("notsent_lowat", "lowat"), ("buffer", "buf"),
                   ("reply", "reply"), ("batch", "k"), ("parts", "parts"))


def variant_label(row: Any, columns: Iterable[str] | None = None) -> str:
    """Options other than nodelay and sndbuf, as 'buf 64 KiB k16' ('' if none).

    ``columns`` limits the label to options that vary (a legend need not repeat what every
    line shares); by default every option not at its default is named.
    """
    bits = []
    for col, name in VARIANT_COLUMNS:
        if (columns is not None and col not in columns) or not finite(row.get(col)):
            continue
        value = int(row[col])
        default = {"batch": 1, "parts": 2}.get(col, 0)
        if columns is None and value == default:
            continue
        if col == "batch":
            bits.append(f"k{value}")
        elif col == "parts":
            bits.append(f"{value} parts")
        else:
            bits.append(f"{name} {size_label(value) if value else 'default'}")
    return " ".join(bits)


def with_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Add plain ``nd`` (bool), ``sb`` (int, 0 = auto) and ``series`` (strategy + the options
    that vary between cases of the same workload and size)."""
    frame = frame.copy()
    frame["nd"] = [is_true(v) for v in frame["nodelay"]]
    frame["sb"] = pd.to_numeric(frame["sndbuf"], errors="coerce").fillna(0).astype(int)
    # An option "varies" when cases of one workload and size differ in it (so an rr reply
    # that simply follows the size is not repeated in every legend entry).
    varying = {wl: {c for c, _ in VARIANT_COLUMNS
                    if part.groupby("msg_size")[c].nunique(dropna=True).max() > 1}
               for wl, part in frame.groupby("workload")}
    frame["series"] = [
        (f"{r['strategy']} · {v}" if (v := variant_label(r, varying[r["workload"]]))
         else r["strategy"]) for _, r in frame.iterrows()]
    if "transport" in frame.columns:  # a unix case is its own line beside loopback's
        frame["series"] = [f"{s} · unix" if str(t) == "unix" else s
                           for s, t in zip(frame["series"], frame["transport"], strict=True)]
    if "tls" in frame.columns:  # a TLS case too, beside the same case in the clear
        frame["series"] = [f"{s} · TLS" if is_true(t) else s
                           for s, t in zip(frame["series"], frame["tls"], strict=True)]
    return frame


def without_tls(frame: pd.DataFrame) -> pd.DataFrame:
    """The cases in the clear (TLS cases have their own report sections: tls.py)."""
    if "tls" not in frame.columns:
        return frame
    kept: pd.DataFrame = frame.loc[[not is_true(v) for v in frame["tls"]]]  # rows, also none
    return kept


def fmt_pct(x: float) -> str:
    """A share as a percentage (a reach from 1, an interval's ±): 0.564 -> '56 %', 0.041 ->
    '4.1 %', 0.03 -> '3 %'."""
    pct = 100.0 * x
    return f"{pct:.0f} %" if pct >= 10 else f"{pct:.2g} %"


def finding_sentence(finding: Finding, code: Callable[[str], str] = str) -> str:
    """A quality finding in plain words; ``code`` marks up case ids (Markdown: backticks)."""
    n, f = len(finding.cases), finding.figures
    if finding.kind == "wide":
        return (f"{n} of {f['of']:.0f} comparisons have a 95 % interval reaching more than "
                f"±{fmt_pct(f['threshold'])} around their ratio on their headline figure "
                f"(widest: {code(finding.cases[0])} against {code(finding.against[0])}, "
                f"±{fmt_pct(finding.values[0])}): there the run cannot tell a smaller "
                "difference from noise. More --rounds narrow them; so does a quieter host.")
    if finding.kind == "noisy":
        return (f"{n} case(s) are noisy: their per-value rates spread more than "
                f"{f['threshold']:.0%} (worst {code(finding.cases[0])}, "
                f"±{finding.values[0]:.0%}). Treat their differences with care; close other "
                "programs or rerun with more --rounds/--values.")
    if finding.kind == "few_samples":
        return (f"{n} latency case(s) have under {f['threshold']:,.0f} samples (slow operations "
                "stopped at the value time): their p99.9 and max rest on few requests.")
    if finding.kind == "host_speed":
        return (f"Host CPU speed (a pure-Python probe around every case) ranged "
                f"{f['low']:.2f}–{f['high']:.2f}× its median ({f['median']:.1f} M loops/s) "
                "during this run. Every figure moves with the machine's own speed; compare "
                "runs with that in mind (the comparison shows the probe's ratio).")
    if finding.kind == "option_mismatch":
        shown = ", ".join(code(c) for c in finding.cases[:3]) + (" …" if n > 3 else "")
        return (f"{n} case(s) did not read an option back as requested ({finding.detail}): "
                f"{shown}")
    if finding.kind == "failed":
        return f"{n} case(s) failed; their reasons are in the error column."
    return f"{finding.kind}: {n} case(s)"
