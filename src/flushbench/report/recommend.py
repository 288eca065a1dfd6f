"""Recommendations and myths, read from one stored run.

*Recommendations*: per workload and size band, the strategy + options with the best headline
figure (throughput for stream/file, p50 latency for rr/wwr/pipeline), how much better it is
than ``sendall`` with the same workload, size and options, and whether that difference is
significant. Runs measured in interleaved rounds (schema 2) answer that with their paired
verdicts (:mod:`.paired`); older runs with Welch's t-test (scipy) on the log per-value rates
of the two cases — per-value rates carry the run-to-run noise that per-operation samples hide.

*Myths*: popular advice tested against the same data (with the paired verdicts where the run
has them). Every statement names the figure and the case id it comes from, or says "not
measured in this run".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.runs import StoredRun
from ..analysis.stats import ALPHA, Comparison, compare_rates, geomean
from ..case import headline, size_label
from .format import (
    OPTION_COLUMNS,
    fmt_bps,
    fmt_headline,
    fmt_ratio,
    numeric,
    options_label,
    size_band,
    with_keys,
    without_tls,
)
from .paired import Verdicts, myth_nodelay_paired, myth_sendall_paired, significance

NOT_MEASURED = "not measured in this run"
TINY_SNDBUF = 4608  # requests at or below Linux's floor (SOCK_MIN_SNDBUF)


def gain(workload: str, ref: float, new: float) -> float:
    """How many times better ``new`` is than ``ref`` (> 1 = better) on the headline."""
    if not (np.isfinite(ref) and np.isfinite(new)) or ref <= 0 or new <= 0:
        return float("nan")
    return new / ref if headline(workload).higher_is_better else ref / new


def value(row: pd.Series) -> float:
    return float(numeric(row.get(headline(row["workload"]).column)))


def rate_test(run: StoredRun, ref: pd.Series, new: pd.Series) -> Comparison | None:
    return compare_rates(run.value_rates(ref), run.value_rates(new))


def _p(test: Comparison | None) -> str:
    if test is None or not np.isfinite(test.p_value):
        return "no per-value samples"
    return f"p = {test.p_value:.2g}" + (" (significant)" if test.p_value < ALPHA else
                                        " (not significant)")


def _canon(v: Any) -> str:
    """One spelling per value, so 0, 0.0 and '0' (or True and 'True') match."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, float, np.integer, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


KEY_COLUMNS = ("workload", "strategy", "msg_size", *OPTION_COLUMNS)


def case_key(row: pd.Series, **changes: Any) -> tuple[str, ...]:
    """Workload, strategy, size and options of a row (with some changed), canonically."""
    return tuple(_canon(changes[c] if c in changes else row.get(c)) for c in KEY_COLUMNS)


def _config_key(row: pd.Series) -> tuple[str, ...]:
    return tuple(k for c, k in zip(KEY_COLUMNS, case_key(row), strict=True) if c != "msg_size")


class Index:
    """Finds the case that differs from a row only in the named fields."""

    def __init__(self, frame: pd.DataFrame):
        self.rows = {case_key(r): r for _, r in frame.iterrows()}
        self.by_id = {str(r["case"]): r for r in self.rows.values()}

    def partner(self, row: pd.Series, **changes: Any) -> pd.Series | None:
        return self.rows.get(case_key(row, **changes))


def recommendations(run: StoredRun) -> pd.DataFrame:
    """One row per (workload, size band): the best configuration and its gain over sendall
    (over TCP: unix cases have their own section, ``transports.py``)."""
    frame = with_keys(run.ok[run.ok["transport"].astype(str) != "unix"])
    frame = without_tls(frame)  # in the clear: TLS has its own sections (tls.py)
    frame["value"] = [value(r) for _, r in frame.iterrows()]
    frame = frame[np.isfinite(frame["value"]) & (frame["value"] > 0)]
    index = Index(frame)
    found = Verdicts(run)
    rows = []
    for workload in ("stream", "rr", "wwr", "pipeline", "file"):
        part = frame[frame["workload"] == workload].copy()
        if part.empty:
            continue
        part["band"] = part["msg_size"].map(size_band)
        part["key"] = [_config_key(r) for _, r in part.iterrows()]
        for band, sub in part.groupby("band", sort=False):
            best_at = sub.groupby("msg_size")["value"].transform(
                "max" if headline(workload).higher_is_better else "min")
            sub = sub.assign(norm=[gain(workload, b, v)
                                   for b, v in zip(best_at, sub["value"], strict=True)])
            score = sub.groupby("key").agg(n=("norm", "size"), g=("norm", geomean))
            best_key = score.sort_values(["n", "g"], ascending=False, kind="stable").index[0]
            rows.append(_band_row(run, index, sub[sub["key"] == best_key], workload, band,
                                  found))
    table: pd.DataFrame = pd.DataFrame(rows, columns=["workload", "size band", "best", "options",
                                                      "figure", "vs sendall", "significance",
                                                      "cases"])
    return table


