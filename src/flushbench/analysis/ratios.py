"""Across runs and machines: the ratio of ratios, the figure that travels.

Within one run each case is measured beside its baseline round after round, so the ratio
case/baseline of a round carries almost none of the host's drift (``verdicts.py``). Between
two runs, A (the reference) and B, the comparable figure is therefore

    (case/baseline in B) / (case/baseline in A) = exp(mean d_B - mean d_A)

where d_A and d_B are the per-round log ratios ln(case/baseline) of each run (trials.csv).
The two sets of rounds are independent samples, so the 95 % interval and p come from Welch's
t test on them (scipy); Benjamini-Hochberg holds the false discovery rate over the tests of
one run against the reference, and the verdict uses the thresholds of
:func:`.verdicts.verdict` ("better" / "worse": q < 0.05, the interval excludes 1 and the
ratio is at least 3 % away from it). "better" means the case gained on its baseline in B.

Runs without trials.csv (schema 1) have no rounds, hence no ratio of ratios: their
comparison is the absolute one of :mod:`.compare` alone.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .cells import AA, Comparison
from .compare import align
from .runs import StoredRun
from .verdicts import (
    ALPHA,
    MIN_EFFECT,
    P50,
    P99,
    SEGMENTS,
    THROUGHPUT,
    Metric,
    Paired,
    SlotSource,
    metrics_for,
    paired_ratio,
    q_values,
    remembered,
    slotted,
    verdict,
)

RATIOS = "compare-ratios.csv"
COLUMNS = ["key", "baseline", "axis", "workload", "metric", "higher_is_better", "reference",
           "run", "ref_ratio", "ref_ci_low", "ref_ci_high", "ref_rounds", "run_ratio",
           "run_ci_low", "run_ci_high", "run_rounds", "ratio", "ci_low", "ci_high", "p_value",
           "q_value", "verdict", "status"]
METRIC_LABELS = {m.column: m.label for m in (THROUGHPUT, P50, P99, SEGMENTS)}


def read_trials(run: StoredRun) -> pd.DataFrame | None:
    """A run's finished trials (trials.csv, failed ones left out); None without any."""
    trials = run.trials
    if trials.empty:
        return None
    error = trials["error"]
    ok: pd.DataFrame = trials[error.isna() | (error.astype(str).str.strip() == "")]
    return ok


def run_comparisons(run: StoredRun) -> list[Comparison]:
    """What the run compared with what: its schedule in meta.json, else its verdicts.csv."""
    listed = (run.meta.get("schedule") or {}).get("comparisons")
    if isinstance(listed, list) and listed:
        return [Comparison(str(c[0]), str(c[1]), str(c[2])) for c in listed if len(c) == 3]
    triples = dict.fromkeys(run.verdicts[["case", "baseline", "axis"]]
                            .itertuples(index=False, name=None))
    return [Comparison(str(c), str(b), str(a)) for c, b, a in triples]


class RoundTables:
    """A run's trials as one round x case table per metric, made once per metric: a
    comparison is then two column lookups (a pivot per comparison made ``compare`` of two
    quick runs spend a second in pandas)."""

    def __init__(self, trials: pd.DataFrame) -> None:
        self.trials = trials
        self.tables: dict[str, pd.DataFrame] = {}

    def table(self, column: str) -> pd.DataFrame | None:
        if column not in self.trials.columns:
            return None
        if column not in self.tables:
            self.tables[column] = self.trials.pivot_table(index="round", columns="case",
                                                          values=column, aggfunc="mean")
        return self.tables[column]


def round_log_ratios(trials: pd.DataFrame | RoundTables, case: str, baseline: str,
                     column: str, slots: SlotSource | None = None) -> np.ndarray:
    """d_r = ln(case / baseline) for every round where both finished with a positive figure;
    throughput and p50 paired slot by slot where ``slots`` knows both sides' values, as the
    run's own verdicts are (``verdicts.build``)."""
    tables = trials if isinstance(trials, RoundTables) else RoundTables(
        trials[trials["case"].isin([case, baseline])] if "case" in trials.columns else trials)
    table = tables.table(column)
    if table is None or case not in table.columns or baseline not in table.columns:
        return np.zeros(0)
    a = table[case].to_numpy(dtype=float)
    b = table[baseline].to_numpy(dtype=float)
    keep = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if slots is not None:
        by_slot = slotted(slots, case, baseline, column, table.index[keep])
        if by_slot is not None:
            return by_slot
    d: np.ndarray = np.log(a[keep]) - np.log(b[keep])
    return d


