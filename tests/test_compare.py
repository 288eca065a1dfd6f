"""Cross-run comparison: alignment, ratios with intervals, geometric means, outputs, CLI."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushbench import cli as fbcli
from flushbench.analysis import compare
from flushbench.analysis.runs import open_runs
from flushbench.analysis.stats import compare_latency, compare_rates
from flushbench.case import Case
from flushbench.errors import ResultsError
from flushbench.report import charts, document
from flushbench.report import compare as report_compare
from flushbench.results import SCHEMA_VERSION, TABLE
from synthetic import host, make_meta, small_cases, write_run

SPEED = 1.25  # the second machine is 25 % faster in every case


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("results")
    cases = small_cases()
    only_a = Case("stream", "send", 1024)
    only_b = Case("rr", "coalesce", 64)
    a = write_run(root, "alpha", "r1", [*cases, only_a])
    b = write_run(root, "beta", "r1", [*cases, only_b], speed=SPEED, seed=9,
                  failed=["wwr-makefile-s64-p2-nd1-sbauto-loopback"],
                  meta=make_meta("beta", "r1", client=host("beta", kernel="6.8.0",
                                                          python="3.12.3", mtu=1500)))
    return [a, b]


@pytest.fixture(scope="module")
def frame(pair: list[Path]) -> pd.DataFrame:
    return report_compare.compare_runs(pair, None)


def test_ratios_recover_the_true_speed_up(frame: pd.DataFrame) -> None:
    """Throughput ratios are about 1.25, p50 latency ratios about 1/1.25, all significant."""
    ok = frame[frame["status"] == "ok"]
    assert len(ok) == len(small_cases()) - 1
    thr = ok[ok["metric"] == "throughput"]
    lat = ok[ok["metric"] == "p50 latency"]
    assert not thr.empty and not lat.empty
    assert np.allclose(thr["ratio"], SPEED, rtol=0.06)
    assert np.allclose(lat["ratio"], 1 / SPEED, rtol=0.06)
    assert (ok["ci_low"] < ok["ratio"]).all() and (ok["ratio"] < ok["ci_high"]).all()
    assert ok["significant"].all() and ok["better"].astype(bool).all()


def test_host_speed_ratio_sits_beside_the_workloads(pair: list[Path]) -> None:
    """The host CPU probe's ratio is reported with the workloads' geometric means."""
    host = compare.host_speed(open_runs(pair))
    assert list(host["run"]) == ["beta/r1"]
    assert host["geomean ratio"].iloc[0] == pytest.approx(SPEED)
    assert host["cases"].iloc[0] == len(small_cases()) - 1  # failed and one-sided left out


def test_cases_in_only_some_runs_are_listed(frame: pd.DataFrame) -> None:
    """A case missing on either side, or failed, keeps a row with its status."""
    status = frame.set_index("key")["status"]
    assert status["stream-send-s1K-p2-nd0-sbauto-loopback"] == "missing in beta/r1"
    assert status["rr-coalesce-s64-p2-nd0-sbauto-loopback"] == "missing in the reference"
    assert status["wwr-makefile-s64-p2-nd1-sbauto-loopback"] == "failed in beta/r1"
    cov = compare.coverage(frame)
    assert len(cov) == 3 and set(cov["run"]) == {"beta/r1"}
    assert frame.loc[frame["status"] != "ok", "ratio"].isna().all()


def test_three_runs_with_a_case_only_in_the_last(tmp_path: Path) -> None:
    """Each run is compared to the first; a case only the third run has is listed for it."""
    base = [Case("stream", "sendall", 1024)]
    extra = Case("rr", "sendall", 64)
    a = write_run(tmp_path, "a", "r", base)
    b = write_run(tmp_path, "b", "r", base, speed=1.5)
    c = write_run(tmp_path, "c", "r", [*base, extra], speed=2.0)
    out = report_compare.compare_runs([a, b, c])
    assert sorted(set(out["run"])) == ["b/r", "c/r"]
    assert len(out[out["run"] == "b/r"]) == 1
    only = out[out["key"] == extra.id]
    assert list(only["run"]) == ["c/r"] and list(only["status"]) == ["missing in the reference"]
    ratios = out[out["status"] == "ok"].set_index("run")["ratio"]
    assert math.isclose(ratios["b/r"], 1.5, rel_tol=0.06)
    assert math.isclose(ratios["c/r"], 2.0, rel_tol=0.06)


def test_geometric_mean_per_workload(frame: pd.DataFrame) -> None:
    """One geometric mean per workload, from finished cases only."""
    geo = compare.geomeans(frame).set_index("workload")
    assert set(geo.index) == {"stream", "rr", "wwr", "pipeline", "file"}
    assert math.isclose(geo.loc["stream", "geomean ratio"], SPEED, rel_tol=0.03)
    assert math.isclose(geo.loc["wwr", "geomean ratio"], 1 / SPEED, rel_tol=0.03)
    assert geo.loc["wwr", "cases"] == 4  # 5 wwr cases, one failed in beta
    assert (geo["significantly worse"] == 0).all()


def test_latency_uses_per_value_p50s_and_falls_back_to_pooled(tmp_path: Path) -> None:
    """With ops_per_value the p50s of values are the observations; without, a bootstrap."""
    cases = [Case("rr", "sendall", 64), Case("wwr", "makefile", 64)]
    a = write_run(tmp_path / "with", "a", "r", cases)
    b = write_run(tmp_path / "with", "b", "r", cases, speed=SPEED, seed=4)
    out = report_compare.compare_runs([a, b])
    assert (out["method"] == "Welch t on log per-value p50").all()
    assert np.allclose(out["ratio"], 1 / SPEED, rtol=0.06) and out["significant"].all()
    c = write_run(tmp_path / "without", "a", "r", cases, ops_per_value=False)
    d = write_run(tmp_path / "without", "b", "r", cases, speed=SPEED, seed=4,
                  ops_per_value=False)
    pooled = report_compare.compare_runs([c, d])
    assert pooled["method"].str.startswith("bootstrap of pooled p50").all()
    assert np.allclose(pooled["ratio"], 1 / SPEED, rtol=0.06)


def test_identical_runs_are_within_noise(tmp_path: Path) -> None:
    """Two runs with the same data give ratio 1 and no significant case."""
    a = write_run(tmp_path, "a", "r", small_cases(), seed=3)
    b = write_run(tmp_path, "b", "r", small_cases(), seed=3)
    out = report_compare.compare_runs([a, b])
    assert np.allclose(out["ratio"], 1.0)
    assert not out["significant"].any()


def test_metadata_diff_marks_what_differs(pair: list[Path]) -> None:
    """Kernel, Python and MTU differences are flagged; the CPU model is not."""
    diff = compare.metadata_diff(open_runs(pair)).set_index("field")
    for field in ("client kernel", "client python", "client lo mtu", "peer kernel"):
        assert diff.loc[field, "differs"], field
    assert diff.loc["client kernel", "beta/r1"] == "6.8.0"
    for field in ("client cpu_model", "transport", "client net.ipv4.tcp_autocorking"):
        assert not diff.loc[field, "differs"], field


def test_metadata_diff_says_when_the_peers_took_in_stream_data_differently(
        tmp_path: Path) -> None:
    """A run from before the sink was recorded copied; set beside a discarding one, the
    difference is flagged (it moves stream figures: measure/sink.py)."""
    old = write_run(tmp_path, "a", "old", small_cases())
    new = write_run(tmp_path, "a", "new", small_cases())
    meta = json.loads((new / "meta.json").read_text())
    meta["peer_sink"] = "discard"
    (new / "meta.json").write_text(json.dumps(meta))
    diff = compare.metadata_diff(open_runs([old, new])).set_index("field")
    assert list(diff.loc["peer sink", ["a/old", "a/new"]]) == ["copy", "discard"]
    assert diff.loc["peer sink", "differs"]


def test_metadata_diff_counts_the_cases_a_discarding_peer_copied_for(tmp_path: Path) -> None:
    """Two discarding runs differ when one copied for some cases (cells with a TLS or unix
    case): those cases' ratios were measured with a receiver doing other work."""
    runs = []
    for name, copied in (("plain", 0), ("mixed", 2)):
        run = write_run(tmp_path, "a", name, small_cases())
        meta = json.loads((run / "meta.json").read_text())
        meta["peer_sink"] = "discard"
        (run / "meta.json").write_text(json.dumps(meta))
        table = pd.read_csv(run / "table.csv", keep_default_na=False)
        table["peer_sink"] = ["copy"] * copied + ["discard"] * (len(table) - copied)
        table.to_csv(run / "table.csv", index=False)
        runs.append(run)
    diff = compare.metadata_diff(open_runs(runs)).set_index("field")
    assert list(diff.loc["peer sink", ["a/plain", "a/mixed"]]) == ["discard",
                                                                   "discard (copy: 2 cases)"]
    assert diff.loc["peer sink", "differs"]


