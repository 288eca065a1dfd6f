"""bench_verdicts.py's figures as pure functions of tables: which comparisons are A/A and how
many were called different, the power table, the repeatability of ratios, and the generated
suite. Not a benchmark itself."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flushbench.analysis.ratios import TIMER_RATIO
from flushbench.analysis.stats import compare_rates
from flushbench.case import THROUGHPUT_WORKLOADS
from flushbench.suites import Suite

CALLED = ("better", "worse")
AA_AXIS = "A/A"
BASELINE = "sendall"
AA_TARGET = 0.05  # at most this share of A/A comparisons called better or worse
POWER_TARGETS = {0.05: 0.80, 0.10: 0.95}  # slowdown -> share of tries called "worse"
POWER_LEVEL = 0.80  # "the smallest effect detected 80 % of the time"
REPEAT_METRICS = ("throughput_bps", "lat_p50_us")
REPEAT_TOLERANCE = 0.05
REPEAT_TARGET = 0.90
FAR_RATIO = TIMER_RATIO  # ratios beyond 10x either way: one side is a timer (repeatability)


def workload_of(case_id: str) -> str:
    return case_id.split("-", 1)[0]


def strategy_of(case_id: str) -> str:
    """The strategy in a case id (the names used here have no '-')."""
    parts = case_id.split("-")
    return parts[1] if len(parts) > 1 else ""


def headline_metric(case_id: str) -> str:
    """The figure a case is judged on first: throughput, or p50 latency."""
    return "throughput_bps" if workload_of(case_id) in THROUGHPUT_WORKLOADS else "lat_p50_us"


def share(k: int, n: int) -> float:
    return k / n if n else math.nan


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x * 100:.{digits}f} %"


# -- the generated suite -----------------------------------------------------------------------

@dataclass(frozen=True)
class Group:
    """One cell of the generated suite: a workload and size, the strategies measured in it."""

    workload: str
    size: int
    strategies: tuple[str, ...]
    ops: int


def ops_of(budget: Suite, workload: str, size: int) -> int:
    """The op cap the budget suite gives sendall at this workload and size (else its most)."""
    same = [c.ops for c in budget.cases if c.workload == workload and c.ops]
    exact = [c.ops for c in budget.cases if c.workload == workload and c.msg_size == size
             and c.strategy == BASELINE and c.ops]
    return (exact or [max(same, default=10_000)])[0]


def suite_toml(name: str, description: str, settings: Mapping[str, int | float | str],
               groups: Iterable[Group]) -> str:
    """A suite file: ``[suite]`` from ``settings``, a ``[[matrix]]`` per group (rr with
    TCP_NODELAY on, as the quick suite measures it; its congestion control too)."""
    lines = ["[suite]", f"name = {json.dumps(name)}", f"description = {json.dumps(description)}"]
    lines += [f"{key} = {json.dumps(value) if isinstance(value, str) else repr(value)}"
              for key, value in settings.items()]
    for g in groups:
        lines += ["", "[[matrix]]", f"workload = {json.dumps(g.workload)}",
                  f"strategy = {json.dumps(list(g.strategies))}", f"msg_size = {g.size}",
                  f"ops = {g.ops}"]
        if g.workload == "rr":
            lines.append("nodelay = true")
    return "\n".join(lines) + "\n"


# -- A/A false positives ----------------------------------------------------------------------

def aa_rows(verdicts: pd.DataFrame, aliases: Collection[str],
            headline_only: bool = False) -> pd.DataFrame:
    """The A/A rows of a verdicts table: twins, and aliases against sendall (with data)."""
    if verdicts.empty:
        return verdicts
    strategy = verdicts["case"].map(strategy_of)
    alias = ((verdicts["axis"] == "strategy") & strategy.isin(list(aliases))
             & (verdicts["baseline"].map(strategy_of) == BASELINE))
    keep = (alias | (verdicts["axis"] == AA_AXIS)) & (verdicts["verdict"] != "no data")
    if headline_only:
        keep &= verdicts["metric"] == verdicts["case"].map(headline_metric)
    return verdicts[keep]


def called_without_bh(rows: pd.DataFrame, alpha: float = 0.05, min_effect: float = 0.03
                      ) -> pd.Series:
    """Which verdicts.csv rows the verdict rule (``verdicts.verdict``) calls better or worse
    with each row's own p in place of its Benjamini-Hochberg q."""
    excludes = (rows["ci_low"] > 1.0) | (rows["ci_high"] < 1.0)
    big = np.abs(np.log(rows["ratio"].astype(float))) >= math.log1p(min_effect)
    out: pd.Series = (rows["p_value"] < alpha) & excludes & big
    return out


