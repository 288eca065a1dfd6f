"""The report's "Many connections: drivers" section (report/concurrency.py), built from
synthetic runs of schema 2 with driver cases: its charts, figures, verdict table and the
peer's CPU share; absent from a run without driver cases; hostile driver text stays text."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flushbench.analysis.runs import open_runs
from flushbench.case import Case
from flushbench.report import charts, concurrency, document
from flushbench.report.markup import Doc
from synthetic import write_paired_run
from test_fuzz_runs import check_documents

DRIVERS = ("threads", "selectors", "asyncio")
CONNS = (1, 4, 64)
# the figures the model gives each driver (a driver case's own columns; synthetic.case_data
# writes none of them): Jain's index falls with connections for threads only
FAIRNESS = {"threads": 0.6, "selectors": 0.99, "asyncio": 0.98}
CHART_NAMES = ("drivers-throughput", "drivers-p99", "drivers-fairness")


def driver_cases(conns: tuple[int, ...] = CONNS) -> list[Case]:
    cases = [Case("stream", "sendall", 16384, conns=n, driver=d) for n in conns for d in DRIVERS]
    cases += [Case("rr", "sendall", 64, nodelay=True, conns=n, driver=d)
              for n in conns for d in DRIVERS]
    return cases


def add_connection_figures(run: Path, peer_share: float = 0.4,
                           driver_text: dict[str, str] | None = None) -> None:
    """Fill in what a real driver case writes: fairness, the extreme connections, CPU shares;
    ``driver_text`` replaces a case's driver cell (case id -> text)."""
    path = run / "table.csv"
    table = pd.read_csv(path, keep_default_na=False, dtype=str)
    for i, row in table.iterrows():
        conns = int(row["conns"])
        jain = FAIRNESS[row["driver"]] ** (conns / 16) if conns > 1 else 1.0
        per_conn = float(row["throughput_bps"]) / conns
        table.loc[i, "jain_fairness"] = f"{jain:.6g}"
        table.loc[i, "conn_min_bps"] = f"{per_conn * jain:.6g}"
        table.loc[i, "conn_max_bps"] = f"{per_conn / jain:.6g}"
        table.loc[i, "cpu_share_client"] = "1.1"
        table.loc[i, "cpu_share_peer"] = f"{peer_share * (1 + conns / 1000):.6g}"
        table.loc[i, "driver"] = (driver_text or {}).get(str(row["case"]), row["driver"])
    table.to_csv(path, index=False)


@pytest.fixture(scope="module")
def driver_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = write_paired_run(tmp_path_factory.mktemp("results"), "vm", "conc", driver_cases(),
                           rounds=4)
    add_connection_figures(run)
    return run


