"""Paired verdicts: is a case better or worse than its baseline, measured side by side?

A run measures every case of a cell once per round, in a fresh random order (see
``run/schedule.py``), so a case and its baseline share each round's drift. Per round r:

    d_r = ln(metric of the case in round r / metric of the baseline in round r)

For throughput and p50 latency the round's d_r is the median over its slots of the
slot-by-slot log ratios (``slots.py``), where the values are at hand. The ratio is
exp(mean d) with a 95 % t interval over rounds (df = R - 1); p from the paired t test
(Kalibera & Jones, "Rigorous benchmarking in reasonable time", 2013). Over a run's
comparisons the false discovery rate is held with Benjamini-Hochberg (q values). A verdict
says "better" or "worse" only when q < alpha, the interval excludes 1 and the ratio is at
least ``min_effect`` away from 1; otherwise "same" (within the interval's reach).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..case import THROUGHPUT_WORKLOADS
from . import slots as slotting
from .cells import Comparison

ALPHA = 0.05
MIN_EFFECT = 0.03  # ratios within 3 % of 1 are "same" whatever the interval says
VERDICTS = "verdicts.csv"
VERDICT_COLUMNS = ["case", "baseline", "axis", "metric", "ratio", "ci_low", "ci_high",
                   "p_value", "q_value", "verdict", "rounds", "higher_is_better"]


@dataclass(frozen=True, slots=True)
class Metric:
    """A figure a verdict is taken on: a column of the trials and its better direction."""

    column: str
    label: str
    higher_is_better: bool


THROUGHPUT = Metric("throughput_bps", "throughput", True)
P50 = Metric("lat_p50_us", "p50 latency", False)
P99 = Metric("lat_p99_us", "p99 latency", False)
SEGMENTS = Metric("segs_per_msg", "segments per message", False)


@dataclass(frozen=True, slots=True)
class Paired:
    """A case against its baseline over the rounds both finished."""

    ratio: float  # exp(mean of the per-round log ratios)
    low: float
    high: float
    p_value: float
    rounds: int


def paired_ratio(case: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray,
                 alpha: float = ALPHA) -> Paired | None:
    """The paired ratio case/baseline over rounds (element i of each is round i).

    Rounds where either side is missing, zero or not finite are left out; None when fewer
    than two rounds remain.
    """
    a, b = np.asarray(case, dtype=float), np.asarray(baseline, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    return paired_logs(np.log(a[keep]) - np.log(b[keep]), alpha)


def paired_logs(d: np.ndarray, alpha: float = ALPHA) -> Paired | None:
    """The paired ratio from the per-round log ratios d_r (finite); None under two rounds."""
    from scipy import stats

    n = int(d.size)
    if n < 2:
        return None
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd <= 1e-12:  # the same ratio in every round (to rounding): no spread to test against
        ratio = math.exp(mean)
        return Paired(ratio, ratio, ratio, 1.0 if mean == 0 else 0.0, n)
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    p = float(stats.ttest_1samp(d, 0.0).pvalue)
    return Paired(math.exp(mean), math.exp(mean - half), math.exp(mean + half), p, n)


def q_values(p_values: Iterable[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p values (NaN stays NaN and is not counted)."""
    from scipy import stats

    p = np.asarray(list(p_values), dtype=float)
    q = np.full(p.shape, np.nan)
    known = np.isfinite(p)
    if known.any():
        q[known] = stats.false_discovery_control(np.clip(p[known], 0.0, 1.0), method="bh")
    return [float(x) for x in q]


def verdict(paired: Paired | None, q_value: float, higher_is_better: bool,
            min_effect: float = MIN_EFFECT, alpha: float = ALPHA) -> str:
    """better / worse / same (the case against its baseline), or "no data"."""
    if paired is None or not math.isfinite(paired.ratio):
        return "no data"
    excludes_one = paired.low > 1.0 or paired.high < 1.0
    big_enough = abs(math.log(paired.ratio)) >= math.log1p(min_effect)
    if not (math.isfinite(q_value) and q_value < alpha and excludes_one and big_enough):
        return "same"
    return "better" if (paired.ratio > 1.0) == higher_is_better else "worse"


def within(paired: Paired | None) -> float:
    """How far from 1 the interval reaches (0.04 = "same within ±4 %"); NaN without data."""
    if paired is None:
        return math.nan
    return max(abs(paired.high - 1.0), abs(1.0 - paired.low))


