"""Throughput and p50 paired slot by slot (analysis/slots.py) and the verdicts they feed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from flushbench.analysis import slots
from flushbench.analysis.cells import Comparison
from flushbench.analysis.verdicts import build, paired_ratio

CASE, BASE = "stream-makefile-s16K-p2-nd0-sbauto-loopback", \
    "stream-sendall-s16K-p2-nd0-sbauto-loopback"


def test_one_sided_swing_in_one_slot_does_not_move_the_round() -> None:
    base = np.array([1.0, 2.0, 1.5, 0.8, 1.2, 1.9, 1.1, 1.4])  # the host drifts slot to slot
    case = base * 1.1
    assert slots.round_log_ratio(case, base) == pytest.approx(math.log(1.1))
    case[3] *= 0.6  # a retransmission in one value of the case
    assert slots.round_log_ratio(case, base) == pytest.approx(math.log(1.1))
    pooled = math.log(case.sum() / base.sum())
    assert abs(pooled - math.log(1.1)) > 0.02  # what pooling the values would have said


def test_heavy_tailed_slot_noise_is_narrower_paired_by_slot_than_pooled() -> None:
    """A/A over many rounds: one-sided swings in a few slots; the per-round log ratio's sd
    is smaller paired by slot (median) than with each side's values pooled."""
    rng = np.random.default_rng(7)
    by_slot, pooled = [], []
    for _ in range(400):
        drift = rng.lognormal(0.0, 0.2, 8)  # shared by the two sides of a slot
        a = drift * rng.lognormal(0.0, 0.03, 8)
        b = drift * rng.lognormal(0.0, 0.03, 8)
        for side in (a, b):
            hit = rng.random(8) < 0.15
            side[hit] *= 0.7
        by_slot.append(slots.round_log_ratio(a, b))
        pooled.append(math.log(a.sum() / b.sum()))
    assert abs(float(np.mean(by_slot))) < 0.01  # no bias between identical sides
    assert np.std(by_slot) < 0.7 * np.std(pooled)


def test_slot_rates_group_values_by_round_in_order() -> None:
    got = slots.slot_rates([0, 0, 1, 1], [100, 200, 300, 0], [10, 10, 10, 10])
    assert got is not None and sorted(got) == [0, 1]
    assert got[0].tolist() == [10.0, 20.0]
    assert got[1][0] == 30.0 and math.isnan(got[1][1])  # no bytes: not a rate


@pytest.mark.parametrize("columns", [
    ([0, 1], [1, 2, 3], [1, 2, 3]),  # misaligned
    ([], [], []),  # empty
    ([0.5, 1.0], [1, 2], [1, 2]),  # rounds that are not whole numbers
    ([0, 1], ["a", "b"], [1, 2]),  # not numbers
])
def test_slot_rates_refuse_what_does_not_line_up(columns: tuple[list, list, list]) -> None:
    assert slots.slot_rates(*columns) is None


def test_from_samples_needs_its_columns() -> None:
    full = {"round_of_value": np.array([0, 0]), "v_bytes": np.array([10, 20]),
            "v_elapsed_ns": np.array([5, 5]), "lat_ns": np.array([10, 30, 20, 50, 70]),
            "ops_per_value": np.array([3, 2])}
    rates = slots.from_samples(full, "throughput_bps")
    assert rates is not None and rates[0].tolist() == [2.0, 4.0]
    p50s = slots.from_samples(full, "lat_p50_us")
    assert p50s is not None and p50s[0].tolist() == [20.0, 60.0]  # each value's own p50
    assert slots.from_samples(full, "lat_p99_us") is None  # a tail stays the trial's
    assert slots.from_samples({k: v for k, v in full.items() if k != "v_bytes"},
                              "throughput_bps") is None
    for hostile, column in (({**full, "v_elapsed_ns": np.array([[1, 2], [3, 4]])},
                             "throughput_bps"),
                            ({**full, "ops_per_value": np.array([3, 3])},  # too many ops
                             "lat_p50_us"),
                            ({**full, "ops_per_value": np.array([5, 0])},  # an empty value
                             "lat_p50_us"),
                            ({**full, "round_of_value": np.array(["a", "b"])},
                             "throughput_bps"),
                            ({**full, "round_of_value": np.array(["a", "b"])},
                             "lat_p50_us")):
        assert slots.from_samples(hostile, column) is None, (column, hostile)


def test_log_ratios_need_every_round_on_both_sides_with_equal_value_counts() -> None:
    a = {0: np.array([2.0, 2.0]), 1: np.array([2.0, 2.0])}
    b = {0: np.array([1.0, 1.0]), 1: np.array([1.0, 1.0])}
    d = slots.log_ratios(a, b, [0, 1])
    assert d is not None and np.allclose(d, math.log(2.0))
    assert slots.log_ratios(a, {0: b[0]}, [0, 1]) is None  # round 1 missing
    slow = {0: np.array([2.0, 2.0]), 1: np.array([2.0, 2.0, 2.0])}  # not in slots
    assert slots.log_ratios(slow, b, [0, 1]) is None


