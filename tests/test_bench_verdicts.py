"""bench/bench_verdicts.py and its helpers: the generated suite, the A/A and power counts,
ratio repeatability and the slowed strategies, on synthetic tables (no measurement)."""

from __future__ import annotations

import importlib
import math
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flushbench.analysis import verdicts
from flushbench.analysis.cells import cells
from flushbench.case import Case
from flushbench.suites import load_suite, parse_suite
from flushbench.testing import check_strategy
from synthetic import trial_rows

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))  # the script imports its helpers, as it does when run


def bench(name: str) -> ModuleType:
    return importlib.import_module(name)


SA = "stream-sendall-s64-p2-nd0-sbauto-loopback"
RA = "rr-sendall-s64-p2-nd1-sbauto-loopback"


def vrow(case: str, metric: str, ratio: float, verdict: str, *, baseline: str = "",
         axis: str = "strategy", low: float | None = None, high: float | None = None,
         p: float = 0.5, q: float = 0.9, higher: bool | None = None) -> dict[str, Any]:
    """One verdicts.csv row (the interval defaults to ±2 % around the ratio)."""
    base = baseline or (SA if case.startswith("stream") else RA)
    return {"case": case, "baseline": base, "axis": axis, "metric": metric, "ratio": ratio,
            "ci_low": ratio * 0.98 if low is None else low,
            "ci_high": ratio * 1.02 if high is None else high, "p_value": p, "q_value": q,
            "verdict": verdict, "rounds": 10,
            "higher_is_better": metric == "throughput_bps" if higher is None else higher}


def frame(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=verdicts.VERDICT_COLUMNS)


# -- the generated suite --------------------------------------------------------------------

def test_generated_suite_gives_one_cell_per_size_with_its_twin() -> None:
    """sendall, the aliases and the slowed strategies share a cell; rr has TCP_NODELAY on;
    the budget and the op caps come from the quick suite."""
    vs = bench("_verdicts_stats")
    quick = load_suite("quick")
    strategies = ("sendall", "alias_a", "alias_b", "slow5")
    groups = [vs.Group("stream", 64, strategies, vs.ops_of(quick, "stream", 64)),
              vs.Group("rr", 16384, (*strategies[:3], "slow5_p50"),
                       vs.ops_of(quick, "rr", 16384))]
    settings = {"rounds": 7, "values": 2, "warmups": 0, "value_time": 0.04, "timeout": 60,
                "cc": quick.cc}
    suite = parse_suite(vs.suite_toml("v", "test", settings, groups))
    assert (suite.rounds, suite.values, suite.value_time, suite.cc) == (7, 2, 0.04, "cubic")
    made = cells(suite.cases)
    assert [len(c.cases) for c in made] == [5, 5]  # four strategies and the twin
    assert all(c.nodelay for c in suite.cases if c.workload == "rr")
    assert not any(c.nodelay for c in suite.cases if c.workload == "stream")
    axes = sorted(cmp.axis for cell in made for cmp in cell.comparisons)
    assert axes == ["A/A"] * 2 + ["strategy"] * 6
    quick_ops = {c.workload: c.ops for c in quick.cases if c.strategy == "sendall"}
    assert {c.workload: c.ops for c in suite.cases} == {"stream": quick_ops["stream"],
                                                        "rr": quick_ops["rr"]}


# -- A/A false positives --------------------------------------------------------------------

