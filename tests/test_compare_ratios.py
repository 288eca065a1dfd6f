"""Across runs and machines: the ratio of ratios (case/baseline in B over case/baseline in A).

Synthetic runs of interleaved rounds (``synthetic.write_rounds_run``): every round has its own
host speed, shared by the cases of the round, so the host's drift and a uniformly slower
machine cancel within each run; only a change of a case against its baseline remains.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from flushbench import cli as fbcli
from flushbench.analysis import ratios
from flushbench.analysis.cells import AA
from flushbench.analysis.runs import open_runs
from flushbench.analysis.verdicts import q_values
from flushbench.case import Case
from flushbench.report import compare as report_compare
from flushbench.run.trials import TRIALS
from synthetic import write_rounds_run, write_run

LOOP = "loopback"
CASES = sorted([
    Case("stream", "sendall", 1024), Case("stream", "makefile", 1024),
    Case("stream", "makefile", 1024, nodelay=True), Case("stream", "sendall", 65536),
    Case("stream", "coalesce", 65536),
    Case("wwr", "sendall", 64), Case("wwr", "makefile", 64),
    Case("wwr", "sendall", 64, nodelay=True), Case("wwr", "makefile", 64, nodelay=True),
    Case("rr", "sendall", 64), Case("rr", "coalesce", 64),
], key=Case.sort_key)
MAKEFILE_1K = "stream-makefile-s1K-p2-nd0-sbauto-loopback"
MAKEFILE_1K_ND1 = "stream-makefile-s1K-p2-nd1-sbauto-loopback"
WWR_MAKEFILE = "wwr-makefile-s64-p2-nd1-sbauto-loopback"
SLOWER_HOST = 1 / 1.3  # run B's host: every case 30 % slower


def headline(frame: pd.DataFrame) -> pd.DataFrame:
    rows: pd.DataFrame = ratios.headline_rows(frame).set_index(["key", "axis"])
    return rows


@pytest.fixture(scope="module")
def slow_host(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """B: the same send paths on a host 30 % slower, drifting differently."""
    root = tmp_path_factory.mktemp("slowhost")
    a = write_rounds_run(root, "alpha", "r1", CASES, seed=1)
    b = write_rounds_run(root, "beta", "r1", CASES, speed=SLOWER_HOST, seed=2, drift=0.15)
    return [a, b]


@pytest.fixture(scope="module")
def one_case_slower(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """B: a 30 % slower host where, besides, two cases lost 20 % against their baselines."""
    root = tmp_path_factory.mktemp("slowcase")
    a = write_rounds_run(root, "alpha", "r1", CASES, seed=3)
    b = write_rounds_run(root, "beta", "r1", CASES, speed=SLOWER_HOST, seed=4,
                         slower={MAKEFILE_1K: 1.2, WWR_MAKEFILE: 1.2})
    return [a, b]


def test_a_uniformly_slower_host_cancels(slow_host: list[Path]) -> None:
    """Absolute figures move by 1.3×; every ratio of ratios stays at 1 and is "same"."""
    runs = open_runs(slow_host)
    frame = ratios.ratio_frame(runs)
    assert set(frame["status"]) == {"ok"}
    assert (frame["verdict"] == "same").all(), frame[frame["verdict"] != "same"]
    assert np.allclose(frame["ratio"], 1.0, atol=0.03)
    assert ((frame["ci_low"] <= 1.0 + 1e-9) & (frame["ci_high"] >= 1.0 - 1e-9)).mean() >= 0.9
    # the per-run ratios are those of verdicts.csv (the same per-round pairing)
    judged = pd.read_csv(slow_host[0] / "verdicts.csv")
    mine = frame.set_index(["key", "baseline", "metric"])["ref_ratio"]
    for row in judged.itertuples():
        assert mine[(row.case, row.baseline, row.metric)] == pytest.approx(row.ratio, rel=1e-4)
    # while the absolute comparison sees the slower machine in every case
    absolute = report_compare.compare_runs(slow_host)
    thr = absolute[absolute["metric"] == "throughput"]
    assert np.allclose(thr["ratio"], SLOWER_HOST, rtol=0.06)
    assert (~absolute["better"].astype(bool)).all()


def test_a_case_slower_against_its_baseline_is_worse(one_case_slower: list[Path]) -> None:
    """Only the slowed cases are "worse" (about 1/1.2 throughput, 1.2× p50); a case whose
    *baseline* was slowed gained on it; everything else is "same"."""
    frame = ratios.ratio_frame(open_runs(one_case_slower))
    rows = headline(frame)
    worse = rows.loc[(MAKEFILE_1K, "strategy")]
    assert worse["verdict"] == "worse" and worse["metric"] == "throughput_bps"
    assert worse["ratio"] == pytest.approx(1 / 1.2, rel=0.03)
    assert worse["ci_high"] < 1.0 and worse["q_value"] < 0.05
    assert worse["run_ratio"] / worse["ref_ratio"] == pytest.approx(worse["ratio"])
    for axis in ("strategy", "nodelay"):  # its p50 went up against both of its baselines
        lat = rows.loc[(WWR_MAKEFILE, axis)]
        assert lat["verdict"] == "worse" and lat["metric"] == "lat_p50_us"
        assert lat["ratio"] == pytest.approx(1.2, rel=0.03)
    gained = rows.loc[(MAKEFILE_1K_ND1, "nodelay")]  # its baseline is the slowed case
    assert gained["verdict"] == "better" and gained["ratio"] == pytest.approx(1.2, rel=0.03)
    moved = {MAKEFILE_1K, WWR_MAKEFILE, MAKEFILE_1K_ND1}
    rest = rows[~rows.index.get_level_values("key").isin(moved)]
    assert len(rest) >= 4 and (rest["verdict"] == "same").all()
    twins = rows[rows.index.get_level_values("axis") == AA]
    assert len(twins) == 4 and (twins["verdict"] == "same").all()
    # segments per message did not change anywhere: ratio 1 exactly, "same"
    segs = frame[frame["metric"] == "segs_per_msg"]
    assert np.allclose(segs["ratio"], 1.0) and (segs["verdict"] == "same").all()


def test_welch_on_the_per_round_log_ratios(one_case_slower: list[Path]) -> None:
    """The interval and p are Welch's t on d_A and d_B, computed here by hand; q is BH."""
    runs = open_runs(one_case_slower)
    frame = ratios.ratio_frame(runs)
    trials = [pd.read_csv(r / TRIALS) for r in one_case_slower]
    base = "stream-sendall-s1K-p2-nd0-sbauto-loopback"
    d = []
    for t in trials:
        table = t.pivot_table(index="round", columns="case", values="throughput_bps")
        d.append(np.log(table[MAKEFILE_1K] / table[base]).to_numpy())
    d_a, d_b = d
    va, vb = d_a.var(ddof=1) / d_a.size, d_b.var(ddof=1) / d_b.size
    df = (va + vb) ** 2 / (va**2 / (d_a.size - 1) + vb**2 / (d_b.size - 1))
    diff = d_b.mean() - d_a.mean()
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    p = 2 * stats.t.sf(abs(diff) / math.sqrt(va + vb), df)
    row = headline(frame).loc[(MAKEFILE_1K, "strategy")]
    assert row["ratio"] == pytest.approx(math.exp(diff))
    assert row["ci_low"] == pytest.approx(math.exp(diff - half))
    assert row["ci_high"] == pytest.approx(math.exp(diff + half))
    assert row["p_value"] == pytest.approx(p)
    assert row["ref_rounds"] == 8 and row["run_rounds"] == 8
    assert np.allclose(frame["q_value"], q_values(frame["p_value"]), equal_nan=True)
    assert (frame["q_value"] >= frame["p_value"] - 1e-12).all()


