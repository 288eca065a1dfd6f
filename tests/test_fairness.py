"""Fairness and aggregate figures of many-connection values, on synthetic data."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flushbench.analysis.fairness import jain, stream_figures
from flushbench.case import Case
from flushbench.run.merge import summarize


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


def _value(bytes_: int, conn_ns: list[int], cpu_client: int, cpu_peer: int) -> dict[str, Any]:
    n = len(conn_ns)
    return {"ops": n, "msgs": n, "bytes": bytes_, "reply_bytes": 0, "elapsed_ns": max(conn_ns),
            "cpu_client_ns": cpu_client, "cpu_peer_ns": cpu_peer, "calls": None, "segs": None,
            "retrans": None, "tls_bytes": None, "conn_ns": conn_ns}


def test_a_driver_cases_row_has_aggregate_fairness_and_cpu_share() -> None:
    """The table row of a stream on 4 connections, from two synthetic values."""
    case = Case("stream", "sendall", 16384, conns=4, driver="selectors")
    values = [_value(4_000_000, [1_000_000, 1_000_000, 1_000_000, 1_000_000], 900_000, 300_000),
              _value(4_000_000, [1_000_000, 2_000_000, 2_000_000, 4_000_000], 2_000_000, 800_000)]
    row, _ = summarize(case, values, {}, np.zeros(0, np.int64), 1)
    assert row["conns"] == 4 and row["driver"] == "selectors"
    assert row["throughput_bps"] == pytest.approx(8 * 8_000_000 / 0.005)  # all bytes, 1 + 4 ms
    assert row["send_calls_per_msg"] is None  # an event loop's calls are not counted
    assert row["jain_fairness"] == pytest.approx((1.0 + jain([8e9, 4e9, 4e9, 2e9])) / 2)
    assert row["conn_min_bps"] == pytest.approx((8e9 + 2e9) / 2)
    assert row["conn_max_bps"] == pytest.approx(8e9)
    assert row["cpu_share_client"] == pytest.approx(2_900_000 / 5_000_000)
    assert row["cpu_share_peer"] == pytest.approx(1_100_000 / 5_000_000)


def test_a_driver_cases_latency_pools_every_connection() -> None:
    """rr on many connections: percentiles over every connection's samples together."""
    case = Case("rr", "sendall", 64, nodelay=True, conns=2, driver="threads")
    fast = np.full(990, 10_000)  # 10 µs
    slow = np.full(10, 5_000_000)  # 5 ms: 1 % of all samples, all on one connection
    value = _value(1000 * 64, [1_000_000, 1_000_000], 1, 1)
    row, samples = summarize(case, [value], {}, np.concatenate([fast, slow]), 1)
    assert row["lat_p50_us"] == pytest.approx(10.0)
    assert row["lat_p999_us"] == pytest.approx(5000.0, rel=0.01)
    assert samples["lat_ns"].size == 1000


def test_a_single_connection_row_has_no_connection_figures() -> None:
    case = Case("stream", "sendall", 16384)
    value = {**_value(16384, [1000], 1, 1), "calls": 2, "conn_ns": None}
    row, _ = summarize(case, [value], {}, np.zeros(0, np.int64), 1)
    assert row["conns"] == 1 and row["driver"] == ""
    assert "jain_fairness" not in row and row["send_calls_per_msg"] == 2