@pytest.fixture(scope="module")
def built(driver_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    document.build_report([driver_run], out)
    return out


def section_only(run: Path, out: Path) -> str:
    """Only this section of ``run``, written as the report writes its documents (faster than
    the whole report: the run's other charts are not drawn); returns the Markdown."""
    doc = Doc("flushbench report")
    concurrency.add_section(doc, open_runs([run])[0], out / "charts", "charts")
    (out / "README.md").write_text(doc.markdown(), encoding="utf-8")
    (out / "index.html").write_text(doc.page(), encoding="utf-8")
    return doc.markdown()


def section(text: str, start: str, end: str) -> str:
    """The part of a document from the heading ``start`` to the next ``end``."""
    head = text.index(start)
    return text[head:text.index(end, head + len(start))]


def test_the_section_comes_before_the_method(built: Path) -> None:
    md = (built / "README.md").read_text(encoding="utf-8")
    html = (built / "index.html").read_text(encoding="utf-8")
    assert md.count("### Many connections: drivers") == 1
    assert md.index("No single-connection case of this run finished") \
        < md.index("### Many connections: drivers") < md.index("### Method") \
        < md.index("### Machines")
    assert "### Recommendations" not in md and "### More charts" not in md
    assert '<h3 id="many-connections-drivers">Many connections: drivers</h3>' in html


def test_each_chart_is_drawn_and_linked_in_both_renderings(built: Path) -> None:
    md = (built / "README.md").read_text(encoding="utf-8")
    html = (built / "index.html").read_text(encoding="utf-8")
    part = section(md, "### Many connections: drivers", "### Method")
    slug = charts.slug("vm/conc")
    for name in CHART_NAMES:
        png = built / "charts" / f"{slug}-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert b"<svg" in png.with_suffix(".svg").read_bytes()[:500]
        assert f"](charts/{png.name})" in part and f"(charts/{slug}-{name}.svg)" in part
        assert f'src="charts/{png.name}"' in html
    for _, title, _ in concurrency.CHARTS:
        assert f'alt="{title}"' in html
    assert "skipped, no data" not in part


def test_figures_tables_show_every_driver_case(built: Path) -> None:
    md = (built / "README.md").read_text(encoding="utf-8")
    part = section(md, "### Many connections: drivers", "### Method")
    stream = section(part, "#### stream: each driver case's figures", "####")
    rr = section(part, "#### rr: each driver case's figures", "####")
    assert "| connections | driver | throughput | Jain |" in stream
    assert "| connections | driver | requests/s | p50 | p99 | p99.9 | Jain |" in rr
    for n in CONNS:
        for d in DRIVERS:
            assert f"`stream-sendall-s16K-p2-nd0-sbauto-c{n}-{d}-loopback`" in stream
            assert f"`rr-sendall-s64-p2-nd1-sbauto-c{n}-{d}-loopback`" in rr
    assert "-twin`" not in stream + rr  # the A/A twins are in the verdicts, not here
    threads64 = next(line for line in stream.splitlines() if line.startswith("| 64 | `threads`"))
    assert f"| {0.6 ** 4:.3g} |" in threads64  # Jain's index as the table holds it


def test_verdict_table_has_each_driver_against_threads_per_connection_count(
        built: Path, driver_run: Path) -> None:
    md = (built / "README.md").read_text(encoding="utf-8")
    part = section(md, "### Many connections: drivers", "### Method")
    stream = section(part, "#### stream · 16 KiB sendall · drivers against threads", "\n\n#")
    assert "| connections | metric | selectors | asyncio | threads twin (A/A) |" in stream
    verdicts = pd.read_csv(driver_run / "verdicts.csv")
    driver = verdicts[verdicts["axis"] == "driver"]
    assert len(driver) > 0 and driver["baseline"].str.contains("-threads-").all()
    row = driver[(driver["case"] == "stream-sendall-s16K-p2-nd0-sbauto-c64-selectors-loopback")
                 & (driver["metric"] == "throughput_bps")].iloc[0]
    factor = f"{row['ratio']:.3g}×"
    line = next(x for x in stream.splitlines() if x.startswith("| 64 | throughput |"))
    assert f"| {factor} (" in line and (" same |" in line or "better" in line
                                         or "worse" in line)
    for n in CONNS:
        assert f"| {n} | throughput |" in stream
    rr = section(part, "#### rr · 64 B sendall nodelay · drivers against threads",
                 "\n\nPeer CPU")
    for metric in ("p50", "p99"):
        assert f"| 64 | {metric} |" in rr


def test_peer_cpu_sentence_names_the_largest_connection_count(built: Path) -> None:
    md = (built / "README.md").read_text(encoding="utf-8")
    line = next(x for x in md.splitlines() if x.startswith("Peer CPU at the largest"))
    assert "(64): at most 0.43 CPU" in line  # 0.4 x (1 + 64 / 1000), the most at 64
    assert "probably not the limit" in line


def test_a_busy_peer_is_named_as_a_possible_limit(driver_run: Path) -> None:
    run = open_runs([driver_run])[0]
    frame = concurrency.driver_rows(run)
    frame["cpu_share_peer"] = 0.95
    text = concurrency.peer_sentence(frame, run.meta)
    assert "at most 0.95 CPU" in text and "the peer may have been the limit" in text
    frame["cpu_share_peer"] = float("nan")
    assert "not recorded at 64 connections" in concurrency.peer_sentence(frame, run.meta)


def test_documents_stay_clean(built: Path) -> None:
    check_documents(built)


def test_charts_are_byte_identical_when_drawn_again(driver_run: Path, built: Path,
                                                   tmp_path: Path) -> None:
    frame = concurrency.driver_rows(open_runs([driver_run])[0])
    for name, _, builder in concurrency.CHARTS:
        stem = f"{charts.slug('vm/conc')}-{name}"
        assert charts.render(builder, frame, out_dir=tmp_path, name=stem)
        for ext in ("png", "svg"):
            assert (tmp_path / f"{stem}.{ext}").read_bytes() == \
                (built / "charts" / f"{stem}.{ext}").read_bytes(), stem


def test_no_section_without_driver_cases(tmp_path: Path) -> None:
    cases = [Case("stream", s, 16384) for s in ("sendall", "makefile")]
    cases += [Case("rr", "sendall", 64, nodelay=nd) for nd in (False, True)]
    run = write_paired_run(tmp_path / "results", "m", "plain", cases, rounds=3)
    doc = Doc("t")
    concurrency.add_section(doc, open_runs([run])[0], tmp_path / "charts", "charts")
    assert doc.markdown() == Doc("t").markdown() and doc.page() == Doc("t").page()
    out = tmp_path / "report"
    document.build_report([run], out)
    md = (out / "README.md").read_text(encoding="utf-8")
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "Many connections" not in md and "Many connections" not in html
    assert not list((out / "charts").glob("*drivers-*"))


def test_only_stream_driver_cases_skip_the_latency_chart(tmp_path: Path) -> None:
    cases = [c for c in driver_cases() if c.workload == "stream"]
    run = write_paired_run(tmp_path / "results", "m", "stream", cases, rounds=3)
    add_connection_figures(run)
    md = section_only(run, tmp_path)
    part = md[md.index("### Many connections: drivers"):]
    assert "*p99 latency vs connections, by driver (rr): skipped, no data in this run.*" in part
    assert "#### rr: each driver case's figures" not in part
    assert "drivers-throughput.png" in part and "drivers-fairness.png" in part


def test_hostile_driver_text_is_shown_as_text(tmp_path: Path) -> None:
    """A driver cell from elsewhere: markup, a pipe, backticks and control characters in a
    legend, a table cell and a verdict column's header stay text in both renderings."""
    hostile = "sel<img src=x onerror=alert(1)>|`**\x1b[31m\u202e"
    run = write_paired_run(tmp_path / "results", "m", "bad", driver_cases((4, 64)), rounds=3)
    add_connection_figures(run, driver_text={
        "stream-sendall-s16K-p2-nd0-sbauto-c4-selectors-loopback": hostile,
        "rr-sendall-s64-p2-nd1-sbauto-c64-selectors-loopback": hostile})
    section_only(run, tmp_path)
    check_documents(tmp_path)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    for name in CHART_NAMES:
        assert (tmp_path / "charts" / f"{charts.slug('m/bad')}-{name}.png").is_file()


def test_a_run_whose_driver_cases_all_failed_says_so(tmp_path: Path) -> None:
    run = write_paired_run(tmp_path / "results", "m", "failed", driver_cases((4,)), rounds=3)
    path = run / "table.csv"
    table = pd.read_csv(path, keep_default_na=False, dtype=str)
    table["error"] = "PeerError: peer reset the connection"
    table.to_csv(path, index=False)
    md = section_only(run, tmp_path)
    check_documents(tmp_path)
    assert "### Many connections: drivers" in md
    assert f"*{len(table)} driver case(s) failed and are left out" in md
    assert "Aggregate throughput vs connections, by driver (stream): skipped, no data" in md
    assert "Peer CPU" not in md and not list((tmp_path / "charts").glob("*.png"))