def ratio_of_ratios(d_ref: np.ndarray, d_run: np.ndarray, alpha: float = ALPHA) -> Paired | None:
    """exp(mean d_run - mean d_ref) with Welch's t interval and p; None under two rounds.

    ``rounds`` of the result is the smaller of the two runs' round counts.
    """
    d_ref, d_run = np.asarray(d_ref, dtype=float), np.asarray(d_run, dtype=float)
    if d_ref.size < 2 or d_run.size < 2:
        return None
    diff = float(d_run.mean() - d_ref.mean())
    ratio = math.exp(diff)
    rounds = int(min(d_ref.size, d_run.size))
    if float(d_ref.std(ddof=1)) <= 1e-12 and float(d_run.std(ddof=1)) <= 1e-12:
        # the same ratio in every round of both runs (segments per message, say)
        return Paired(ratio, ratio, ratio, 1.0 if abs(diff) <= 1e-12 else 0.0, rounds)
    from scipy import stats

    with warnings.catch_warnings():  # nearly constant ratios (segments): scipy warns, rightly
        warnings.simplefilter("ignore", RuntimeWarning)  # computes, and the interval says so
        res = stats.ttest_ind(d_run, d_ref, equal_var=False)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    return Paired(ratio, math.exp(float(ci.low)), math.exp(float(ci.high)), float(res.pvalue),
                  rounds)


def _side(paired: Paired | None, prefix: str) -> dict[str, Any]:
    return {f"{prefix}_ratio": paired.ratio if paired else math.nan,
            f"{prefix}_ci_low": paired.low if paired else math.nan,
            f"{prefix}_ci_high": paired.high if paired else math.nan,
            f"{prefix}_rounds": paired.rounds if paired else 0}