def _trials(noise: list[float]) -> pd.DataFrame:
    """Two cases over len(noise) rounds; the case's trial figure off by ``noise`` per round."""
    rows = []
    for r, n in enumerate(noise):
        rows.append({"case": BASE, "round": r, "throughput_bps": 1e9, "segs_per_msg": 1.0,
                     "error": ""})
        rows.append({"case": CASE, "round": r, "throughput_bps": 1.1e9 * n,
                     "segs_per_msg": 1.0, "error": ""})
    return pd.DataFrame(rows)


def test_build_pairs_throughput_by_slot_and_falls_back_to_the_trials() -> None:
    """Trial figures swing (one round 30 % down); the slots say 1.1 in every slot: the
    verdict follows the slots where they are known, the trials where not."""
    noise = [1.0, 0.7, 1.05, 0.95, 1.0, 1.02]
    trials = _trials(noise)
    comps = [Comparison(CASE, BASE, "strategy")]
    workloads = {CASE: "stream", BASE: "stream"}
    base_rates = {r: np.linspace(1.0, 2.0, 8) for r in range(len(noise))}
    known = {BASE: base_rates, CASE: {r: 1.1 * v for r, v in base_rates.items()}}
    with_slots = build(trials, comps, workloads,
                       slots=lambda cid, col: known.get(cid)).set_index("metric")
    row = with_slots.loc["throughput_bps"]
    assert row["ratio"] == pytest.approx(1.1) and row["ci_high"] == pytest.approx(1.1)
    assert row["verdict"] == "better"
    from_trials = paired_ratio([1.1e9 * n for n in noise], [1e9] * len(noise))
    assert from_trials is not None
    sources = (None, lambda cid, col: {BASE: base_rates}.get(cid))  # none; the case's unknown
    for source in sources:
        frame = build(trials, comps, workloads, slots=source).set_index("metric")
        assert frame.loc["throughput_bps", "ratio"] == pytest.approx(from_trials.ratio)
        assert frame.loc["throughput_bps", "ci_low"] == pytest.approx(from_trials.low)


def test_build_leaves_out_failed_rounds_from_the_slot_pairing() -> None:
    trials = _trials([1.0] * 4)
    trials.loc[(trials["case"] == CASE) & (trials["round"] == 2), "error"] = "peer died"
    base_rates = {r: np.full(8, 1.0) for r in range(4)}
    case_rates = {r: np.full(8, 1.2) for r in (0, 1, 3)}  # round 2 stored nothing
    frame = build(trials, [Comparison(CASE, BASE, "strategy")],
                  {CASE: "stream", BASE: "stream"},
                  slots=lambda cid, col: {BASE: base_rates, CASE: case_rates}.get(cid)
                  ).set_index("metric")
    assert frame.loc["throughput_bps", "ratio"] == pytest.approx(1.2)
    assert frame.loc["throughput_bps", "rounds"] == 3


def test_p50_pairs_by_slot_and_p99_stays_the_trials() -> None:
    """A stretch of a round runs every round trip ten times slower: it catches the case's
    trial figure (p50 and p99) and not the baseline's, but in slots it hits both sides."""
    rr_case, rr_base = CASE.replace("stream-", "rr-"), BASE.replace("stream-", "rr-")
    rows = []
    for r in range(6):
        slow = 10.0 if r == 2 else 1.0
        rows += [{"case": rr_base, "round": r, "lat_p50_us": 70.0, "lat_p99_us": 90.0,
                  "segs_per_msg": 1.0, "error": ""},
                 {"case": rr_case, "round": r, "lat_p50_us": 77.0 * slow,
                  "lat_p99_us": 99.0 * slow, "segs_per_msg": 1.0, "error": ""}]
    stretch = np.array([1, 1, 1, 10, 10, 10, 10, 10], dtype=float)  # both sides, slots 3-7
    base = {r: 70.0 * (stretch if r == 2 else np.ones(8)) for r in range(6)}
    case = {r: 1.1 * v for r, v in base.items()}
    frame = build(pd.DataFrame(rows), [Comparison(rr_case, rr_base, "strategy")],
                  {rr_case: "rr", rr_base: "rr"},
                  slots=lambda cid, col: {rr_base: base, rr_case: case}.get(cid)
                  ).set_index("metric")
    assert frame.loc["lat_p50_us", "ratio"] == pytest.approx(1.1)
    assert frame.loc["lat_p50_us", "verdict"] == "worse"
    assert frame.loc["lat_p99_us", "ratio"] == pytest.approx(1.1 * 10 ** (1 / 6))


def test_build_asks_for_each_cases_values_once() -> None:
    """A baseline stands in every comparison of its cell: its values are split once."""
    twins = [CASE, CASE.replace("makefile", "sendmsg")]
    rows = [{"case": c, "round": r, "throughput_bps": 1e9, "segs_per_msg": 1.0, "error": ""}
            for r in range(4) for c in (BASE, *twins)]
    asked: list[tuple[str, str]] = []

    def source(cid: str, column: str) -> dict[int, np.ndarray]:
        asked.append((cid, column))
        return {r: np.ones(8) for r in range(4)}
    frame = build(pd.DataFrame(rows), [Comparison(c, BASE, "strategy") for c in twins],
                  {c: "stream" for c in (BASE, *twins)}, slots=source)
    assert (frame[frame["metric"] == "throughput_bps"]["ratio"] == 1.0).all()
    assert sorted(asked) == sorted({(c, "throughput_bps") for c in (BASE, *twins)})
