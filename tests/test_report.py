"""The report, its charts, recommendations and myths, built from synthetic stored runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushbench import cli
from flushbench.analysis.runs import open_runs
from flushbench.case import Case
from flushbench.errors import ResultsError, UsageError
from flushbench.report import charts, document, recommend
from flushbench.results import SCHEMA_VERSION, TABLE, load, sample_path
from synthetic import host, make_meta, small_cases, write_run

FAILED = "stream-sendall-s64-p2-nd1-sbauto-loopback"


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("results")
    a = write_run(root, "alpha", "r1", small_cases(), failed=[FAILED])
    b = write_run(root, "beta", "r1", small_cases(), speed=1.25, seed=7, meta=make_meta(
        "beta", "r1", client=host("beta", kernel="6.8.0-beta")))
    return [a, b]


@pytest.fixture(scope="module")
def built(two_runs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    index = document.build_report(two_runs, out)
    assert index == out / "index.html"
    return out


def test_report_has_html_markdown_and_every_chart(built: Path) -> None:
    """index.html, README.md and a PNG + SVG for every run chart of both runs exist."""
    html = (built / "index.html").read_text(encoding="utf-8")
    md = (built / "README.md").read_text(encoding="utf-8")
    for label in ("alpha-r1", "beta-r1"):
        for name, _, _ in charts.RUN_CHARTS:
            png = built / "charts" / f"{label}-{name}.png"
            svg = png.with_suffix(".svg")
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
            assert b"<svg" in svg.read_bytes()[:500], svg
            assert f'src="charts/{png.name}"' in html
            assert f"](charts/{png.name})" in md
    for name in ("compare-curves", "compare-ratio-beta-r1"):
        assert (built / "charts" / f"{name}.png").is_file()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")


def test_every_referenced_image_exists(built: Path) -> None:
    """No dangling image or link in either rendering: all are relative and on disk."""
    html = (built / "index.html").read_text(encoding="utf-8")
    md = (built / "README.md").read_text(encoding="utf-8")
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html) + re.findall(r"\]\(([^)#]+)\)", md)
    assert len(refs) > 20
    for ref in refs:
        assert not ref.startswith(("/", "http", "file:")), ref
        assert (built / ref).is_file(), ref


def test_report_shows_metadata_of_each_run(built: Path) -> None:
    """CPU, kernel, Python, sysctls and MTU of both ends appear, and the kernel diff is marked."""
    html = (built / "index.html").read_text(encoding="utf-8")
    for needle in ("Synthetic CPU @ 3.0GHz", "6.1.0-test", "6.8.0-beta", "3.11.7",
                   "net.ipv4.tcp_autocorking", "lo MTU", "io.DEFAULT_BUFFER_SIZE"):
        assert needle in html
    row = re.search(r'<tr class="diff"><td>client kernel</td>.*?</tr>', html)
    assert row and "6.8.0-beta" in row.group(0)


def test_failed_case_is_listed_not_charted(built: Path, two_runs: list[Path]) -> None:
    """A failed case shows with its error and is left out of recommendations."""
    md = (built / "README.md").read_text(encoding="utf-8")
    assert f"`{FAILED}`" in md and "PeerError: peer reset the connection" in md
    run = open_runs([two_runs[0]])[0]
    recs = recommend.recommendations(run)
    assert all(FAILED not in cases for cases in recs["cases"])


def test_report_is_byte_identical_when_rebuilt(two_runs: list[Path], built: Path,
                                               tmp_path: Path) -> None:
    """Regenerating the report leaves every file byte-identical, and no path leaks in."""
    before = files(built)
    document.build_report(two_runs, built)
    assert files(built) == before
    for name, data in before.items():
        if name.endswith((".html", ".md", ".svg")):
            assert str(built).encode() not in data and str(two_runs[0]).encode() not in data


def test_changed_data_changes_the_charts(tmp_path: Path) -> None:
    """The identity check is not vacuous: other data gives other chart bytes."""
    cases = [Case("stream", "sendall", s) for s in (64, 1024)]
    a = write_run(tmp_path / "a", "m", "r", cases, seed=1)
    b = write_run(tmp_path / "b", "m", "r", cases, seed=2)
    document.build_report([a], tmp_path / "ra")
    document.build_report([b], tmp_path / "rb")
    name = "charts/m-r-throughput-stream.png"
    assert files(tmp_path / "ra")[name] != files(tmp_path / "rb")[name]


def test_single_case_run_skips_charts_with_a_note(tmp_path: Path) -> None:
    """A run with one rr case reports; charts without data are skipped with one line each."""
    run = write_run(tmp_path, "solo", "r", [Case("rr", "sendall", 64)])
    out = tmp_path / "out"
    document.build_report([run], out)
    md = (out / "README.md").read_text(encoding="utf-8")
    assert "Throughput vs message size (stream): skipped, no data in this run." in md
    assert "The Nagle trap (write-write-read): skipped, no data in this run." in md
    assert (out / "charts" / "solo-r-ccdf-rr.png").is_file()
    assert not (out / "charts" / "solo-r-nagle.png").exists()
    assert md.count(recommend.NOT_MEASURED) >= 3  # sndbuf, sendall and nodelay myths


def test_table_missing_optional_columns_still_reports(tmp_path: Path) -> None:
    """An older-style table without segment, CPU and sndbuf columns loads and reports."""
    run = write_run(tmp_path, "old", "r", small_cases())
    table = pd.read_csv(run / TABLE)
    dropped = ["segs_per_msg", "send_calls_per_msg", "cpu_s_per_gb_client",
               "cpu_s_per_gb_peer", "sndbuf_eff", "rate_rsd", "lat_p999_us", "opt_mismatch"]
    table.drop(columns=dropped).to_csv(run / TABLE, index=False)
    assert set(dropped) <= set(load(run).columns)
    out = tmp_path / "out"
    document.build_report([run], out)
    md = (out / "README.md").read_text(encoding="utf-8")
    for title in ("Segments and send calls per message", "CPU seconds per GB",
                  "SO_SNDBUF requested vs effective"):
        assert f"{title}: skipped, no data in this run." in md
    assert (out / "charts" / "old-r-throughput-stream.png").is_file()


def test_quality_notes_name_the_noisy_cases_and_the_host_speed(tmp_path: Path) -> None:
    """Cases whose values spread over 10 % are listed by id; the probe's range is given."""
    run = write_run(tmp_path, "m", "r", small_cases())
    table = pd.read_csv(run / TABLE)
    noisy = ["stream-makefile-s64K-p2-nd0-sbauto-loopback",
             "stream-sendall-s64-p2-nd1-sbauto-loopback"]
    table.loc[table["case"] == noisy[0], "rate_rsd"] = 0.31
    table.loc[table["case"] == noisy[1], "rate_rsd"] = 0.12
    table.loc[table.index[0], "host_speed"] = table["host_speed"].iloc[1] * 1.5
    table.to_csv(run / TABLE, index=False)
    out = tmp_path / "out"
    document.build_report([run], out)
    md = (out / "README.md").read_text(encoding="utf-8")
    assert "2 case(s) are noisy" in md
    rows = [line for line in md.splitlines() if line.startswith("| `stream-")
            and "±" in line and line.count("|") == 3]
    assert rows == [f"| `{noisy[0]}` | ±31.0% |", f"| `{noisy[1]}` | ±12.0% |"]
    assert "Host CPU speed (a pure-Python probe around every case) ranged 1.00–1.50×" in md


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A run from a newer schema stops the report with an 'upgrade' message."""
    run = write_run(tmp_path, "new", "r", [Case("rr", "sendall", 64)])
    meta = json.loads((run / "meta.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (run / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ResultsError, match="upgrade flushbench"):
        document.build_report([run], tmp_path / "out")


@pytest.mark.parametrize("damage", ["no-dir", "meta", "table", "samples"])
def test_bad_input_is_a_one_line_results_error(tmp_path: Path, damage: str) -> None:
    """Missing directories and corrupt files raise ResultsError with one line."""
    run = write_run(tmp_path, "bad", "r", [Case("rr", "sendall", 64)])
    if damage == "no-dir":
        run = tmp_path / "nowhere"
    elif damage == "meta":
        (run / "meta.json").write_text("{truncated")
    elif damage == "table":
        (run / TABLE).write_bytes(b"\xff\xfe garbage")
    else:
        sample_path(run, "rr-sendall-s64-p2-nd0-sbauto-loopback").write_bytes(b"PK\x03trunc")
    with pytest.raises(ResultsError) as info:
        document.build_report([run], tmp_path / "out")
    assert "\n" not in str(info.value)


def test_unwritable_output_is_a_usage_error(tmp_path: Path) -> None:
    """An --out that cannot be created is a one-line UsageError, not a traceback."""
    run = write_run(tmp_path, "m", "r", [Case("rr", "sendall", 64)])
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UsageError, match="cannot write the report"):
        document.build_report([run], tmp_path / "file" / "out")


def test_stale_charts_of_other_runs_are_removed(tmp_path: Path) -> None:
    """Rebuilding into the same folder for other runs leaves no charts of the old ones."""
    a = write_run(tmp_path, "a", "r", [Case("stream", "sendall", 64)])
    b = write_run(tmp_path, "b", "r", [Case("stream", "sendall", 64)])
    out = tmp_path / "out"
    document.build_report([a], out)
    document.build_report([b], out)
    names = sorted(p.name for p in (out / "charts").iterdir())
    assert names and all(n.startswith("b-r-") for n in names)


def test_recommendations_find_the_nagle_fix(two_runs: list[Path]) -> None:
    """For wwr the best is makefile, far better than sendall, and significantly so."""
    recs = recommend.recommendations(open_runs([two_runs[0]])[0]).set_index("workload")
    wwr = recs.loc["wwr"]
    assert wwr["best"] == "makefile" and "nodelay off" in wwr["options"]
    assert float(wwr["vs sendall"].split("×")[0].replace(",", "")) > 100
    assert "(significant)" in wwr["significance"]
    assert set(recs.index) == {"stream", "rr", "wwr", "pipeline", "file"}
    file_row = recs.loc["file"]
    assert "not significant" in file_row["significance"] or file_row["best"] == "sendall"


def test_recommendation_without_sendall_partner(tmp_path: Path) -> None:
    """When sendall was not measured with the winner's options, the table says so."""
    run = write_run(tmp_path, "m", "r", [Case("stream", "makefile", 64, nodelay=True),
                                         Case("stream", "sendall", 64)])
    recs = recommend.recommendations(open_runs([run])[0])
    assert recs.iloc[0]["best"] == "makefile"
    assert recs.iloc[0]["vs sendall"] == "no sendall case with the same options"