def test_failed_trials_leave_their_round_out(tmp_path: Path) -> None:
    """A round where the case or its baseline failed does not count for that pair."""
    a = write_rounds_run(tmp_path, "a", "r", CASES, seed=5)
    b = write_rounds_run(tmp_path, "b", "r", CASES, seed=6)
    trials = pd.read_csv(b / TRIALS, keep_default_na=False, na_values=[""])
    hit = (trials["case"] == MAKEFILE_1K) & trials["round"].isin([0, 3])
    trials["error"] = trials["error"].astype(object)
    trials.loc[hit, "error"] = "PeerError: reset"
    trials.loc[hit, "throughput_bps"] = 1.0  # a failed trial's figures must not count
    trials.to_csv(b / TRIALS, index=False)
    rows = headline(ratios.ratio_frame(open_runs([a, b])))
    assert rows.loc[(MAKEFILE_1K, "strategy"), "run_rounds"] == 6
    assert rows.loc[(MAKEFILE_1K, "strategy"), "ref_rounds"] == 8
    assert rows.loc[(MAKEFILE_1K, "strategy"), "verdict"] == "same"


def test_schema_1_runs_compare_as_before(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Without trials.csv: no ratio of ratios anywhere, the outputs of before."""
    a = write_run(tmp_path, "a", "r", CASES)
    b = write_run(tmp_path, "b", "r", CASES, speed=SLOWER_HOST, seed=2)
    frame = ratios.ratio_frame(open_runs([a, b]))
    assert frame.empty and list(frame.columns) == ratios.COLUMNS
    assert frame.attrs["without_trials"] == ["a/r", "b/r"]
    out = tmp_path / "cmp"
    (out).mkdir()
    (out / ratios.RATIOS).write_text("left from an earlier comparison\n")
    assert fbcli.main(["compare", str(a), str(b), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "b/r vs a/r (reference)" in text and "▼ worse" in text
    assert "ratio of ratios" not in text and report_compare.DRIFT_NOTE not in text
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "charts", "compare.csv",
                                                    "index.html"]
    md = (out / "README.md").read_text(encoding="utf-8")
    assert "Ratio of ratios" not in md and "Geometric mean per workload" in md


def test_a_run_without_trials_among_others(tmp_path: Path) -> None:
    """Three runs, the middle one from before rounds: ratios for the third only, a note."""
    a = write_rounds_run(tmp_path, "a", "r", CASES, seed=1)
    b = write_run(tmp_path, "b", "r", CASES, seed=2)
    c = write_rounds_run(tmp_path, "c", "r", CASES, seed=3, speed=SLOWER_HOST)
    out = tmp_path / "cmp"
    report_compare.compare_runs([a, b, c], out)
    csv = pd.read_csv(out / ratios.RATIOS)
    assert list(csv.columns) == ratios.COLUMNS and set(csv["run"]) == {"c/r"}
    md = (out / "README.md").read_text(encoding="utf-8")
    assert "No ratio of ratios for b/r" in md and "c/r vs a/r: ratio of ratios" in md
    assert "b/r vs a/r: ratio of ratios" not in md


def test_cli_and_outputs(one_case_slower: list[Path], tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    """The terminal shows the ratio table first and labels the absolute one; --out writes
    compare-ratios.csv (every metric) and a Markdown/HTML section."""
    out = tmp_path / "cmp"
    assert fbcli.main(["compare", *map(str, one_case_slower), "--out", str(out)]) == 0
    raw = capsys.readouterr().out
    text = " ".join(raw.split())  # rich folds long titles
    assert "beta/r1 vs alpha/r1: ratio of ratios" in text
    assert text.index("ratio of ratios") < text.index("beta/r1 vs alpha/r1 (reference)")
    assert report_compare.DRIFT_NOTE.split(",")[0] in text
    assert "3 worse" in text and "A/A twins called different: 0 of 4" in text
    block = raw[raw.index("\nstream 1 KiB"):]  # the cell, then its cases by label
    line = next(ln for ln in block.splitlines() if re.match(r" makefile +sendall ", ln))
    assert "▼ worse" in line and "0.83" in line
    csv = pd.read_csv(out / ratios.RATIOS)
    assert list(csv.columns) == ratios.COLUMNS
    assert set(csv["metric"]) == {"throughput_bps", "segs_per_msg", "lat_p50_us", "lat_p99_us"}
    assert pd.read_csv(out / "compare.csv").shape[0] == len(CASES) + 4  # + the twins
    md = (out / "README.md").read_text(encoding="utf-8")
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "Ratio of ratios" in md and "Ratio of ratios" in html
    assert md.index("Ratio of ratios") < md.index("Geometric mean per workload")
    assert f"`{MAKEFILE_1K}`" in md and "▼ worse" in md


def test_twins_align_across_transports(tmp_path: Path) -> None:
    """Runs on different transports align without the suffix, A/A twins included."""
    a = write_rounds_run(tmp_path, "a", "r", CASES, seed=1)
    b = write_rounds_run(tmp_path, "b", "r", [c.with_transport("emulated") for c in CASES],
                         seed=2, transport="emulated")
    frame = ratios.ratio_frame(open_runs([a, b]))
    assert set(frame["status"]) == {"ok"}
    assert "rr-sendall-s64-p2-nd0-sbauto-twin" in set(frame["key"])
    assert (frame["verdict"] == "same").all()


def test_a_comparison_in_one_run_only(tmp_path: Path) -> None:
    """A comparison the other run did not make keeps a row with its status, no verdict."""
    a = write_rounds_run(tmp_path, "a", "r", CASES, seed=1)
    b = write_rounds_run(tmp_path, "b", "r", [c for c in CASES if c.id != MAKEFILE_1K_ND1],
                         seed=2)
    rows = headline(ratios.ratio_frame(open_runs([a, b])))
    gone = rows.loc[(MAKEFILE_1K_ND1, "nodelay")]
    assert gone["status"] == "missing in b/r" and gone["verdict"] == "no data"
    assert math.isnan(gone["ratio"]) and np.isfinite(gone["ref_ratio"])


def test_ratio_of_ratios_edges() -> None:
    """Under two rounds: None; no spread in either run: exact, p 1 when equal, else 0."""
    assert ratios.ratio_of_ratios(np.array([0.1]), np.array([0.1, 0.2])) is None
    flat = ratios.ratio_of_ratios(np.full(5, math.log(0.5)), np.full(4, math.log(0.5)))
    assert flat is not None and flat.ratio == pytest.approx(1.0) and flat.p_value == 1.0
    moved = ratios.ratio_of_ratios(np.zeros(5), np.full(5, math.log(2.0)))
    assert moved is not None and moved.low == moved.high == pytest.approx(2.0)
    assert moved.p_value == 0.0 and moved.rounds == 5


def test_ratios_against_a_timer_are_marked(slow_host: list[Path]) -> None:
    """A ratio over 10× from 1 (a case out of the delayed-ACK trap against a baseline in it)
    is marked †, counted in the summary line, and the intro says why it does not travel."""
    runs = open_runs(slow_host)
    frame = ratios.ratio_frame(runs)
    shown = report_compare.ratio_display(frame, runs[1].label)
    marked = shown[shown["verdict"].str.endswith(" †")]
    assert set(marked["case"]) == {"wwr-makefile-s64-p2-nd0-sbauto-loopback",
                                   "wwr-sendall-s64-p2-nd1-sbauto-loopback"}
    assert not shown.loc[~shown.index.isin(marked.index), "verdict"].str.contains("†").any()
    line = report_compare.ratio_summary(frame, runs[1].label)
    assert "† 2 over 10× from 1: one side waits on a timer" in line
    assert "marked †" in report_compare.ratio_intro(runs[0].label)
    assert ratios.timer_bound(0.0016) and ratios.timer_bound(1.0, 43.0, metric="lat_p99_us")
    assert not ratios.timer_bound(0.25, 3.0, math.nan, 0.0)
    # segments per message are counted, not timed: 612x more with TCP_NODELAY is no timer
    assert not ratios.timer_bound(612.0, metric="segs_per_msg")
    every = report_compare.ratio_display(frame, runs[1].label, headline=False)
    segs = every[every["metric"] == ratios.METRIC_LABELS["segs_per_msg"]]
    assert len(segs) and not segs["verdict"].str.contains("†").any()
