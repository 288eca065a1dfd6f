"""The report, its charts, recommendations and myths, built from synthetic stored runs."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flushbench import cli
from flushbench.analysis.runs import open_runs
from flushbench.case import Case
from flushbench.errors import ResultsError, UsageError
from flushbench.report import charts, document, recommend
from flushbench.results import SCHEMA_VERSION, TABLE, load, sample_path
from synthetic import host, make_meta, small_cases, write_paired_run, write_run

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
    for label in ("alpha/r1", "beta/r1"):
        for name, _, _ in document.RUN_CHARTS:
            png = built / "charts" / f"{charts.slug(label)}-{name}.png"
            svg = png.with_suffix(".svg")
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
            assert b"<svg" in svg.read_bytes()[:500], svg
            assert f'src="charts/{png.name}"' in html
            assert f"](charts/{png.name})" in md
    for name in ("compare-curves", f"compare-ratio-{charts.slug('beta/r1')}"):
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
    name = f"charts/{charts.slug('m/r')}-throughput-stream.png"
    assert files(tmp_path / "ra")[name] != files(tmp_path / "rb")[name]


def test_single_case_run_skips_charts_with_a_note(tmp_path: Path) -> None:
    """A run with one rr case reports; charts without data are skipped with one line each."""
    run = write_run(tmp_path, "solo", "r", [Case("rr", "sendall", 64)])
    out = tmp_path / "out"
    document.build_report([run], out)
    md = (out / "README.md").read_text(encoding="utf-8")
    assert "Throughput vs message size (stream): skipped, no data in this run." in md
    assert "The Nagle trap (write-write-read): skipped, no data in this run." in md
    assert (out / "charts" / f"{charts.slug('solo/r')}-ccdf-rr.png").is_file()
    assert not (out / "charts" / f"{charts.slug('solo/r')}-nagle.png").exists()
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
    assert (out / "charts" / f"{charts.slug('old/r')}-throughput-stream.png").is_file()


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
    assert names and all(n.startswith(charts.slug("b/r")) for n in names)


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
    assert cli.build_parser().parse_args(["report", "x"]).out is None  # RUN/report


def test_chart_builders_return_none_without_data(tmp_path: Path) -> None:
    """Every chart builder answers None, not an error, for a run with only failed cases."""
    run_dir = write_run(tmp_path, "m", "r", small_cases(),
                        failed=[c.id for c in small_cases()])
    run = open_runs([run_dir])[0]
    assert all(builder(run) is None for _, _, builder in document.RUN_CHARTS)
    assert recommend.recommendations(run).empty
    assert np.all([m.verdict == recommend.NOT_MEASURED for m in recommend.myths(run)])


# -- run text in the documents (issue 12, items 5 and 11) -----------------------------------

INJECTION = ("r\n\n# Injected heading\n\n<img src=x onerror=alert(1)>\n\n"
             "[click](javascript:alert(1))\n")


def _cells(tokens: list[Any], row_open: int) -> list[str]:
    """The text of each cell of the table row opened at ``tokens[row_open]``."""
    cells, i = [], row_open + 1
    while tokens[i].type != "tr_close":
        if tokens[i].type == "inline":
            cells.append("".join(c.content for c in tokens[i].children or []))
        i += 1
    return cells


def test_markdown_report_keeps_run_text_as_text(tmp_path: Path) -> None:
    """Finding 5: a newline in a run id injected a heading, raw HTML and a javascript: link
    into README.md, and a bare \\r in an error broke a table row. Read back with a Markdown
    parser: no heading, HTML or link but the report's own, every row whole, a label with a
    backtick in a code span longer than it; the HTML report escapes it all as before."""
    from markdown_it import MarkdownIt

    cases = [Case("rr", "sendall", 64), Case("rr", "makefile", 64)]
    run = write_paired_run(tmp_path / "results", "m", "r", cases,
                           meta=make_meta("m", INJECTION))
    table = run / TABLE
    frame = pd.read_csv(table, dtype=str, keep_default_na=False)
    frame.loc[frame["strategy"] == "makefile", "strategy"] = "make`file*x*"
    frame.loc[0, "error"] = "boom\rcell | x\nnext <b>&amp;</b> `tick`"
    frame.to_csv(table, index=False, quoting=csv.QUOTE_ALL)
    out = tmp_path / "out"
    document.build_report([run], out)
    md = (out / "README.md").read_text(encoding="utf-8")
    assert "\r" not in md
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert not [h for h in headings if h.startswith(("Injected", "<img", "[click"))], headings
    assert sum(h.startswith("m/r") for h in headings) == 1
    kinds = {c.type for t in tokens for c in t.children or []} | {t.type for t in tokens}
    assert "html_block" not in kinds and "html_inline" not in kinds
    links = [c.attrs.get("href") or c.attrs.get("src") for t in tokens
             for c in t.children or [] if c.type in ("link_open", "image")]
    assert links and all(str(link).startswith("charts/") for link in links), links
    rows = [i for i, t in enumerate(tokens) if t.type == "tr_open"]
    widths = {}
    for i in rows:  # each table: its header's width, then every row of the same width
        if tokens[i - 1].type == "thead_open":
            width = len(_cells(tokens, i))
        widths[i] = (len(_cells(tokens, i)), width)
    assert all(n == w for n, w in widths.values())
    errors = [c for i in rows for c in _cells(tokens, i) if c.startswith("boom")]
    assert set(errors) == {"boom cell | x next <b>&amp;</b> tick"}  # `tick` is a code span
    codes = {c.content for t in tokens for c in t.children or [] if c.type == "code_inline"}
    assert "make`file*x*" in codes, codes  # in the verdict table: ``make`file*x*``
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<img src=x" not in page and 'href="javascript' not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "boom cell | x next &lt;b&gt;&amp;amp;&lt;/b&gt; <code>tick</code>" in page


def test_chart_file_names_of_similar_labels_differ(tmp_path: Path) -> None:
    """Finding 11: runs m/r-x and m-r/x wrote the same chart files, so one run's charts
    overwrote the other's; a hash of the whole label now tells them apart."""
    cases = [Case("stream", "sendall", s) for s in (64, 1024)]
    one = write_run(tmp_path / "a", "m", "r-x", cases, seed=1)
    two = write_run(tmp_path / "b", "m-r", "x", cases, seed=2)
    out = tmp_path / "out"
    document.build_report([one, two], out)
    first, second = charts.slug("m/r-x"), charts.slug("m-r/x")
    assert first != second and first.startswith("m-r-x-") and second.startswith("m-r-x-")
    a = (out / "charts" / f"{first}-throughput-stream.png").read_bytes()
    b = (out / "charts" / f"{second}-throughput-stream.png").read_bytes()
    assert a != b
    md = (out / "README.md").read_text(encoding="utf-8")
    assert f"charts/{first}-throughput-stream.png" in md
    assert f"charts/{second}-throughput-stream.png" in md
    assert charts.slug("../../" + "x" * 300).startswith("x" * 60 + "-")
    assert len(charts.slug("y" * 300)) == 69 and charts.slug("").startswith("run-")