def test_aa_counts_twins_and_aliases_against_sendall_only() -> None:
    vs = bench("_verdicts_stats")
    table = frame(
        vrow("stream-alias_a-s64-p2-nd0-sbauto-loopback", "throughput_bps", 1.01, "same",
             low=0.97, high=1.05),
        vrow("stream-alias_b-s64-p2-nd0-sbauto-loopback", "throughput_bps", 0.90, "worse",
             p=0.001, q=0.01),
        # significant and big, but BH said no: counted only "without BH"
        vrow("stream-alias_b-s64-p2-nd0-sbauto-loopback", "segs_per_msg", 1.05, "same",
             p=0.01, q=0.2),
        vrow(RA + "-twin", "lat_p50_us", 0.95, "better", axis="A/A", p=0.001, q=0.01),
        vrow(RA + "-twin", "lat_p99_us", math.nan, "no data", axis="A/A", p=math.nan),
        # not A/A: a slowed strategy; an alias against another strategy; another axis
        vrow("stream-slow5-s64-p2-nd0-sbauto-loopback", "throughput_bps", 0.95, "worse",
             p=0.001, q=0.01),
        vrow("stream-alias_a-s64-p2-nd0-sbauto-loopback", "throughput_bps", 0.8, "worse",
             baseline="stream-makefile-s64-p2-nd0-sbauto-loopback", p=0.001, q=0.01),
        vrow("stream-alias_a-s64-p2-nd1-sbauto-loopback", "throughput_bps", 0.8, "worse",
             baseline="stream-alias_a-s64-p2-nd0-sbauto-loopback", axis="nodelay",
             p=0.001, q=0.01))
    every = vs.aa_counts(vs.aa_rows(table, ["alias_a", "alias_b"]))
    assert (every["comparisons"], every["called"]) == (4, 2)
    assert every["share"] == pytest.approx(0.5)
    assert every["without_bh"] == 3 and every["ci_excludes_1"] == 3
    assert every["by_metric"]["throughput_bps"] == {"comparisons": 2, "called": 1}
    assert {r["verdict"] for r in every["called_rows"]} == {"better", "worse"}
    headline = vs.aa_counts(vs.aa_rows(table, ["alias_a", "alias_b"], headline_only=True))
    assert (headline["comparisons"], headline["called"]) == (3, 2)
    only_a = vs.aa_counts(vs.aa_rows(table, ["alias_a"]))
    assert (only_a["comparisons"], only_a["called"]) == (2, 1)  # alias_a and the twin
    assert vs.aa_counts(vs.aa_rows(frame(), ["alias_a"]))["comparisons"] == 0


def test_aa_pairs_come_from_the_schedule() -> None:
    vs = bench("_verdicts_stats")
    comparisons = [["stream-alias_a-s64", "stream-sendall-s64", "strategy"],
                   ["stream-slow5-s64", "stream-sendall-s64", "strategy"],
                   ["stream-sendall-s64-twin", "stream-sendall-s64", "A/A"],
                   ["stream-alias_a-s64-nd1", "stream-alias_a-s64", "nodelay"]]
    assert vs.aa_pairs(comparisons, ["alias_a"]) == [
        ("stream-alias_a-s64", "stream-sendall-s64"),
        ("stream-sendall-s64-twin", "stream-sendall-s64")]


def test_welch_counts_calls_a_block_offset_different() -> None:
    """The old test sees a constant offset between two blocks as a difference, however
    small the spread inside each block; equal values are not called; no data is skipped."""
    vs = bench("_verdicts_stats")
    block = np.array([1.00, 1.01, 0.99, 1.00, 1.02, 0.98])
    rates = {"base": block, "same": block.copy(), "drifted": block * 1.3, "gone": None}
    counts = vs.welch_counts([("same", "base"), ("drifted", "base"), ("gone", "base")],
                             rates.get)
    assert (counts["comparisons"], counts["called"]) == (2, 1)
    assert counts["worst"]["case"] == "drifted"
    assert counts["worst"]["ratio"] == pytest.approx(1.3)
    total = vs.add_counts([counts, counts])
    assert (total["comparisons"], total["called"], total["share"]) == (4, 2, 0.5)


def test_paired_rounds_call_no_alias_different_under_drift() -> None:
    """Synthetic interleaved rounds with 20 % drift between rounds: the aliases and the
    twins come out "same" in the verdicts the run would write."""
    vs = bench("_verdicts_stats")
    cases = [Case("stream", s, 1024) for s in ("sendall", "alias_a", "alias_b")]
    cases += [Case("rr", s, 64, nodelay=True) for s in ("sendall", "alias_a", "alias_b")]
    made = cells(cases)
    members = [c for cell in made for c in cell.cases]
    trials = pd.DataFrame(trial_rows(members, 10, np.random.default_rng(5), drift=0.2))
    judged = verdicts.build(trials, [c for cell in made for c in cell.comparisons],
                            {c.id: c.workload for c in members})
    counts = vs.aa_counts(vs.aa_rows(judged, ["alias_a", "alias_b"]))
    assert counts["comparisons"] == 2 * 2 + 2 * 3 + 2 + 3  # aliases, then twins
    assert counts["called"] == 0


# -- power ------------------------------------------------------------------------------------