def aa_counts(rows: pd.DataFrame, alpha: float = 0.05, min_effect: float = 0.03
              ) -> dict[str, Any]:
    """How many A/A rows were called better or worse; and the same without BH, and how
    many 95 % intervals exclude 1 at all (a calibrated interval: about 5 %)."""
    n = len(rows)
    if not n:
        return {"comparisons": 0, "called": 0, "share": math.nan}
    called = rows["verdict"].isin(CALLED)
    excludes = (rows["ci_low"] > 1.0) | (rows["ci_high"] < 1.0)
    raw = called_without_bh(rows, alpha, min_effect)
    by_metric = {str(m): {"comparisons": len(g), "called": int(g["verdict"].isin(CALLED).sum())}
                 for m, g in rows.groupby("metric")}
    worst = rows.loc[called, ["case", "metric", "ratio", "q_value", "verdict"]]
    return {"comparisons": n, "called": int(called.sum()), "share": share(int(called.sum()), n),
            "without_bh": int(raw.sum()), "ci_excludes_1": int(excludes.sum()),
            "median_abs_dev": float(np.median(np.abs(rows["ratio"].astype(float) - 1.0))),
            "by_metric": by_metric, "called_rows": worst.to_dict("records")}


def aa_pairs(comparisons: Iterable[Sequence[str]], aliases: Collection[str]
             ) -> list[tuple[str, str]]:
    """(case, baseline) of a run's A/A comparisons, from meta.json's schedule."""
    return [(str(c), str(b)) for c, b, axis in comparisons
            if axis == AA_AXIS or (axis == "strategy" and strategy_of(c) in aliases
                                   and strategy_of(b) == BASELINE)]


def welch_counts(pairs: Iterable[tuple[str, str]],
                 rates: Callable[[str], np.ndarray | None]) -> dict[str, Any]:
    """The old test: Welch's t on log per-value rates of the two cases, pairing ignored."""
    n = called = 0
    worst: dict[str, Any] = {}
    for case, baseline in pairs:
        comp = compare_rates(rates(baseline), rates(case))
        if comp is None:
            continue
        n += 1
        called += comp.significant
        if comp.significant and abs(math.log(comp.ratio)) > abs(math.log(
                worst.get("ratio", 1.0))):
            worst = {"case": case, "ratio": comp.ratio, "p_value": comp.p_value}
    return {"comparisons": n, "called": called, "share": share(called, n), "worst": worst}


