"""Recommendations and myths from the paired verdicts of a run measured in rounds.

Runs of schema 2 hold, for each case and its baseline, the ratio paired by round with a 95 %
interval and a verdict (``verdicts.csv``). Where a run has them, :mod:`.recommend` takes its
significance from here instead of Welch's test on per-value rates (which compares blocks
measured apart, and calls drift a difference); runs without verdicts keep that test.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..analysis.runs import StoredRun
from ..case import headline, size_label
from .format import fmt_headline, fmt_ratio, numeric
from .verdicts import METRIC_LABELS, fmt_factor, fmt_interval

FLIP = {"better": "worse", "worse": "better"}
PERFORMANCE = ("throughput_bps", "lat_p50_us", "lat_p99_us")  # what a user feels


@dataclass(frozen=True)
class Pair:
    """One verdict row, read in the direction asked for (``case`` against ``baseline``)."""

    case: str
    baseline: str
    metric: str
    ratio: float
    low: float
    high: float
    q_value: float
    rounds: int
    verdict: str
    higher_is_better: bool

    @property
    def gain(self) -> float:
        """How many times better the case is (> 1 = better), on this metric's direction."""
        if not (math.isfinite(self.ratio) and self.ratio > 0):
            return math.nan
        return self.ratio if self.higher_is_better else 1.0 / self.ratio

    def words(self) -> str:
        """'paired: better, 0.42× (95 % 0.35–0.50, q = 2e-07, 10 rounds)'."""
        if self.verdict == "no data":
            return "paired: no data (too few rounds where both finished)"
        return (f"paired: {self.verdict}, {METRIC_LABELS.get(self.metric, self.metric)} "
                f"{fmt_factor(self.ratio)} (95 % {fmt_interval(self.low, self.high)}, "
                f"q = {self.q_value:.2g}, {self.rounds} rounds)")


class Verdicts:
    """A run's verdicts, found by case, baseline and metric in either direction."""

    def __init__(self, run: StoredRun) -> None:
        self.rows: dict[tuple[str, str, str], Mapping[Hashable, Any]] = {
            (str(r["case"]), str(r["baseline"]), str(r["metric"])): r
            for r in run.verdicts.to_dict("records")}

    def __bool__(self) -> bool:
        return bool(self.rows)

    def find(self, case: str, baseline: str, metric: str) -> Pair | None:
        row = self.rows.get((case, baseline, metric))
        if row is not None:
            return Pair(case, baseline, metric, float(row["ratio"]), float(row["ci_low"]),
                        float(row["ci_high"]), float(row["q_value"]), int(row["rounds"]),
                        str(row["verdict"]), bool(row["higher_is_better"]))
        row = self.rows.get((baseline, case, metric))
        if row is None:
            return None
        inv = [1.0 / float(row[c]) if numeric(row[c]) > 0 else math.nan
               for c in ("ratio", "ci_high", "ci_low")]
        return Pair(case, baseline, metric, inv[0], inv[1], inv[2], float(row["q_value"]),
                    int(row["rounds"]), FLIP.get(str(row["verdict"]), str(row["verdict"])),
                    bool(row["higher_is_better"]))

    def headline(self, case: pd.Series, baseline: pd.Series) -> Pair | None:
        """``case`` against ``baseline`` on the workload's headline metric."""
        return self.find(str(case["case"]), str(baseline["case"]),
                         headline(str(case["workload"])).column)

    def on_axis(self, axis: str, metrics: tuple[str, ...] | None = None) -> list[Pair]:
        """Every comparison along ``axis`` with data (optionally only some metrics)."""
        out = []
        for (case, base, metric), row in self.rows.items():
            if row["axis"] == axis and row["verdict"] != "no data" and \
                    (metrics is None or metric in metrics):
                found = self.find(case, base, metric)
                if found is not None:
                    out.append(found)
        return out


def significance(pairs: list[Pair | None]) -> str:
    """The recommendations' significance column from the paired verdicts of a band."""
    known = [p for p in pairs if p is not None and p.verdict != "no data"]
    if not known:
        return "no paired verdict"
    if len(known) == 1:
        return known[0].words()
    better = sum(p.verdict == "better" for p in known)
    worse = sum(p.verdict == "worse" for p in known)
    return (f"better at {better} of {len(known)} sizes" + (f", worse at {worse}" if worse else "")
            + " (paired by round)")