def test_power_table_counts_worse_on_the_headline_metric() -> None:
    vs = bench("_verdicts_stats")
    factors = {"slow5": 0.05, "slow5_p50": 0.05, "slow10": 0.10, "slow10_p50": 0.10}
    s5, s10 = ("stream-slow5-s64-p2-nd0-sbauto-loopback",
               "stream-slow10-s64-p2-nd0-sbauto-loopback")
    r5, r10 = "rr-slow5_p50-s64-p2-nd1-sbauto-loopback", "rr-slow10_p50-s64-p2-nd1-sbauto-loopback"
    table = frame(
        vrow(s5, "throughput_bps", 0.95, "worse"), vrow(r5, "lat_p50_us", 1.05, "worse"),
        vrow(s5.replace("s64", "s1K"), "throughput_bps", 0.99, "same"),
        vrow(r5.replace("s64", "s16K"), "lat_p50_us", 0.97, "better"),  # the wrong way
        vrow(s10, "throughput_bps", 0.90, "worse"), vrow(r10, "lat_p50_us", 1.10, "worse"),
        vrow(s10, "segs_per_msg", 1.0, "same"), vrow(r10, "lat_p99_us", 1.0, "same"),
        vrow("stream-alias_a-s64-p2-nd0-sbauto-loopback", "throughput_bps", 0.9, "worse"),
        vrow(s10.replace("s64", "s1M"), "throughput_bps", math.nan, "no data"))
    rows = vs.power_rows(table, factors)
    assert len(rows) == 6  # headline metrics of the slowed strategies, with data
    power = vs.power_table(rows)
    assert [(r["factor"], r["tries"], r["worse"], r["better"]) for r in power] == [
        (0.05, 4, 2, 1), (0.10, 2, 2, 0)]
    assert power[0]["share"] == pytest.approx(0.5)
    # slowdown = time ratio - 1: 1/0.95 - 1 for throughput, 1.05 - 1 for p50
    assert power[1]["slowdown_min"] == pytest.approx(0.10)
    assert power[1]["slowdown_max"] == pytest.approx(1 / 0.9 - 1)
    assert power[0]["slowdown_min"] == pytest.approx(0.97 - 1)
    assert vs.smallest_detected(power) == pytest.approx(0.10)
    assert vs.smallest_detected(power, level=0.5) == pytest.approx(0.05)
    assert vs.power_targets(power) == {"5 %": False, "10 %": True}
    assert vs.power_targets(power[:1]) == {"5 %": False, "10 %": None}
    assert vs.power_table(vs.power_rows(frame(), factors)) == []


def test_power_by_cell_and_without_bh() -> None:
    """Per cell: the tries at each slowdown, and which would be "worse" with p in place of
    q (a BH-adjusted q over 0.05 with p under it, the interval below 1, 6 % slower)."""
    vs = bench("_verdicts_stats")
    factors = {"slow5": 0.05, "slow10": 0.10}
    s5 = "stream-slow5-s16K-p2-nd0-sbauto-loopback"
    table = frame(
        vrow(s5, "throughput_bps", 0.94, "same", low=0.90, high=0.98, p=0.01, q=0.08),
        vrow(s5.replace("s16K", "s64"), "throughput_bps", 0.94, "worse", low=0.92, high=0.96,
             p=0.001, q=0.01),
        vrow(s5.replace("slow5", "slow10"), "throughput_bps", 0.98, "same", low=0.95,
             high=1.01, p=0.2, q=0.4),
        # a p under 0.05 the wrong way (faster) is not "worse" without BH either
        vrow(s5.replace("s16K", "s1M"), "throughput_bps", 1.06, "same", low=1.02, high=1.1,
             p=0.01, q=0.2))
    rows = vs.power_rows(table, factors)
    assert vs.cell_of(s5) == "stream s16K"
    assert list(vs.worse_without_bh(rows)) == [True, True, False, False]
    by_cell = {(r["cell"], r["factor"]): (r["tries"], r["worse"], r["worse_without_bh"])
               for r in vs.power_table(rows, by_cell=True)}
    assert by_cell == {("stream s16K", 0.05): (1, 0, 1), ("stream s64", 0.05): (1, 1, 1),
                       ("stream s1M", 0.05): (1, 0, 0), ("stream s16K", 0.10): (1, 0, 0)}
    overall = vs.power_table(rows)
    assert [(r["factor"], r["tries"], r["worse_without_bh"]) for r in overall] == [
        (0.05, 3, 2), (0.10, 1, 0)]