def add_counts(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """welch_counts of several runs, summed."""
    parts = list(parts)
    n = sum(int(p["comparisons"]) for p in parts)
    called = sum(int(p["called"]) for p in parts)
    return {"comparisons": n, "called": called, "share": share(called, n), "runs": parts}


# -- power -------------------------------------------------------------------------------------

def power_rows(verdicts: pd.DataFrame, factors: Mapping[str, float]) -> pd.DataFrame:
    """The tries: each slowed strategy against sendall on its cell's headline metric, with
    its nominal ``factor`` and the slowdown the run measured (time ratio - 1)."""
    if verdicts.empty:
        return verdicts.assign(factor=[], slowdown=[])
    strategy = verdicts["case"].map(strategy_of)
    keep = (strategy.isin(list(factors)) & (verdicts["axis"] == "strategy")
            & (verdicts["metric"] == verdicts["case"].map(headline_metric))
            & (verdicts["verdict"] != "no data"))
    rows = verdicts[keep].copy()
    ratio = rows["ratio"].astype(float)
    higher = rows["higher_is_better"].astype(bool)
    rows["factor"] = strategy[keep].map(factors).astype(float)
    rows["slowdown"] = np.where(higher, 1.0 / ratio, ratio) - 1.0
    return rows


def cell_of(case_id: str) -> str:
    """The cell a case of the generated suite belongs to: 'stream s16K', 'rr s64'."""
    parts = case_id.split("-")
    return f"{parts[0]} {parts[2]}" if len(parts) > 2 else case_id


def worse_without_bh(rows: pd.DataFrame, alpha: float = 0.05, min_effect: float = 0.03
                     ) -> pd.Series:
    """Which rows the verdict rule calls "worse" with each row's own p in place of its BH q:
    how much of the power the false-discovery correction over the run's comparisons costs."""
    better = (rows["ratio"].astype(float) > 1.0) == rows["higher_is_better"].astype(bool)
    out: pd.Series = called_without_bh(rows, alpha, min_effect) & ~better
    return out


def power_table(rows: pd.DataFrame, by_cell: bool = False) -> list[dict[str, Any]]:
    """Per nominal slowdown (and per cell with ``by_cell``): tries, how many were called
    worse (and better: the wrong way), and how many would be without BH."""
    keys = rows["case"].map(cell_of) if by_cell else pd.Series("", index=rows.index)
    groups = sorted({(float(f), str(k)) for f, k in zip(rows["factor"], keys)})
    table = []
    for factor, cell in groups:
        g = rows[(rows["factor"] == factor) & (keys == cell)]
        worse = int((g["verdict"] == "worse").sum())
        table.append({**({"cell": cell} if by_cell else {}),
                      "factor": factor, "tries": len(g), "worse": worse,
                      "better": int((g["verdict"] == "better").sum()),
                      "share": share(worse, len(g)),
                      "worse_without_bh": int(worse_without_bh(g).sum()),
                      "slowdown_median": float(g["slowdown"].median()),
                      "slowdown_min": float(g["slowdown"].min()),
                      "slowdown_max": float(g["slowdown"].max())})
    return table


def cell_noise(aa: pd.DataFrame, effect: float = 0.05, z_power: float = 0.8416
               ) -> list[dict[str, Any]]:
    """Per cell, from its A/A rows on the headline metric: the median 95 % half-width, the
    per-round sd of the log ratio it implies (half-width x sqrt(R) / t), and about how many
    rounds a paired t test would need to find ``effect`` 80 % of the time, before BH:
    ((t + z) x sd / ln(1 + effect))^2."""
    from scipy import stats

    out = []
    for cell, g in aa.groupby(aa["case"].map(cell_of)):
        rounds = g["rounds"].astype(float)
        half = np.log(g["ci_high"].astype(float) / g["ratio"].astype(float))
        t = stats.t.ppf(0.975, np.maximum(rounds - 1, 1))
        sd = float(np.median(half * np.sqrt(rounds) / t))
        need = ((1.96 + z_power) * sd / math.log1p(effect)) ** 2
        out.append({"cell": str(cell), "comparisons": len(g),
                    "half_width": float(np.expm1(np.median(half))), "round_sd": sd,
                    "rounds_for_effect": int(math.ceil(need)), "effect": effect})
    return out


def smallest_detected(table: Sequence[Mapping[str, Any]], level: float = POWER_LEVEL
                      ) -> float | None:
    """The smallest nominal slowdown called worse in at least ``level`` of its tries."""
    return min((float(r["factor"]) for r in table if r["share"] >= level), default=None)


def power_targets(table: Sequence[Mapping[str, Any]]) -> dict[str, bool | None]:
    """Per target slowdown ('5 %'): met, not met, or None when it was not measured."""
    out: dict[str, bool | None] = {}
    for factor, level in POWER_TARGETS.items():
        row = next((r for r in table if math.isclose(r["factor"], factor)), None)
        out[f"{factor * 100:g} %"] = None if row is None else bool(row["share"] >= level)
    return out


# -- ratio repeatability ---------------------------------------------------------------------

def level(trials: pd.DataFrame, case: str, metric: str) -> float:
    """A case's absolute figure in a run: the median over its trials (NaN if none)."""
    got = pd.to_numeric(trials.loc[trials["case"] == case, metric], errors="coerce")
    got = got[np.isfinite(got) & (got > 0)]
    return float(got.median()) if len(got) else math.nan


def far_levels(far: pd.DataFrame, trials_a: pd.DataFrame, trials_b: pd.DataFrame
               ) -> dict[str, Any]:
    """For ratios far from 1: how far each side's absolute figure moved from run A to run B
    (B/A), the slower side (the timer's, in the delayed-ACK trap) and the faster apart. A far
    ratio's change is the faster side's move over the slower side's."""
    slow, fast = [], []
    for row in far.itertuples(index=False):
        m = str(row.metric)
        moved = {side: level(trials_b, cid, m) / level(trials_a, cid, m)
                 for side, cid in (("case", str(row.case)), ("baseline", str(row.baseline)))}
        case_slower = (float(row.ratio_a) > 1.0) != bool(row.higher_is_better_a)
        slow.append(moved["case" if case_slower else "baseline"])
        fast.append(moved["baseline" if case_slower else "case"])

    def dev(xs: list[float]) -> float:
        d = np.abs(np.asarray(xs, dtype=float) - 1.0)
        d = d[np.isfinite(d)]
        return float(np.median(d)) if d.size else math.nan
    return {"slow_side_moved": dev(slow), "fast_side_moved": dev(fast)}


def repeatability(a: pd.DataFrame, b: pd.DataFrame, tolerance: float = REPEAT_TOLERANCE,
                  metrics: Sequence[str] = REPEAT_METRICS,
                  trials: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> dict[str, Any]:
    """Two runs' verdicts tables: how many case-to-baseline ratios agree within the tolerance
    (B's ratio over A's); rows in one run only, or without a ratio, are counted apart. With
    the two runs' trials tables, the far ratios' sides' absolute moves too (``far_levels``)."""
    key = ["case", "baseline", "metric"]

    def usable(v: pd.DataFrame) -> pd.DataFrame:
        ratio = pd.to_numeric(v["ratio"], errors="coerce")
        ok = v["metric"].isin(list(metrics)) & np.isfinite(ratio) & (ratio > 0)
        out: pd.DataFrame = v.loc[ok, [*key, "higher_is_better"]].assign(ratio=ratio[ok])
        return out

    ua, ub = usable(a), usable(b)
    both = ua.merge(ub, on=key, suffixes=("_a", "_b"))
    both["dev"] = np.abs(both["ratio_b"] / both["ratio_a"] - 1.0)
    both["within"] = both["dev"] <= tolerance + 1e-12
    n, k = len(both), int(both["within"].sum())
    by_metric = {str(m): {"pairs": len(g), "within": int(g["within"].sum())}
                 for m, g in both.groupby("metric")}
    by_cell = {str(c): {"pairs": len(g), "within": int(g["within"].sum())}
               for c, g in both.groupby(both["case"].map(cell_of))}
    # A ratio over 10x from 1 has one side in a timer (the 40 ms delayed-ACK trap), which
    # does not drift with the host: the ratio then carries the other side's absolute drift.
    far = (both["ratio_a"] < FAR_RATIO ** -1) | (both["ratio_a"] > FAR_RATIO)
    worst = both.sort_values("dev", ascending=False).head(5)
    return {"pairs": n, "within": k, "share": share(k, n), "tolerance": tolerance,
            "unmatched": len(ua) + len(ub) - 2 * n, "by_metric": by_metric,
            "by_cell": by_cell, "far": {"pairs": int(far.sum()),
                                        "within": int((far & both["within"]).sum()),
                                        **(far_levels(both[far], *trials) if trials else {})},
            "near": {"pairs": int((~far).sum()), "within": int((~far & both["within"]).sum())},
            "median_dev": float(both["dev"].median()) if n else math.nan,
            "worst": worst[[*key, "ratio_a", "ratio_b", "dev"]].to_dict("records")}