def metrics_for(workload: str) -> tuple[Metric, ...]:
    """The figures a case of ``workload`` is judged on (segments show what buffering does)."""
    if workload in THROUGHPUT_WORKLOADS:
        return (THROUGHPUT, SEGMENTS)
    return (P50, P99, SEGMENTS)


SlotSource = Callable[[str, str], slotting.SlotFigures | None]
"""(case id, metric column) -> its values' figures by round (``slots.py``), or None where
they are not known"""


def remembered(slots: SlotSource) -> SlotSource:
    """``slots`` asked once per case and column: a baseline stands in every comparison of
    its cell, and each would otherwise split its samples again."""
    seen: dict[tuple[str, str], slotting.SlotFigures | None] = {}

    def get(case: str, column: str) -> slotting.SlotFigures | None:
        if (case, column) not in seen:
            seen[(case, column)] = slots(case, column)
        return seen[(case, column)]
    return get


def slotted(slots: SlotSource, case: str, baseline: str, column: str, rounds: Iterable[int]
            ) -> np.ndarray | None:
    """d_r of ``column`` paired slot by slot over ``rounds``; None where the column is not
    paired so or either side's values are not known for each of them."""
    if column not in slotting.SLOTTED:
        return None
    a, b = slots(case, column), slots(baseline, column)
    if a is None or b is None:
        return None
    return slotting.log_ratios(a, b, rounds)


def build(trials: pd.DataFrame, comparisons: Iterable[Comparison],
          workloads: Mapping[str, str], min_effect: float = MIN_EFFECT,
          alpha: float = ALPHA, slots: SlotSource | None = None) -> pd.DataFrame:
    """verdicts.csv: one row per comparison and metric, paired by round over ``trials``.

    ``trials`` has a row per case and round (trials.csv); failed trials are left out, and a
    round counts for a comparison only where both sides finished it. With ``slots``,
    throughput and p50 pair each round slot by slot (``slots.py``) where both sides' values
    are known for every such round, and the trials' figures otherwise.
    """
    ok = trials[trials["error"].fillna("").astype(str) == ""] if len(trials) else trials
    slots = remembered(slots) if slots is not None else None
    tables: dict[str, pd.DataFrame] = {}  # metric column -> rounds x cases
    for metric in (THROUGHPUT, P50, P99, SEGMENTS):
        if len(ok) and metric.column in ok.columns:
            values = ok.assign(**{metric.column: pd.to_numeric(ok[metric.column],
                                                               errors="coerce")})
            tables[metric.column] = values.pivot_table(index="round", columns="case",
                                                       values=metric.column, aggfunc="mean")
    rows: list[dict[str, Any]] = []
    pairs: list[Paired | None] = []
    for comp in comparisons:
        workload = workloads.get(comp.case, "")
        for metric in metrics_for(workload):
            if metric is SEGMENTS and comp.axis == "transport":
                continue  # TCP segments: an AF_UNIX case has none to compare
            table = tables.get(metric.column, pd.DataFrame())
            paired = None
            if comp.case in table.columns and comp.baseline in table.columns:
                both = table[[comp.case, comp.baseline]].astype(float)
                a, b = both[comp.case].to_numpy(), both[comp.baseline].to_numpy()
                d = None
                if slots is not None:
                    d = slotted(slots, comp.case, comp.baseline, metric.column, both.index[
                        np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)])
                paired = paired_ratio(a, b, alpha) if d is None else paired_logs(d, alpha)
            pairs.append(paired)
            rows.append({"case": comp.case, "baseline": comp.baseline, "axis": comp.axis,
                         "metric": metric.column, "higher_is_better": metric.higher_is_better,
                         "ratio": paired.ratio if paired else math.nan,
                         "ci_low": paired.low if paired else math.nan,
                         "ci_high": paired.high if paired else math.nan,
                         "p_value": paired.p_value if paired else math.nan,
                         "rounds": paired.rounds if paired else 0})
    qs = q_values(r["p_value"] for r in rows)
    for row, paired, q in zip(rows, pairs, qs):
        row["q_value"] = q
        row["verdict"] = verdict(paired, q, bool(row["higher_is_better"]), min_effect, alpha)
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)