def test_cell_noise_turns_interval_widths_into_rounds_needed() -> None:
    """A/A rows with a ±10 % interval over 10 rounds: per-round sd = ln(1.1) x sqrt(10) / t,
    and the rounds for 80 % power at 5 %; a four-times narrower cell needs 16 times fewer."""
    from scipy import stats

    vs = bench("_verdicts_stats")
    wide = "stream-alias_a-s16K-p2-nd0-sbauto-loopback"
    narrow = "stream-alias_a-s64-p2-nd0-sbauto-loopback"
    aa = frame(vrow(wide, "throughput_bps", 1.0, "same", low=0.9, high=1.1),
               vrow(narrow, "throughput_bps", 1.0, "same", low=0.975, high=1.025))
    got = {n["cell"]: n for n in vs.cell_noise(aa)}
    sd = math.log(1.1) * math.sqrt(10) / stats.t.ppf(0.975, 9)
    assert got["stream s16K"]["round_sd"] == pytest.approx(sd)
    assert got["stream s16K"]["half_width"] == pytest.approx(0.1)
    need = ((1.96 + 0.8416) * sd / math.log(1.05)) ** 2
    assert got["stream s16K"]["rounds_for_effect"] == math.ceil(need)
    ratio = got["stream s16K"]["rounds_for_effect"] / got["stream s64"]["rounds_for_effect"]
    assert 14 <= ratio <= 18  # (ln 1.1 / ln 1.025)^2 = 15.1, up to rounding up


def test_power_from_synthetic_rounds_finds_known_slowdowns() -> None:
    """Through verdicts.build: 5 % and 10 % slower strategies are called worse in every
    cell of synthetic rounds with 10 % drift and 1 % jitter; the aliases are not."""
    vs = bench("_verdicts_stats")
    names = {"stream": ("slow5", "slow10"), "rr": ("slow5_p50", "slow10_p50")}
    cases = []
    for workload, size in (("stream", 64), ("stream", 131072), ("rr", 64)):
        nd = workload == "rr"
        cases += [Case(workload, s, size, nodelay=nd)
                  for s in ("sendall", "alias_a", *names[workload])]
    slower = {c.id: 1.05 if "slow5" in c.strategy else 1.10 for c in cases
              if c.strategy.startswith("slow")}
    made = cells(cases)
    members = [c for cell in made for c in cell.cases]
    trials = pd.DataFrame(trial_rows(members, 10, np.random.default_rng(9), slower=slower))
    judged = verdicts.build(trials, [c for cell in made for c in cell.comparisons],
                            {c.id: c.workload for c in members})
    factors = {"slow5": 0.05, "slow5_p50": 0.05, "slow10": 0.10, "slow10_p50": 0.10}
    power = vs.power_table(vs.power_rows(judged, factors))
    assert [(r["tries"], r["worse"]) for r in power] == [(3, 3), (3, 3)]
    assert power[0]["slowdown_median"] == pytest.approx(0.05, abs=0.01)
    assert vs.smallest_detected(power) == pytest.approx(0.05)
    assert vs.aa_counts(vs.aa_rows(judged, ["alias_a"]))["called"] == 0


# -- ratio repeatability --------------------------------------------------------------------

def test_repeatability_counts_ratios_within_five_percent() -> None:
    vs = bench("_verdicts_stats")
    c = "stream-makefile-s64-p2-nd0-sbauto-loopback"
    r = "rr-makefile-s64-p2-nd1-sbauto-loopback"
    a = frame(vrow(c, "throughput_bps", 1.00, "same"), vrow(c, "segs_per_msg", 1.0, "same"),
              vrow(r, "lat_p50_us", 0.80, "better"), vrow(r, "lat_p99_us", 0.5, "better"),
              vrow(SA + "-twin", "throughput_bps", 1.00, "same", axis="A/A"),
              vrow(RA + "-twin", "lat_p50_us", 1.00, "same", axis="A/A"),
              vrow("stream-send-s64-p2-nd0-sbauto-loopback", "throughput_bps", 1.2, "better"))
    b = frame(vrow(c, "throughput_bps", 1.05, "same"),  # the edge counts
              vrow(c, "segs_per_msg", 3.0, "worse"),  # not a repeat metric
              vrow(r, "lat_p50_us", 0.70, "better"),  # 12.5 % off
              vrow(r, "lat_p99_us", 0.5, "better"),
              vrow(SA + "-twin", "throughput_bps", 0.96, "same", axis="A/A"),
              vrow(RA + "-twin", "lat_p50_us", math.nan, "no data", axis="A/A"))
    rep = vs.repeatability(a, b)
    assert (rep["pairs"], rep["within"]) == (3, 2)
    assert rep["share"] == pytest.approx(2 / 3)
    assert rep["unmatched"] == 2  # the twin without a ratio in B, the case only in A
    assert rep["by_metric"] == {"lat_p50_us": {"pairs": 1, "within": 0},
                                "throughput_bps": {"pairs": 2, "within": 2}}
    assert rep["worst"][0]["case"] == r and rep["worst"][0]["dev"] == pytest.approx(0.125)
    assert rep["by_cell"] == {"rr s64": {"pairs": 1, "within": 0},
                              "stream s64": {"pairs": 2, "within": 2}}
    assert rep["far"] == {"pairs": 0, "within": 0}
    assert vs.repeatability(a, b, tolerance=0.2)["within"] == 3
    assert vs.repeatability(a, a)["share"] == 1.0
    assert math.isnan(vs.repeatability(frame(), frame())["share"])


