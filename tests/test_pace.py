"""The time budget (run/pace.py): later rounds run fewer values when the host is slow."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyperf
import pytest

from flushbench.errors import UsageError
from flushbench.run.options import RunOptions, prepare_suite
from flushbench.run.pace import MIN_VALUES, REPORT_S, RESERVE_S, Pace
from flushbench.suites import parse_suite
from test_run import flushbench_cli

BUDGET = 160 + RESERVE_S  # 160 s for the rounds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_host_as_fast_as_planned_keeps_every_value() -> None:
    clock = Clock()
    pace = Pace(budget_s=BUDGET, values=32, clock=clock)
    assert pace.next_values(9) == 32  # nothing measured yet: the suite's values
    clock.now = 15.0
    pace.ran(0, seconds=15.0, slotted_s=8.0, values=32)  # 7 s fixed + 8 s of values
    assert pace.next_values(9) == 32  # 9 x 15 s more ends at 150 s, inside the 160 s
    assert pace.summary() == ""


def test_a_slow_host_gets_fewer_values_in_the_rounds_left() -> None:
    clock = Clock()
    pace = Pace(budget_s=BUDGET, values=32, clock=clock)
    for r in range(5):  # five slow rounds of 20 s: 8 s fixed, 12 s in 32 values each
        clock.now += 20.0
        pace.ran(r, seconds=20.0, slotted_s=12.0, values=32)
    # 5 rounds left in 160 - 100 = 60 s: 12 s each, 4 s for values of 0.375 s: 10
    assert pace.next_values(5) == 10
    left = BUDGET - RESERVE_S - clock.now
    assert 5 * (8.0 + 10 * 0.375) <= left < 5 * (8.0 + 11 * 0.375)
    clock.now += 11.75
    pace.ran(5, seconds=11.75, slotted_s=3.75, values=10)  # as planned
    assert pace.next_values(4) == 10  # on track: the same again
    clock.now = 165.0  # past the budget: the floor, never fewer
    assert pace.next_values(2) == MIN_VALUES
    line = pace.summary()
    assert "round 6 measured 10 values per case instead of 32" in line
    assert f"inside its {BUDGET:g} s budget" in line


def test_a_report_to_follow_is_kept_time_for() -> None:
    """Under --report the run's report comes after the budget's rounds: the pace keeps
    REPORT_S for it, so the same slow rounds leave fewer values."""
    runs = []
    for reserve in (RESERVE_S, RESERVE_S + REPORT_S):
        clock = Clock()
        pace = Pace(budget_s=BUDGET, values=32, clock=clock, reserve_s=reserve)
        for r in range(5):
            clock.now += 20.0
            pace.ran(r, seconds=20.0, slotted_s=12.0, values=32)
        runs.append(pace.next_values(5))
    # 60 s left for 5 rounds: 10 values; 45 s: 9 s a round, 1 s of values: 2, the floor 8
    assert runs == [10, MIN_VALUES]


def test_one_slow_round_is_averaged_with_the_others() -> None:
    """A single slow round moves the estimate by its share, not all of it."""
    clock = Clock()
    pace = Pace(budget_s=BUDGET, values=32, clock=clock)
    for r, secs in enumerate((14.0, 14.0, 25.0)):  # 7 s fixed; 7 s, then 18 s of values
        clock.now += secs
        pace.ran(r, seconds=secs, slotted_s=secs - 7.0, values=32)
    # 7 rounds left in 160 - 53 = 107 s, 15.3 s each; values cost (7+7+18)/96 = 1/3 s
    assert pace.next_values(7) == 24  # the last round alone (18/32 s) would have said 14


def test_no_budget_and_small_suites_are_left_alone() -> None:
    clock = Clock()
    pace = Pace(budget_s=0, values=32, clock=clock)
    clock.now = 1000.0
    pace.ran(0, seconds=1000.0, slotted_s=900.0, values=32)
    assert pace.next_values(9) == 32
    small = Pace(budget_s=1, values=5, clock=clock)
    small.ran(0, seconds=10.0, slotted_s=5.0, values=5)
    assert small.next_values(9) == 5  # below the floor already: nothing to take away


SUITE = """
[suite]
name = "paced"
rounds = 4
values = 16
value_time = 0.002
budget = {budget}

[[matrix]]
workload = "stream"
strategy = ["sendall", "makefile"]
msg_size = 1024
ops = 2000
"""


def test_the_suite_budget_is_checked_and_kept_for_the_suite_as_written() -> None:
    assert parse_suite(SUITE.format(budget=170)).budget == 170.0
    for bad in ("-1", "inf", "nan", '"3 min"'):
        with pytest.raises(UsageError, match="budget"):
            parse_suite(SUITE.format(budget=bad))
    assert parse_suite(SUITE.format(budget=0)).budget == 0.0
    suite_path = Path(__file__).resolve().parents[1] / "src/flushbench/suites/quick.toml"
    assert prepare_suite(RunOptions(suite=str(suite_path))).budget > 0
    for changed in ({"rounds": 20}, {"values": 4}, {"fast": True},
                    {"link": "rate=10mbit"}, {"peers": ["198.18.0.2:9000"]}):
        opts = RunOptions(suite=str(suite_path), **changed)  # type: ignore[arg-type]
        assert prepare_suite(opts).budget == 0.0, changed


@pytest.mark.slow
def test_a_run_over_its_budget_shortens_later_rounds(tmp_path: Path) -> None:
    """A real run whose budget (1 s) cannot be met: the first round runs the suite's 16
    values, the later ones the floor of 8; the verdicts still pair, pyperf.json still loads,
    and the run says what happened."""
    suite = tmp_path / "paced.toml"
    suite.write_text(SUITE.format(budget=1))
    out = tmp_path / "run"
    proc = flushbench_cli("run", "--suite", str(suite), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["error"].isna() | (trials["error"] == "")).all()
    per_round = trials.groupby("round")["values"].agg(["min", "max"])
    assert per_round.loc[0].tolist() == [16, 16]
    assert (per_round.loc[1:, "min"] == MIN_VALUES).all()
    assert (per_round.loc[1:, "max"] == MIN_VALUES).all()
    assert "3 rounds (2, 3, 4) measured 8 values per case instead of 16" in proc.stderr
    assert json.loads((out / "meta.json").read_text())["schedule"]["budget_s"] == 1.0
    verdicts = pd.read_csv(out / "verdicts.csv")
    tput = verdicts[verdicts["metric"] == "throughput_bps"]
    assert len(tput) == 2 and (tput["rounds"] == 4).all()  # makefile and the twin
    bench = pyperf.BenchmarkSuite.load(str(out / "pyperf.json")).get_benchmarks()[0]
    assert bench.get_nvalue() == 16 + 3 * MIN_VALUES


@pytest.mark.slow
def test_more_rounds_asked_for_turn_the_budget_off(tmp_path: Path) -> None:
    suite = tmp_path / "paced.toml"
    suite.write_text(SUITE.format(budget=1))
    out = tmp_path / "run"
    proc = flushbench_cli("run", "--suite", str(suite), "--out", str(out), "--quiet",
                          "--rounds", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (pd.read_csv(out / "trials.csv")["values"] == 16).all()
    assert "note:" not in proc.stderr
    assert json.loads((out / "meta.json").read_text())["schedule"]["budget_s"] == 0.0
