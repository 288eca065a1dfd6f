"""Paired verdicts on synthetic series: known drift, known effects, known thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flushbench.analysis.stats import compare_rates
from flushbench.analysis.verdicts import (
    Paired,
    paired_ratio,
    q_values,
    verdict,
    within,
)

ROUNDS = 10


def drifting_host(rng: np.random.Generator, n: int) -> np.ndarray:
    """The host's speed over n consecutive short slots: a slow wander of about ±15 % plus
    slot-to-slot jitter, as measured on the shared VM (bench/bench_hostdrift.py)."""
    walk = np.cumsum(rng.normal(0.0, 0.03, n))
    return np.exp(walk - walk.mean() + rng.normal(0.0, 0.02, n))


def test_identical_code_is_rarely_called_different_when_paired_by_round() -> None:
    """A/A: interleaved rounds share the drift, so ~5 % of pairs come out 'significant';
    the same data measured in contiguous blocks (the old design) calls far more."""
    rng = np.random.default_rng(7)
    pairs, blocks_hits, paired_hits = 300, 0, 0
    for _ in range(pairs):
        # paired design: round r measures A then B (random order) a moment apart
        host = drifting_host(rng, 2 * ROUNDS)
        a = 100.0 * host[0::2] * rng.normal(1, 0.01, ROUNDS)
        b = 100.0 * host[1::2] * rng.normal(1, 0.01, ROUNDS)
        p = paired_ratio(a, b)
        assert p is not None
        paired_hits += verdict(p, p.p_value, True, min_effect=0.0) != "same"
        # block design: six values of A, then six of B, minutes apart
        host = drifting_host(rng, 12)
        ref = compare_rates(100.0 * host[:6], 100.0 * host[6:])
        assert ref is not None
        blocks_hits += ref.significant
    assert paired_hits / pairs <= 0.10
    assert blocks_hits / pairs >= 0.20


def test_a_real_difference_is_found_under_drift() -> None:
    """A case 10 % slower than its baseline is called worse in nearly every try."""
    rng = np.random.default_rng(11)
    tries, worse = 100, 0
    for _ in range(tries):
        host = drifting_host(rng, 2 * ROUNDS)
        base = 100.0 * host[0::2] * rng.normal(1, 0.01, ROUNDS)
        slow = 90.0 * host[1::2] * rng.normal(1, 0.01, ROUNDS)
        p = paired_ratio(slow, base)
        assert p is not None
        worse += verdict(p, p.p_value, True) == "worse"
    assert worse >= 95


def test_paired_ratio_is_the_geometric_mean_of_the_round_ratios() -> None:
    """exp(mean log ratio), its interval around it, and rounds with holes left out."""
    base = [100.0, 200.0, 50.0, 80.0, float("nan")]
    case = [110.0, 230.0, 52.0, 88.0, 90.0]
    p = paired_ratio(case, base)
    assert p is not None and p.rounds == 4
    expect = math.exp(np.mean(np.log(np.array(case[:4]) / np.array(base[:4]))))
    assert p.ratio == pytest.approx(expect)
    assert p.low < p.ratio < p.high
    assert paired_ratio([1.0], [1.0]) is None
    same = paired_ratio([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert same is not None and same.ratio == pytest.approx(2.0) and same.low == same.high


def test_benjamini_hochberg_matches_the_textbook_example() -> None:
    """q values: the BH step-up, monotone, NaN left alone."""
    q = q_values([0.01, 0.04, 0.03, 0.005, float("nan")])
    assert q[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert math.isnan(q[4])


@pytest.mark.parametrize(("ratio", "low", "high", "q", "hib", "expect"), [
    (1.20, 1.10, 1.30, 0.001, True, "better"),
    (1.20, 1.10, 1.30, 0.001, False, "worse"),
    (0.80, 0.70, 0.90, 0.001, True, "worse"),
    (1.02, 1.01, 1.03, 0.001, True, "same"),  # significant, but under the 3 % threshold
    (1.20, 0.95, 1.50, 0.20, True, "same"),  # big, but the interval holds 1
    (1.20, 1.10, 1.30, 0.08, True, "same"),  # excluded 1 before the FDR correction only
])
def test_verdict_needs_significance_and_a_practical_effect(
        ratio: float, low: float, high: float, q: float, hib: bool, expect: str) -> None:
    """better/worse only when q < 0.05, the interval excludes 1 and |effect| >= 3 %."""
    assert verdict(Paired(ratio, low, high, q, 10), q, hib) == expect


def test_no_data_and_the_reach_of_same() -> None:
    """Without a pair there is no verdict; 'same within' is the interval's reach."""
    assert verdict(None, 0.01, True) == "no data"
    assert within(Paired(1.0, 0.97, 1.05, 0.5, 10)) == pytest.approx(0.05)
    assert math.isnan(within(None))