def test_repeatability_sets_apart_ratios_against_a_timer() -> None:
    """A ratio over 10x from 1 (a case out of the 40 ms delayed-ACK trap against a baseline
    in it) is counted apart as well as in the total."""
    vs = bench("_verdicts_stats")
    w = "wwr-coalesce-s64-p2-nd0-sbauto-loopback"
    trap = "wwr-sendall-s64-p2-nd0-sbauto-loopback"
    a = frame(vrow(w, "lat_p50_us", 60 / 43700, "better", baseline=trap),
              vrow(SA + "-twin", "throughput_bps", 1.0, "same", axis="A/A"))
    b = frame(vrow(w, "lat_p50_us", 70 / 43700, "better", baseline=trap),
              vrow(SA + "-twin", "throughput_bps", 1.01, "same", axis="A/A"))
    rep = vs.repeatability(a, b)
    assert (rep["pairs"], rep["within"]) == (2, 1)
    assert rep["far"] == {"pairs": 1, "within": 0}
    assert rep["near"] == {"pairs": 1, "within": 1}
    assert rep["by_cell"]["wwr s64"] == {"pairs": 1, "within": 0}
    # With the trials: the fast side (the case, 60 -> 70 us) moved 1/6, the trap (the
    # baseline, 43.7 ms in both) not at all; that is the ratio's whole change.

    def trials(fast_us: float) -> pd.DataFrame:
        return pd.DataFrame({"case": [w, w, trap, trap], "round": [0, 1, 0, 1],
                             "lat_p50_us": [fast_us, fast_us, 43700.0, 43700.0]})
    rep = vs.repeatability(a, b, trials=(trials(60.0), trials(70.0)))
    assert rep["far"]["fast_side_moved"] == pytest.approx(1 / 6)
    assert rep["far"]["slow_side_moved"] == pytest.approx(0.0)


# -- the slowed strategies and the script -----------------------------------------------------

class FakeClock:
    """A clock that moves ``step`` ns per read; messages move it by their own time."""

    def __init__(self, step: int = 40) -> None:
        self.t, self.step = 1_000_000, step

    def __call__(self) -> int:
        self.t += self.step
        return self.t


class NullSocket:
    def sendall(self, data: Any) -> None:
        return None


def slowdown(cls: type, per_msg_ns: float, n: int = 20_000, jitter: float = 0.0
             ) -> tuple[float, float]:
    """(mean, median) time per message of ``cls`` on a fake clock, over plain messages'."""
    def times(strategy_cls: type) -> np.ndarray:
        clock, rng = FakeClock(), np.random.default_rng(4)
        strategy = type("Timed", (strategy_cls,), {"clock": staticmethod(clock)})(NullSocket())
        out = np.empty(n)
        for i in range(n):
            t0 = clock.t
            strategy.send_message([b"h", b"body"])
            clock.t += int(per_msg_ns * (rng.lognormal(0.0, jitter) if jitter else 1.0))
            out[i] = clock.t - t0
        return out

    plugin = bench("_verdicts_plugin")
    slow, plain = times(cls), times(plugin.AliasA)
    return (float(slow.mean() / plain.mean() - 1),
            float(np.median(slow) / np.median(plain) - 1))