def test_runs_with_different_transports_align_without_the_suffix(tmp_path: Path) -> None:
    """A loopback run and an emulated run are compared case by case."""
    cases = [Case("stream", "sendall", 1024), Case("rr", "sendall", 64)]
    a = write_run(tmp_path, "a", "r", cases)
    b = write_run(tmp_path, "b", "r", [c.with_transport("emulated") for c in cases], seed=2,
                  meta=make_meta("b", "r", transport="emulated"))
    out = report_compare.compare_runs([a, b])
    assert list(out["status"]) == ["ok", "ok"]
    assert set(out["key"]) == {"stream-sendall-s1K-p2-nd0-sbauto", "rr-sendall-s64-p2-nd0-sbauto"}
    assert "transport" in out.attrs["aligned_by"]
    host = compare.host_speed(open_runs([a, b]))  # the probe aligns the same way
    assert list(host["cases"]) == [2] and host["geomean ratio"].iloc[0] == pytest.approx(1.0)


def test_mismatched_suites_have_no_common_case(tmp_path: Path) -> None:
    """Runs of different suites compare to an all-missing table, not an error."""
    a = write_run(tmp_path, "a", "r", [Case("stream", "sendall", 64)])
    b = write_run(tmp_path, "b", "r", [Case("rr", "sendall", 64)])
    out = report_compare.compare_runs([a, b], tmp_path / "out")
    assert sorted(out["status"]) == ["missing in b/r", "missing in the reference"]
    assert compare.geomeans(out).empty
    md = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "Ratio chart skipped" in md


