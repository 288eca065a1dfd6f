"""Quality findings: results not to trust as they are (like pyperf's ``format_checks``).

One list, computed here from a run's table (and its verdicts) and shown by both the terminal
and the report (their words are in :func:`flushbench.report.format.finding_sentence`).

How noisy a run was: in an interleaved run (schema 2), the comparisons on a workload's
headline figure whose 95 % interval is wide ("wide"; none while its verdicts are not yet
written); a run of schema 1 (one block per case) is judged by the spread of its per-value
rates ("noisy"). The spread says little in an interleaved run: a quick run's values last
2 ms, their rates spread 15-30 % in nearly every case, and the pairing over rounds is what
the verdicts rest on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..case import headline
from .cells import AA
from .ratios import timer_bound

NOISY_RSD = 0.10  # per-value rates spread more than this: say so (runs without verdicts)
WIDE = 0.10  # a headline comparison whose 95 % interval spans more than ± this: say so
FEW_SAMPLES = 1000  # latency cases with fewer samples: their tail rests on few requests
LATENCY_WORKLOADS = ("rr", "wwr", "pipeline")


@dataclass(frozen=True)
class Finding:
    """One kind of problem, the cases it concerns (worst first) and its figures."""

    kind: str  # wide | noisy | few_samples | host_speed | option_mismatch | failed
    cases: tuple[str, ...] = ()
    values: tuple[float, ...] = ()  # per case where it has one (wide: the interval's ±,
    # noisy: the spread)
    figures: dict[str, float] = field(default_factory=dict)
    detail: str = ""  # option_mismatch: the kernel's words
    against: tuple[str, ...] = ()  # wide: each case's baseline


def _num(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce")


def half_width(low: float, high: float) -> float:
    """An interval's ± on the ratio scale, geometric: 1.1 ≈ [0.909, 1.1]; NaN if unknown."""
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 or high < low:
        return math.nan
    return math.sqrt(high / low) - 1.0


def wide(verdicts: pd.DataFrame, workloads: dict[str, str],
         threshold: float = WIDE) -> Finding | None:
    """The comparisons on their workload's headline figure whose 95 % interval reaches more
    than ``threshold`` either side of the ratio (``half_width``), widest first; None when
    there are none. ``workloads``: case id -> workload, the cases to judge. Left out: twins
    (the noise floor speaks for them) and ratios over 10× from 1 (``timer_bound``: one side
    waits on the delayed-ACK timer, so the verdict is not in doubt, and the width is the
    other side's host)."""
    rows = verdicts[verdicts["case"].isin(list(workloads)) & (verdicts["axis"] != AA)]
    judged = rows.loc[np.array([headline(workloads[str(c)]).column == m
                                and not timer_bound(float(r), metric=str(m)) for c, m, r in
                                zip(rows["case"], rows["metric"], _num(rows, "ratio"),
                                    strict=True)], dtype=bool)]
    spans = np.array([half_width(lo, hi) for lo, hi in
                      zip(_num(judged, "ci_low"), _num(judged, "ci_high"), strict=True)],
                     dtype=float)
    known = judged.assign(_span=spans)[np.isfinite(spans)]
    over = known[known["_span"] > threshold].sort_values(["_span", "case", "baseline"],
                                                         ascending=[False, True, True])
    if over.empty:
        return None
    return Finding("wide", tuple(over["case"].astype(str)), tuple(over["_span"].astype(float)),
                   {"threshold": threshold, "of": float(len(known))},
                   against=tuple(over["baseline"].astype(str)))


def findings(table: pd.DataFrame, verdicts: pd.DataFrame | None = None,
             trials: pd.DataFrame | None = None) -> list[Finding]:
    """Every finding of one run's table, in a fixed order. In an interleaved run (it has
    ``verdicts`` or ``trials``) the verdicts' interval widths say how noisy it was; in a run
    of one block per case, the values' spread."""
    out: list[Finding] = []
    ok = table[table["error"] == ""]
    if any(frame is not None and not frame.empty for frame in (verdicts, trials)):
        if verdicts is not None and not verdicts.empty:
            found = wide(verdicts, dict(zip(ok["case"].astype(str),
                                            ok["workload"].astype(str), strict=True)))
            if found is not None:
                out.append(found)
    else:
        rsd = _num(ok, "rate_rsd").fillna(0)
        noisy = ok.assign(_rsd=rsd)[rsd > NOISY_RSD].sort_values(["_rsd", "case"],
                                                                ascending=[False, True])
        if len(noisy):
            out.append(Finding("noisy", tuple(noisy["case"]),
                               tuple(noisy["_rsd"].astype(float)), {"threshold": NOISY_RSD}))
    lat = ok[ok["workload"].isin(LATENCY_WORKLOADS)]
    few = lat[_num(lat, "lat_samples").fillna(0) < FEW_SAMPLES]
    if len(few):
        out.append(Finding("few_samples", tuple(sorted(few["case"])),
                           figures={"threshold": FEW_SAMPLES}))
    speed = _num(table, "host_speed").dropna()
    if len(speed) > 1:
        med = float(speed.median())
        out.append(Finding("host_speed", figures={"median": med, "low": speed.min() / med,
                                                  "high": speed.max() / med}))
    for text, group in ok[ok["opt_mismatch"] != ""].groupby("opt_mismatch", sort=True):
        out.append(Finding("option_mismatch", tuple(sorted(group["case"])), detail=str(text)))
    failed = table[table["error"] != ""]
    if len(failed):
        out.append(Finding("failed", tuple(failed["case"])))
    return out