@pytest.mark.parametrize("per_msg_ns", [2_000, 40_000])
def test_slowed_sendall_costs_its_factor_of_its_own_time(per_msg_ns: int) -> None:
    """The mean strategies add f to the mean time per message, the p50 ones to the median,
    jitter or not (up to the clock reads they cannot budget); waits follow the pace."""
    plugin = bench("_verdicts_plugin")
    for factor in (0.03, 0.05, 0.10):
        mean_cls, p50_cls = plugin.SLOWED[factor]
        assert mean_cls.factor == factor and p50_cls.median
        for jitter in (0.0, 0.5):
            mean, _ = slowdown(mean_cls, per_msg_ns, jitter=jitter)
            assert mean == pytest.approx(factor, abs=0.003)
        if per_msg_ns >= 20_000:  # rr's pace: the p50 moves by f
            _, median = slowdown(p50_cls, per_msg_ns, jitter=0.5)
            assert median == pytest.approx(factor, abs=0.01)
    assert slowdown(plugin.AliasB, per_msg_ns) == (0.0, 0.0)


def test_plugin_strategies_pass_the_conformance_kit() -> None:
    plugin = bench("_verdicts_plugin")
    for cls in (plugin.AliasA, plugin.Slow10, plugin.Slow10P50):
        check_strategy(cls)
    names = [c.name for c in plugin.ALIASES] + [c.name for pair in plugin.SLOWED.values()
                                                for c in pair]
    assert len(set(names)) == len(names) and all("-" not in n for n in names)
    assert plugin.countdown_overhead_ns(messages=2000, repeat=2) >= 0


def test_arguments_and_summary() -> None:
    bv = bench("bench_verdicts")
    fast = bv.parse_args(["--fast"])
    assert (fast.runs, fast.aliases, fast.stream_sizes, fast.rr_sizes) == (1, 2, [64, 131072],
                                                                          [64])
    full = bv.parse_args(["--rr-sizes", "", "--factors", "0.05,0.1"])
    assert full.runs == 3 and full.rr_sizes == [] and full.factors == [0.05, 0.10]
    for bad in (["--factors", "0.06"], ["--aliases", "9"], ["--rounds", "1"],
                ["--stream-sizes", "", "--rr-sizes", ""]):
        with pytest.raises(SystemExit):
            bv.parse_args(bad)
    counts = {"comparisons": 120, "called": 3, "share": 0.025, "by_metric": {}}
    out = {"settings": {"rounds": 10, "values": 2, "value_time": 0.04, "cells": ["rr 64 B"],
                        "aliases": ["alias_a"], "runs": 1, "seed": 1},
           "aa": {"paired": counts, "paired_headline": counts,
                  "welch_interleaved": {**counts, "called": 30, "share": 0.25},
                  "welch_blocks": {**counts, "called": 60, "share": 0.5, "values": 20},
                  "by_trial": {**counts, "called": 4, "share": 4 / 120,
                               "cell_noise": [{"cell": "rr s64", "round_sd": 0.06}],
                               "power": [{"factor": 0.05, "tries": 20, "worse": 11}]}},
           "power": {"table": [{"factor": 0.05, "tries": 20, "worse": 17, "better": 0,
                                "share": 0.85, "slowdown_median": 0.051,
                                "slowdown_min": 0.03, "slowdown_max": 0.07}],
                     "smallest_80": 0.05, "targets": {"5 %": True, "10 %": None},
                     "countdown_ns": 20.0, "countdown_share_max": 0.01},
           "repeat": {"runs": "two", "pairs": 10, "within": 8, "share": 0.8,
                      "tolerance": 0.05, "median_dev": 0.02, "by_metric": {}},
           "elapsed_s": 90.0}
    text = "\n".join(bv.summary(out))
    assert "3 of 120 (2.5 %) comparisons called" in text and "(target <= 5 %: met)" in text
    assert "contiguous blocks, --rounds 1 --values 20; Welch's t): 60 of 120" in text
    assert "5 %: met, 10 %: n/a" in text and "target >= 90 %: NOT met" in text
    assert ("pooled figures (no slot pairing): A/A 4 of 120 (3.3 %); slowdowns called worse: "
            "5 % 11/20; A/A per-round sd: rr s64 6.0 %") in text
    assert bv.plain({"a": [np.float64(math.nan), np.int64(3), Path("x")]}) == {
        "a": [None, 3, "x"]}


def test_countdown_overhead_measures_a_difference() -> None:
    """Both sides run interleaved on a null socket; a small but finite figure."""
    plugin = bench("_verdicts_plugin")
    t0 = time.perf_counter()
    ns = plugin.countdown_overhead_ns(messages=5000, repeat=3)
    assert 0 <= ns < 10_000 and time.perf_counter() - t0 < 30