def test_myths_quote_figures_and_case_ids(two_runs: list[Path]) -> None:
    """Each myth gives the measured figure and ids of cases that exist in the run."""
    run = open_runs([two_runs[0]])[0]
    found = {m.claim: m for m in recommend.myths(run)}
    assert len(found) == 4
    ids = set(run.table["case"])
    for myth in found.values():
        assert myth.verdict != recommend.NOT_MEASURED
        assert myth.cases and set(myth.cases) <= ids
        for line in myth.evidence:
            assert re.search(r"`[a-z]+-[^`]+`", line)
    sndbuf = found["SO_SNDBUF=1 flushes the socket"]
    assert sndbuf.verdict.startswith("false") and "kept 4608 B" in sndbuf.evidence[0]
    assert found["TCP_NODELAY always helps"].verdict.startswith("false")
    assert found["sendall is always enough"].verdict.startswith("false")
    assert found["You must flush a socket like a file"].verdict.startswith("false")


def test_nodelay_myth_holds_when_data_says_so(tmp_path: Path) -> None:
    """With only wwr cases, where TCP_NODELAY helps, the myth is not called false."""
    run = write_run(tmp_path, "m", "r", [Case("wwr", "sendall", 64, nodelay=nd)
                                         for nd in (False, True)])
    found = {m.claim: m for m in recommend.myths(open_runs([run])[0])}
    assert found["TCP_NODELAY always helps"].verdict.startswith("holds in this run")


def test_cli_hook_accepts_a_results_folder(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`report RESULTS --out DIR` finds the runs below the folder and prints index.html."""
    for machine in ("m1", "m2"):
        write_run(tmp_path / "results", machine, "r", [Case("rr", "sendall", 64)])
    assert cli.main(["report", str(tmp_path / "results"), "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "o" / "index.html")
    md = (tmp_path / "o" / "README.md").read_text(encoding="utf-8")
    assert "## m1/r" in md and "## m2/r" in md and "## Comparison" in md
    assert cli.build_parser().parse_args(["report", "x"]).out == Path("results/report")


def test_chart_builders_return_none_without_data(tmp_path: Path) -> None:
    """Every chart builder answers None, not an error, for a run with only failed cases."""
    run_dir = write_run(tmp_path, "m", "r", small_cases(),
                        failed=[c.id for c in small_cases()])
    run = open_runs([run_dir])[0]
    assert all(builder(run) is None for _, _, builder in charts.RUN_CHARTS)
    assert recommend.recommendations(run).empty
    assert np.all([m.verdict == recommend.NOT_MEASURED for m in recommend.myths(run)])