def _keyed(by_key: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(case id -> alignment key, case id -> workload) of one run."""
    keys = {str(row["case"]): key for key, row in by_key.items()}
    workloads = {str(row["case"]): str(row["workload"]) for row in by_key.values()}
    return keys, workloads


def _pair_rows(ref: StoredRun, run: StoredRun, ref_rows: Mapping[str, Any],
               run_rows: Mapping[str, Any], ref_trials: pd.DataFrame,
               run_trials: pd.DataFrame, alpha: float) -> tuple[list[dict[str, Any]],
                                                                  list[Paired | None]]:
    ref_key, ref_wl = _keyed(ref_rows)
    run_key, run_wl = _keyed(run_rows)
    ref_ids = {v: k for k, v in ref_key.items()}
    run_ids = {v: k for k, v in run_key.items()}
    # comparisons by (case key, baseline key, axis): the reference's first, then the run's
    comps: dict[tuple[str, str, str], None] = {}
    for source, keys in ((run_comparisons(ref), ref_key), (run_comparisons(run), run_key)):
        for c in source:
            comps[(keys.get(c.case, c.case), keys.get(c.baseline, c.baseline), c.axis)] = None
    rows: list[dict[str, Any]] = []
    tests: list[Paired | None] = []
    ref_tables, run_tables = RoundTables(ref_trials), RoundTables(run_trials)
    ref_slots, run_slots = remembered(ref.slot_figures), remembered(run.slot_figures)
    for key, base, axis in comps:
        pair_ref = (ref_ids.get(key), ref_ids.get(base))
        pair_run = (run_ids.get(key), run_ids.get(base))
        workload = ref_wl.get(pair_ref[0] or "") or run_wl.get(pair_run[0] or "", "")
        status = ("missing in the reference" if None in pair_ref else
                  f"missing in {run.label}" if None in pair_run else "ok")
        metrics: tuple[Metric, ...] = metrics_for(workload)
        for metric in metrics:
            row: dict[str, Any] = {"key": key, "baseline": base, "axis": axis,
                                   "workload": workload, "metric": metric.column,
                                   "higher_is_better": metric.higher_is_better,
                                   "reference": ref.label, "run": run.label}
            d_ref = d_run = np.zeros(0)
            if None not in pair_ref:  # each side's own ratio, even where the other lacks it
                d_ref = round_log_ratios(ref_tables, str(pair_ref[0]), str(pair_ref[1]),
                                         metric.column, ref_slots)
            if None not in pair_run:
                d_run = round_log_ratios(run_tables, str(pair_run[0]), str(pair_run[1]),
                                         metric.column, run_slots)
            test = ratio_of_ratios(d_ref, d_run, alpha) if status == "ok" else None
            row.update(_side(_paired(d_ref, alpha), "ref"))
            row.update(_side(_paired(d_run, alpha), "run"))
            row.update(ratio=test.ratio if test else math.nan,
                       ci_low=test.low if test else math.nan,
                       ci_high=test.high if test else math.nan,
                       p_value=test.p_value if test else math.nan,
                       status=status if status != "ok" or test else "no data")
            rows.append(row)
            tests.append(test)
    return rows, tests


def _paired(d: np.ndarray, alpha: float) -> Paired | None:
    """A run's own case/baseline ratio from its per-round log ratios."""
    return paired_ratio(np.exp(d), np.ones_like(d), alpha) if d.size else None


def ratio_frame(runs: Sequence[StoredRun], min_effect: float = MIN_EFFECT,
                alpha: float = ALPHA) -> pd.DataFrame:
    """compare-ratios.csv: per compared run, comparison and metric, the ratio of ratios.

    Each run after the first is compared with the first. A pair where either run has no
    trials.csv gives no rows; ``attrs["without_trials"]`` lists such runs.
    """
    trials = [read_trials(r) for r in runs]
    keyed, how = align(runs)
    rows: list[dict[str, Any]] = []
    for run, run_rows, run_trials in zip(runs[1:], keyed[1:], trials[1:], strict=True):
        if trials[0] is None or run_trials is None:
            continue
        part, tests = _pair_rows(runs[0], run, keyed[0], run_rows, trials[0], run_trials,
                                 alpha)
        qs = q_values(r["p_value"] for r in part)
        for row, test, q in zip(part, tests, qs, strict=True):
            row["q_value"] = q
            row["verdict"] = (verdict(test, q, bool(row["higher_is_better"]), min_effect,
                                      alpha) if row["status"] == "ok" else "no data")
        rows.extend(part)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.attrs["without_trials"] = [r.label for r, t in zip(runs, trials) if t is None]
    frame.attrs["aligned_by"] = how
    return frame


TIMER_RATIO = 10.0
"""A case-to-baseline ratio beyond this either way has one side waiting on a timer (a case
out of the 40 ms delayed-ACK trap against a baseline in it): the timer does not move with
the host, so the ratio carries the other side's absolute speed, and a ratio of two such
ratios moves with the machines as an absolute figure does. In back-to-back quick runs here
the fast side moved 2-22 % while the trap held to 0.5 %
(results/epyc-2core-vm/20261203-repeat-pairs/, …/20261204-coalesce-placement/)."""


TIMED = (THROUGHPUT.column, P50.column, P99.column)
"""the metrics a timer holds still (segments per message count, they do not wait)"""


def timer_bound(*ratios: float, metric: str = THROUGHPUT.column) -> bool:
    """Whether any of the (case / baseline) ratios of a timed metric is over TIMER_RATIO
    from 1."""
    return metric in TIMED and any(math.isfinite(r) and r > 0 and max(r, 1 / r) > TIMER_RATIO
                                   for r in ratios)


def headline_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of each comparison's headline figure (throughput or p50 latency)."""
    if frame.empty:
        return frame
    first = {w: metrics_for(str(w))[0].column for w in frame["workload"].unique()}
    keep = frame["metric"] == frame["workload"].map(first)
    shown: pd.DataFrame = frame[keep]
    return shown


def summary(frame: pd.DataFrame, run: str) -> dict[str, int]:
    """Verdict counts of one compared run's headline rows, A/A twins apart."""
    part = headline_rows(frame)
    part = part[part["run"] == run]
    real, twins = part[part["axis"] != AA], part[part["axis"] == AA]
    return {"better": int((real["verdict"] == "better").sum()),
            "worse": int((real["verdict"] == "worse").sum()),
            "same": int((real["verdict"] == "same").sum()),
            "no data": int((real["verdict"] == "no data").sum()),
            "twins": len(twins),
            "twins different": int(twins["verdict"].isin(["better", "worse"]).sum()),
            "timer": sum(timer_bound(float(a), float(b), metric=str(m))
                         for a, b, m in zip(real["ref_ratio"], real["run_ratio"],
                                            real["metric"]))}