def _band_row(run: StoredRun, index: Index, best: pd.DataFrame, workload: str,
              band: str, found: Verdicts) -> dict[str, Any]:
    best = best.sort_values("msg_size")
    first = best.iloc[0]
    figures, gains, tests, cases = [], [], [], []
    pairs = []
    for _, row in best.iterrows():
        figures.append(f"{size_label(row['msg_size'])}: {fmt_headline(workload, row['value'])}")
        cases.append(str(row["case"]))
        ref = index.partner(row, strategy="sendall")
        if row["strategy"] == "sendall" or ref is None:
            continue
        pair = found.headline(row, ref) if found else None
        pairs.append(pair)
        gains.append(pair.gain if pair is not None and np.isfinite(pair.gain)
                     else gain(workload, value(ref), row["value"]))
        tests.append(None if found else rate_test(run, ref, row))
        cases.append(str(ref["case"]))
    if first["strategy"] == "sendall":
        versus, sig = "is sendall", "–"
    elif not gains:
        versus, sig = "no sendall case with the same options", "–"
    else:
        versus = f"{fmt_ratio(geomean(gains))} better" + (
            f" (geometric mean of {len(gains)} sizes)" if len(gains) > 1 else "")
        known = [t for t in tests if t is not None and np.isfinite(t.p_value)]
        if found:
            sig = significance(pairs)
        elif not known:
            sig = "no per-value samples"
        elif len(known) == 1:
            sig = _p(known[0])
        else:
            hits = sum(t.p_value < ALPHA for t in known)
            sig = f"significant at {hits} of {len(known)} sizes (Welch t, α = {ALPHA})"
    return {"workload": workload, "size band": band, "best": first["strategy"],
            "options": options_label(first), "figure": "; ".join(figures),
            "vs sendall": versus, "significance": sig, "cases": cases}


# -- myths --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Myth:
    claim: str
    verdict: str
    evidence: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)


def _cmp_line(run: StoredRun, a: pd.Series, b: pd.Series, what_a: str, what_b: str) -> str:
    """'<a's figure> <what_a> (`case`) vs <b's figure> <what_b> (`case`): N× better; p'.

    With a paired verdict for the two (schema 2) the gain is its paired ratio, "not shown
    different" unless it says better or worse; otherwise the table's figures and Welch's test.
    """
    wl = a["workload"]
    found = Verdicts(run)
    pair = found.headline(a, b) if found else None
    g = pair.gain if pair is not None else gain(wl, value(b), value(a))
    if pair is not None and pair.verdict not in ("better", "worse"):
        rel = "not shown different"
    elif (pair is None and 0.97 <= g <= 1.03) or not np.isfinite(g):
        rel = "about the same"
    else:
        rel = f"{fmt_ratio(g)} better" if g > 1 else f"{fmt_ratio(1 / g)} worse"
    return (f"{wl} {a['strategy']} {size_label(a['msg_size'])}: "
            f"{fmt_headline(wl, value(a))} {what_a} (`{a['case']}`) vs "
            f"{fmt_headline(wl, value(b))} {what_b} (`{b['case']}`): {rel}; "
            + (pair.words() if pair is not None else _p(rate_test(run, b, a))))


def myth_sndbuf_flush(run: StoredRun, frame: pd.DataFrame, index: Index) -> Myth:
    claim = "SO_SNDBUF=1 flushes the socket"
    tiny = frame[(frame["sb"] > 0) & (frame["sb"] <= TINY_SNDBUF)]
    if tiny.empty:
        return Myth(claim, NOT_MEASURED)
    evidence, cases = [], []
    row = tiny.assign(other=tiny["workload"] != "stream").sort_values(
        ["sb", "other", "case"]).iloc[0]
    eff = numeric(row.get("sndbuf_eff"))
    if np.isfinite(eff):
        evidence.append(f"requested {int(row['sb'])} B, the kernel kept {int(eff)} B "
                        f"(`{row['case']}`)")
        cases.append(str(row["case"]))
    hurt = helped = 0
    for workload in ("stream", "wwr", "rr", "pipeline"):
        for _, t in tiny[tiny["workload"] == workload].sort_values("msg_size",
                                                                   ascending=False).iterrows():
            auto = index.partner(t, sndbuf=0)
            if auto is None:
                continue
            evidence.append(_cmp_line(run, t, auto, "with the tiny SO_SNDBUF", "auto"))
            cases += [str(t["case"]), str(auto["case"])]
            g = gain(workload, value(auto), value(t))
            helped += g > 1.5
            hurt += g < 0.9
            break
    if helped and not hurt:
        return Myth(claim, "holds for some cases in this run", evidence, cases)
    return Myth(claim, "false: the kernel clamps it and nothing gets flushed"
                + ("; it throttles throughput" if hurt else ""), evidence, cases)


