"""Rounds that caught the host in a slow state: found from each trial's GO/READY round trip
(trials.csv ``ready_us``), said once at the top of the verdicts in the terminal and the
report, never a change to a verdict. A real run stores the figure for every trial."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushbench import cli
from flushbench.analysis.hoststate import SLOW_FACTOR, host_state
from flushbench.analysis.runs import open_runs
from flushbench.report import document
from flushbench.run.trials import TRIALS
from synthetic import small_cases, write_paired_run


def trials(ready_by_round: list[float], per_round: int = 12, seed: int = 0,
           spread: float = 0.15) -> pd.DataFrame:
    """Trials whose GO/READY figures scatter around each round's level."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"case": f"c{i}", "round": r, "error": "",
                          "ready_us": level * rng.lognormal(0.0, spread)}
                         for r, level in enumerate(ready_by_round) for i in range(per_round)])


def test_rounds_many_times_slower_are_found() -> None:
    """Rounds 5, 6, 8 and 9 (0-based 4, 5, 7, 8) at about 12x, as in a run of this VM."""
    state = host_state(trials([60, 57, 70, 74, 810, 825, 63, 720, 770, 80]))
    assert state.rounds == 10 and state.slow == (4, 5, 7, 8)
    assert 8 < state.factor < 16
    assert 40 < state.quickest_us < 70


def test_a_steady_host_has_no_slow_round_even_when_its_rounds_wander() -> None:
    """Round medians 42-87 µs within a run (as stored runs here): under the 3x line."""
    state = host_state(trials([42, 55, 61, 87, 70, 48, 66, 80, 59, 45], seed=3))
    assert state.rounds == 10 and state.slow == () and math.isnan(state.factor)


@pytest.mark.parametrize("levels", [[60, 700, 720, 65, 750, 800, 62, 690, 58, 710],
                                    [700, 720, 650, 750, 800, 62, 690, 710, 730, 58]],
                         ids=["6 of 10", "8 of 10"])
def test_most_rounds_slow_still_compares_with_the_fast_ones(levels: list[float]) -> None:
    """Most rounds slow: measured against the quickest round, all of them show."""
    state = host_state(trials(levels))
    assert state.slow == tuple(r for r, v in enumerate(levels) if v > 300)


def test_failed_trials_and_runs_without_the_figure_say_nothing() -> None:
    frame = trials([60] * 10)
    frame.loc[frame["round"] == 3, "error"] = "reset"
    frame.loc[frame["round"] == 3, "ready_us"] = 5000.0  # a failed trial's figure is not read
    assert host_state(frame).slow == ()
    assert host_state(frame.drop(columns=["ready_us"])).rounds == 0
    assert host_state(trials([60, 900])).slow == ()  # two rounds: too few to tell
    assert host_state(pd.DataFrame()).rounds == 0


def test_the_line_is_drawn_at_the_factor() -> None:
    below = host_state(trials([100] * 9 + [100 * SLOW_FACTOR * 0.9], spread=0.0))
    above = host_state(trials([100] * 9 + [100 * SLOW_FACTOR * 1.1], spread=0.0))
    assert below.slow == () and above.slow == (9,)


@pytest.fixture()
def slow_run(tmp_path: Path) -> Path:
    """A synthetic paired run whose rounds 3 and 6 (1-based) caught the host slow."""
    run_dir = write_paired_run(tmp_path / "results", "alpha", "slow", small_cases(), rounds=8)
    frame = pd.read_csv(run_dir / TRIALS)
    frame["ready_us"] = np.where(frame["round"].isin([2, 5]), 780.0, 62.0)
    frame.to_csv(run_dir / TRIALS, index=False)
    return run_dir


def test_show_and_report_warn_above_the_verdicts(slow_run: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["show", str(slow_run)]) == 0
    out = capsys.readouterr().out
    assert "WARNING: 2 of 8 rounds caught the host in a slow state (rounds 3, 6" in out
    assert "780 µs against 62)" in out
    document.build_report([slow_run], tmp_path / "report")
    md = (tmp_path / "report" / "README.md").read_text(encoding="utf-8")
    warning = md.index("**WARNING** — 2 of 8 rounds caught the host in a slow state")
    assert md.index("A/A: ") < warning < md.index("### Verdicts")
    (run,) = open_runs([slow_run])
    assert set(run.verdicts["verdict"]) <= {"better", "worse", "same", "no data"}