def test_runs_without_samples_fall_back_to_table_values(tmp_path: Path) -> None:
    """Without samples the ratio comes from the table, with no interval and no mark."""
    cases = [Case("stream", "sendall", 1024), Case("wwr", "sendall", 64)]
    a = write_run(tmp_path, "a", "r", cases, no_samples=[c.id for c in cases])
    b = write_run(tmp_path, "b", "r", cases, speed=2.0, no_samples=[c.id for c in cases])
    out = report_compare.compare_runs([a, b])
    assert (out["method"] == "table values").all()
    assert out["ci_low"].isna().all() and not out["significant"].any()
    assert np.allclose(out["ratio"], [2.0, 0.5], rtol=0.1)


def test_outputs_csv_markdown_html_and_charts(pair: list[Path], tmp_path: Path) -> None:
    """--out writes a CSV that round-trips, Markdown and HTML that show existing charts."""
    out = tmp_path / "cmp"
    frame = report_compare.compare_runs(pair, out)
    csv = pd.read_csv(out / "compare.csv", keep_default_na=False, na_values=[""])
    assert list(csv.columns) == compare.COLUMNS and len(csv) == len(frame)
    assert np.allclose(csv["ratio"].dropna(), frame["ratio"].dropna(), rtol=1e-5)
    html = (out / "index.html").read_text(encoding="utf-8")
    md = (out / "README.md").read_text(encoding="utf-8")
    for name in ("compare-curves", f"compare-ratio-{charts.slug('beta/r1')}"):
        assert (out / "charts" / f"{name}.png").is_file()
        assert f"charts/{name}.png" in html and f"charts/{name}.png" in md
    assert "Geometric mean per workload" in md and "6.8.0" in md


