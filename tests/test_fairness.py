"""Fairness and aggregate figures of many-connection values, on synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flushbench.analysis.fairness import jain, latencies, merged_percentiles, stream_figures


def test_jain_bounds() -> None:
    assert jain([5.0] * 7) == pytest.approx(1.0)
    assert jain([9.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)  # one got everything: 1/n
    assert jain([1.0, 3.0]) == pytest.approx(16 / (2 * 10))
    for bad in ([], [0.0, 0.0], [1.0, -1.0], [1.0, math.nan]):
        assert math.isnan(jain(bad))


@given(st.lists(st.floats(min_value=0.001, max_value=1e12), min_size=1, max_size=300))
def test_jain_is_between_one_over_n_and_one(rates: list[float]) -> None:
    j = jain(rates)
    assert 1 / len(rates) - 1e-9 <= j <= 1 + 1e-9


def test_stream_figures_from_bytes_and_times() -> None:
    # two connections: 1 MB in 1 ms and 1 MB in 2 ms; the value lasted 2 ms
    f = stream_figures([1_000_000, 1_000_000], [1_000_000, 2_000_000])
    assert f.conns == 2
    assert f.throughput_bps == pytest.approx(8 * 2_000_000 / 0.002)
    assert f.conn_max_bps == pytest.approx(8e9) and f.conn_min_bps == pytest.approx(4e9)
    assert f.jain_fairness == pytest.approx((8 + 4) ** 2 / (2 * (64 + 16)))
    with pytest.raises(ValueError, match="one byte count and one time"):
        stream_figures([1], [1, 2])
    with pytest.raises(ValueError, match="> 0"):
        stream_figures([1], [0])


def test_merged_percentiles_pool_every_connection() -> None:
    fast = np.full(990, 10_000)  # 10 µs
    slow = np.full(10, 5_000_000)  # 5 ms: 1 % of all samples, all on one connection
    p = merged_percentiles([fast, slow], (50, 99, 99.9))
    assert p[50] == pytest.approx(10.0)
    assert p[99.9] == pytest.approx(5000.0)
    assert all(math.isnan(v) for v in merged_percentiles([]).values())


def test_latencies_from_stamps() -> None:
    assert list(latencies(100, [150, 180, 400])) == [50, 30, 220]
    assert latencies(0, []).size == 0