def test_a_steady_run_has_no_such_warning(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = write_paired_run(tmp_path / "results", "alpha", "steady", small_cases())
    frame = pd.read_csv(run_dir / TRIALS)
    frame["ready_us"] = 62.0
    frame.to_csv(run_dir / TRIALS, index=False)
    assert cli.main(["show", str(run_dir)]) == 0
    assert "slow state" not in capsys.readouterr().out


def test_compare_names_the_run_that_caught_the_host_slow(slow_run: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    """Comparing a steady run with one that had slow rounds: one warning naming that run, in
    the terminal and in the comparison's document; none for the steady run."""
    steady = write_paired_run(tmp_path / "results", "beta", "steady", small_cases(), rounds=8)
    assert cli.main(["compare", str(steady), str(slow_run), "--out",
                     str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert out.count("caught the host in a slow state") == 1
    assert "alpha/slow: 2 of 8 rounds caught the host" in " ".join(out.split())
    md = next((tmp_path / "cmp").glob("*.md")).read_text(encoding="utf-8")
    assert "**WARNING** — `alpha/slow`: 2 of 8 rounds caught the host in a slow state" in md
    assert "beta/steady`: " not in md


def test_the_warning_words_its_figures_briefly() -> None:
    """3.3x shows as 3.3x (not rounded down to the line it crossed); a hostile figure in
    trials.csv (1e300 µs) still makes one short line."""
    from flushbench.report.verdicts import host_state_sentence

    near = host_state_sentence(host_state(trials([100] * 9 + [330], spread=0.0)))
    assert "round 10: its wake-ups 3.3× as slow" in near and "330 µs against 100)" in near
    huge = host_state_sentence(host_state(trials([100] * 9 + [1e300], spread=0.0)))
    assert "1e+300 µs" in huge and len(huge) < 400
    assert host_state_sentence(host_state(trials([100] * 10))) == ""


def test_a_quiet_run_still_warns_on_stderr(slow_run: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`flushbench run -q` prints no verdicts, but the slow rounds still get their line on
    stderr (stdout keeps only the run directory)."""
    import argparse

    from flushbench.commands import _finish_run
    from flushbench.run.options import RunOutcome

    args = argparse.Namespace(quiet=True, report=False, resume=None)
    assert _finish_run(RunOutcome(slow_run, done=1, visits=1), args) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(slow_run)
    assert "WARNING: 2 of 8 rounds caught the host in a slow state" in " ".join(err.split())


def test_the_report_draws_the_rounds_and_marks_the_slow_ones(slow_run: Path,
                                                             tmp_path: Path) -> None:
    """The Method section shows every round's GO/READY figure, the slow ones ringed and the
    line at 3× the quickest; a run without the figure gets no chart and no note."""
    from flushbench.report import morecharts

    (run,) = open_runs([slow_run])
    fig = morecharts.host_rounds(run)
    assert fig is not None
    (ax,) = fig.axes
    lines = {str(line.get_label()): line for line in ax.get_lines()}
    assert list(lines["a slow round"].get_xdata()) == [3, 6]
    assert list(lines["the round (median of its trials)"].get_xdata()) == list(range(1, 9))
    threshold = next(line for name, line in lines.items() if name.startswith("3× the quickest"))
    assert list(threshold.get_ydata()) == pytest.approx([SLOW_FACTOR * 62.0] * 2)
    document.build_report([slow_run], tmp_path / "report")
    md = (tmp_path / "report" / "README.md").read_text(encoding="utf-8")
    assert md.index("### Method") < md.index("-host.png") < md.index("### Machines")
    plain = write_paired_run(tmp_path / "plain", "alpha", "plain", small_cases())
    (old,) = open_runs([plain])
    assert morecharts.host_rounds(old) is None
    document.build_report([plain], tmp_path / "plain-report")
    md = (tmp_path / "plain-report" / "README.md").read_text(encoding="utf-8")
    assert "-host.png" not in md and "wake-ups" not in md


def test_the_chart_survives_hostile_figures(slow_run: Path) -> None:
    from flushbench.report import charts, morecharts

    frame = pd.read_csv(slow_run / TRIALS)
    frame.loc[0, "ready_us"] = 1.5e308
    frame.to_csv(slow_run / TRIALS, index=False)
    (run,) = open_runs([slow_run])
    fig = morecharts.host_rounds(run)
    assert fig is not None
    paths = charts.save(fig, slow_run / "charts", "host")  # PNG and SVG, drawn for real
    assert paths and all(path.stat().st_size > 0 for path in paths)


def test_no_chart_when_every_figure_is_nonsense(slow_run: Path) -> None:
    from flushbench.report import morecharts

    frame = pd.read_csv(slow_run / TRIALS)
    frame["ready_us"] = 1e300
    frame.to_csv(slow_run / TRIALS, index=False)
    (run,) = open_runs([slow_run])
    assert morecharts.host_rounds(run) is None
