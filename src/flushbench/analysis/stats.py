"""Statistics of stored runs: ratios with intervals and tests (scipy), geometric means.

Nothing here hand-rolls a test or an interval; scipy is imported where a test needs it, so
the manager process (which only needs :func:`geomean`) does not pay for it.
"""

from __future__ import annotations

import inspect
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

ALPHA = 0.05  # significance level: 95 % intervals throughout
BOOT_RESAMPLES = 999
BOOT_MAX_SAMPLES = 2000  # latency samples per side fed to the bootstrap (keeps it < 0.3 s)
SEED = 20240601  # fixed: unchanged data must give unchanged reports


def geomean(values: Iterable[Any]) -> float:
    """Geometric mean of the finite, positive values (NaN when there are none)."""
    vals = []
    for v in values:
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x) and x > 0:
            vals.append(x)
    return statistics.geometric_mean(vals) if vals else math.nan


@dataclass(frozen=True)
class Comparison:
    """``new`` relative to ``ref``: a ratio with a 95 % interval and a test."""

    ratio: float
    low: float = math.nan
    high: float = math.nan
    p_value: float = math.nan
    method: str = ""

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.low) and (self.low > 1.0 or self.high < 1.0))


def _seeded(kwargs: dict[str, Any]) -> dict[str, Any]:
    # scipy >= 1.15 spells the generator ``rng``; older ones ``random_state``.
    from scipy import stats

    params = inspect.signature(stats.bootstrap).parameters
    key = "rng" if "rng" in params else "random_state"
    return {**kwargs, key: np.random.default_rng(SEED)}


def compare_rates(ref: np.ndarray | None, new: np.ndarray | None,
                  method: str = "Welch t on log per-value rates") -> Comparison | None:
    """Ratio of geometric means with Welch's t interval on the logs (scipy).

    Used for per-value rates and for per-value p50 latencies alike: one observation per
    timed value, so the interval carries the noise between values and processes.
    """
    if ref is None or new is None or len(ref) < 2 or len(new) < 2:
        return None
    lref, lnew = np.log(ref), np.log(new)
    ratio = float(np.exp(lnew.mean() - lref.mean()))
    if np.ptp(lref) == 0 and np.ptp(lnew) == 0:  # no spread at all: no test possible
        return Comparison(ratio, method=f"{method} (no spread)")
    from scipy import stats

    res = stats.ttest_ind(lnew, lref, equal_var=False)
    ci = res.confidence_interval(confidence_level=1 - ALPHA)
    return Comparison(ratio, float(np.exp(ci.low)), float(np.exp(ci.high)), float(res.pvalue),
                      method)


def _median_ratio(new: np.ndarray, ref: np.ndarray, axis: int = -1) -> np.ndarray:
    ratio: np.ndarray = np.median(new, axis=axis) / np.median(ref, axis=axis)
    return ratio


def _thin(a: np.ndarray) -> np.ndarray:
    if a.size <= BOOT_MAX_SAMPLES:
        return a
    return np.random.default_rng(SEED).choice(a, BOOT_MAX_SAMPLES, replace=False)


def compare_latency(ref: np.ndarray | None, new: np.ndarray | None) -> Comparison | None:
    """Ratio of pooled p50 latencies; percentile-bootstrap interval, Mann–Whitney U (scipy).

    The fallback when samples do not say which value each operation belongs to: pooled
    operations are not independent, so this interval understates run-to-run noise.
    """
    if ref is None or new is None or len(ref) < 5 or len(new) < 5:
        return None
    ratio = float(np.median(new) / np.median(ref))
    from scipy import stats

    p_value = float(stats.mannwhitneyu(new, ref).pvalue)
    a, b = _thin(np.asarray(ref)), _thin(np.asarray(new))
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return Comparison(ratio, p_value=p_value, method="bootstrap (no spread)")
    res = stats.bootstrap((b, a), _median_ratio, **_seeded(dict(
        n_resamples=BOOT_RESAMPLES, method="percentile", vectorized=True,
        confidence_level=1 - ALPHA)))
    ci = res.confidence_interval
    return Comparison(ratio, float(ci.low), float(ci.high), p_value,
                      "bootstrap of pooled p50 ratio; Mann–Whitney U")