def myth_must_flush(run: StoredRun, frame: pd.DataFrame, index: Index) -> Myth:
    claim = "You must flush a socket like a file"
    evidence, cases = [], []
    for workload in ("wwr", "rr", "pipeline"):
        plain = frame[(frame["workload"] == workload) & (frame["strategy"] == "sendall")
                      & frame["nd"] & (frame["sb"] == 0)].sort_values("msg_size")
        for _, row in plain.iterrows():
            made = index.partner(row, strategy="makefile")
            if made is not None:
                evidence.append(_cmp_line(run, row, made, "with no flush", "makefile+flush"))
                cases += [str(row["case"]), str(made["case"])]
                break
        if evidence:
            break
    stream = frame[(frame["workload"] == "stream") & (frame["strategy"] == "sendall")]
    if not stream.empty:
        row = stream.sort_values(["msg_size", "case"]).iloc[-1]
        evidence.append(f"stream sendall {size_label(row['msg_size'])}: the peer confirmed "
                        f"{fmt_bps(value(row))} with no flush call (`{row['case']}`)")
        cases.append(str(row["case"]))
    if not evidence:
        return Myth(claim, NOT_MEASURED)
    return Myth(claim, "false: send()/sendall() hand bytes to the kernel at once; only "
                "makefile() adds a user-space buffer that needs flush()", evidence, cases)


def myth_sendall_enough(run: StoredRun, frame: pd.DataFrame, index: Index) -> Myth:
    claim = "sendall is always enough"
    verdict, evidence, cases = myth_sendall_paired(Verdicts(run), index.by_id)
    if verdict:
        return Myth(claim, verdict, evidence, cases)
    found = []
    for _, alt in frame[frame["strategy"] != "sendall"].iterrows():
        ref = index.partner(alt, strategy="sendall")
        if ref is not None:
            found.append((gain(ref["workload"], value(ref), value(alt)),
                          rate_test(run, ref, alt), ref, alt))
    if not found:
        return Myth(claim, NOT_MEASURED)
    better = [f for f in found if f[0] > 1 and f[1] is not None and f[1].p_value < ALPHA]
    if not better:
        return Myth(claim, f"holds in this run: no strategy beat sendall significantly in "
                    f"{len(found)} comparisons")
    g, _, ref, alt = max(better, key=lambda f: (f[0], f[3]["case"]))
    return Myth(claim, f"false for speed: another strategy beat sendall significantly in "
                f"{len(better)} of {len(found)} comparisons",
                [_cmp_line(run, alt, ref, f"with {alt['strategy']}", "with sendall")],
                [str(alt["case"]), str(ref["case"])])


def myth_nodelay(run: StoredRun, frame: pd.DataFrame, index: Index) -> Myth:
    claim = "TCP_NODELAY always helps"
    verdict, evidence, cases = myth_nodelay_paired(Verdicts(run), index.by_id)
    if verdict:
        return Myth(claim, verdict, evidence, cases)
    pairs = []
    for _, on in frame[frame["nd"]].iterrows():
        off = index.partner(on, nodelay=False)
        if off is not None:
            pairs.append((gain(on["workload"], value(off), value(on)), rate_test(run, off, on),
                          on, off))
    if not pairs:
        return Myth(claim, NOT_MEASURED)
    worse = [p for p in pairs if p[0] < 1 and p[1] is not None and p[1].p_value < ALPHA]
    better = [p for p in pairs if p[0] > 1 and p[1] is not None and p[1].p_value < ALPHA]
    evidence, cases = [], []
    for group, pick in ((worse, min), (better, max)):
        if group:
            g, _, on, off = pick(group, key=lambda p: (p[0], p[2]["case"]))
            line = _cmp_line(run, on, off, "with TCP_NODELAY", "without")
            segs = [numeric(r.get("segs_per_msg")) for r in (off, on)]
            if all(np.isfinite(segs)):
                line += f"; segments/message {segs[0]:.3g} → {segs[1]:.3g}"
            evidence.append(line)
            cases += [str(on["case"]), str(off["case"])]
    if worse:
        verdict = (f"false: it hurt significantly in {len(worse)} of {len(pairs)} pairs and "
                   f"helped in {len(better)}")
    else:
        verdict = f"holds in this run: it never hurt significantly in {len(pairs)} pairs"
    return Myth(claim, verdict, evidence, cases)


MYTHS: list[Callable[[StoredRun, pd.DataFrame, Index], Myth]] = [
    myth_sndbuf_flush, myth_must_flush, myth_sendall_enough, myth_nodelay]


def myths(run: StoredRun) -> list[Myth]:
    frame = with_keys(run.ok)
    frame = without_tls(frame)  # a TLS case would key like its plain twin (Index)
    values = np.array([value(r) for _, r in frame.iterrows()], dtype=float)
    frame = frame[np.isfinite(values) & (values > 0)]
    index = Index(frame)
    return [test(run, frame, index) for test in MYTHS]