def test_cli_prints_a_table_and_refuses_one_run(pair: list[Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The compare hook prints the per-case table; a single run is a usage error."""
    assert fbcli.main(["compare", *map(str, pair)]) == 0
    text = capsys.readouterr().out
    assert "beta/r1 vs alpha/r1" in text and "▲ better" in text
    assert re.search(r"^stream 64 KiB *\n(.*\n)*? sendall +[0-9.]+ Gbit/s", text, re.M)  # a cell
    assert "missing in the reference" in text
    assert fbcli.main(["compare", str(pair[0])]) == 2
    assert "at least two runs" in capsys.readouterr().err
    assert fbcli.main(["compare", str(pair[0].parent.parent)]) == 0  # a folder


def test_newer_schema_and_corrupt_runs_are_refused(pair: list[Path], tmp_path: Path) -> None:
    """A newer schema or a broken table gives a one-line ResultsError."""
    newer = write_run(tmp_path, "n", "r", [Case("rr", "sendall", 64)])
    meta = json.loads((newer / "meta.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (newer / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ResultsError, match="upgrade"):
        report_compare.compare_runs([pair[0], newer])
    broken = write_run(tmp_path, "c", "r", [Case("rr", "sendall", 64)])
    (broken / TABLE).write_text("workload\n")
    with pytest.raises(ResultsError, match="not a flushbench table"):
        report_compare.compare_runs([pair[0], broken])
    with pytest.raises(ResultsError, match="does not exist"):
        report_compare.compare_runs([pair[0], tmp_path / "missing"])


def test_statistics_come_out_the_same_every_time() -> None:
    """The bootstrap is seeded: the same data gives the same interval."""
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(3, 0.2, 5000), rng.lognormal(3.1, 0.2, 5000)
    first, second = compare_latency(a, b), compare_latency(a, b)
    assert first == second and first is not None and first.significant
    assert first.low < math.exp(0.1) < first.high
    rates = compare_rates(np.array([1.0, 1.02, 0.98]), np.array([1.5, 1.52, 1.49]))
    assert rates is not None and rates.significant and rates.p_value < 0.001
    assert compare_rates(np.array([1.0]), np.array([2.0])) is None  # one value: no test


def test_run_text_stays_text_in_csv_and_charts(tmp_path: Path) -> None:
    """A case id a spreadsheet would run as a formula (ids may start with '-') gets a
    leading ', and a "$" in a strategy name is drawn as a character (no mathtext parse
    error)."""
    cases = [Case("stream", "sendall", 1024), Case("stream", "makefile", 1024)]
    runs = [write_run(tmp_path / "results", m, "r", cases, seed=i)
            for i, m in enumerate(("alpha", "beta"), 1)]
    hostile = "-2-3-stream"
    for run in runs:
        table = run / "table.csv"
        frame = pd.read_csv(table, keep_default_na=False)
        frame.loc[0, "case"] = hostile
        frame.loc[1, "strategy"] = "a$\\frac{$b"
        frame.to_csv(table, index=False)
    out = tmp_path / "cmp"
    report_compare.compare_runs(runs, out)
    text = (out / "compare.csv").read_text(encoding="utf-8")
    assert "'-2-3-stream" in text and ",-2-3-stream" not in text
    index = document.build_report(runs, tmp_path / "report")
    assert index.exists() and any((tmp_path / "report" / "charts").glob("*.png"))