def _figure(row: pd.Series, metric: str) -> str:
    value = numeric(row.get(metric))
    if metric == "throughput_bps":
        return fmt_headline("stream", value)
    if metric.startswith("lat_"):
        return fmt_headline("rr", value)
    return f"{value:.3g}"


def _line(table: Mapping[str, pd.Series], pair: Pair, what: str, other: str) -> str:
    """'<workload> <strategy> <size>: <metric> <a> <what> (`case`) vs <b> <other> (`base`)'."""
    row, base = table[pair.case], table[pair.baseline]
    rel = (f"{fmt_ratio(pair.gain)} better" if pair.verdict == "better" else
           f"{fmt_ratio(1 / pair.gain)} worse" if pair.verdict == "worse" else "the same")
    return (f"{row['workload']} {row['strategy']} {size_label(row['msg_size'])}: "
            f"{METRIC_LABELS.get(pair.metric, pair.metric)} {_figure(row, pair.metric)} {what} "
            f"(`{pair.case}`) vs {_figure(base, pair.metric)} {other} (`{pair.baseline}`): "
            f"{rel}; {pair.words()}")


def _by_gain(pair: Pair) -> tuple[float, str, str]:
    return (pair.gain, pair.case, pair.metric)


def _pick(pairs: list[Pair], best: bool) -> Pair:
    return max(pairs, key=_by_gain) if best else min(pairs, key=_by_gain)


def myth_nodelay_paired(found: Verdicts, table: Mapping[str, pd.Series]
                        ) -> tuple[str, list[str], list[str]]:
    """TCP_NODELAY on against off: judged on throughput and latency, segments as evidence.

    Returns the verdict ('' when the run has no nodelay comparison), evidence and case ids.
    """
    every = [p for p in found.on_axis("nodelay") if p.case in table and p.baseline in table]
    pairs = [p for p in every if p.metric in PERFORMANCE]
    if not pairs:
        return "", [], []
    n = len({(p.case, p.baseline) for p in pairs})
    hurt = [p for p in pairs if p.verdict == "worse"]
    helped = [p for p in pairs if p.verdict == "better"]
    n_hurt = len({(p.case, p.baseline) for p in hurt})
    n_helped = len({(p.case, p.baseline) for p in helped})
    segs = {(p.case, p.baseline): p for p in every if p.metric == "segs_per_msg"}
    evidence, cases = [], []
    for group, best in ((hurt, False), (helped, True)):
        if group:
            pick = _pick(group, best)
            line = _line(table, pick, "with TCP_NODELAY", "without")
            seg = segs.get((pick.case, pick.baseline))
            if seg is not None:
                line += (f"; segments/message {_figure(table[pick.baseline], seg.metric)} → "
                         f"{_figure(table[pick.case], seg.metric)} ({seg.verdict})")
            evidence.append(line)
            cases += [pick.case, pick.baseline]
    more = len({k for k, p in segs.items() if p.verdict == "worse"})
    tail = f"; it sent more segments per message in {more}" if more else ""
    if hurt:
        return (f"false: it made throughput or latency worse in {n_hurt} of {n} pairs and "
                f"better in {n_helped} (paired by round){tail}", evidence, cases)
    return (f"holds in this run: it made throughput or latency worse in none of {n} pairs "
            f"(better in {n_helped}, paired by round){tail}", evidence, cases)


def myth_sendall_paired(found: Verdicts, table: Mapping[str, pd.Series]
                 ) -> tuple[str, list[str], list[str]]:
    """Other strategies against sendall on the headline metric: verdict, evidence, cases."""
    pairs = [p for p in found.on_axis("strategy")
             if p.case in table and p.baseline in table
             and p.metric == headline(str(table[p.case]["workload"])).column]
    if not pairs:
        return "", [], []
    better = [p for p in pairs if p.verdict == "better"]
    if not better:
        return (f"holds in this run: no strategy beat sendall in {len(pairs)} paired "
                "comparisons", [], [])
    pick = _pick(better, True)
    return (f"false for speed: another strategy beat sendall in {len(better)} of {len(pairs)} "
            "paired comparisons",
            [_line(table, pick, f"with {table[pick.case]['strategy']}", "with sendall")],
            [pick.case, pick.baseline])
