"""Verdict-first reports and terminal tables, from synthetic runs of schema 2 (and 1)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

import flushbench
from flushbench import cli
from flushbench.analysis.noise import noise_floor
from flushbench.analysis.quality import Finding
from flushbench.analysis.runs import TRIAL_COLUMNS, StoredRun, open_runs
from flushbench.analysis.verdicts import VERDICT_COLUMNS
from flushbench.case import Case
from flushbench.report import charts, document, forest, recommend, terminal, verdicts
from flushbench.report.format import finding_sentence
from flushbench.run import trials
from flushbench.suites import load_suite
from synthetic import small_cases, write_paired_run, write_run

TWIN = "rr-sendall-s64-p2-nd0-sbauto-loopback-twin"


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_paired_run(tmp_path_factory.mktemp("results"), "alpha", "r2", small_cases())


@pytest.fixture(scope="module")
def noisy_twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose rr twin is 20 % slower than its identical baseline in every round."""
    return write_paired_run(tmp_path_factory.mktemp("results"), "alpha", "drift",
                            small_cases(), effects={TWIN: 0.8})


@pytest.fixture(scope="module")
def built(paired: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    document.build_report([paired], out)
    return out


def one(path: Path) -> StoredRun:
    (run,) = open_runs([path])
    return run


def test_trials_and_verdicts_load_lazily_with_their_columns(paired: Path,
                                                            tmp_path: Path) -> None:
    """A schema-2 run gives both frames; a schema-1 run gives them empty, with the columns."""
    run = one(paired)
    assert not run._frames  # nothing read before it is asked for
    assert list(run.trials.columns[:len(TRIAL_COLUMNS)]) == TRIAL_COLUMNS
    assert list(run.verdicts.columns[:len(VERDICT_COLUMNS)]) == VERDICT_COLUMNS
    assert len(run.trials) == 6 * len(run.table)
    assert set(run.verdicts["axis"]) == {"strategy", "nodelay", "sndbuf", "A/A"}
    assert run.verdicts["higher_is_better"].dtype == bool
    old = one(write_run(tmp_path, "old", "r", [Case("rr", "sendall", 64)]))
    assert old.trials.empty and list(old.trials.columns) == TRIAL_COLUMNS
    assert old.verdicts.empty and list(old.verdicts.columns) == VERDICT_COLUMNS
    assert not verdicts.has_verdicts(old)


def test_trial_columns_match_what_the_run_writes() -> None:
    """analysis keeps its own copy of the trials' columns (it may not import run/)."""
    assert TRIAL_COLUMNS == trials.TRIAL_COLUMNS


def test_twins_stay_out_of_charts_and_advice(paired: Path) -> None:
    """StoredRun.ok leaves the A/A twins out; the full table keeps them."""
    run = one(paired)
    assert run.table["twin"].astype(bool).sum() == 6
    assert not run.ok["case"].str.endswith("-twin").any()


def test_noise_floor_counts_twins_and_the_widest_interval(paired: Path,
                                                          noisy_twin: Path) -> None:
    quiet = noise_floor(one(paired).verdicts)
    assert quiet.twins == 6 and quiet.comparisons == 15
    assert quiet.better == quiet.worse == 0 and not quiet.flagged
    assert 0 < quiet.widest < 0.05 and quiet.widest_case.endswith("-twin")
    loud = noise_floor(one(noisy_twin).verdicts)
    assert loud.worse == 2 and loud.better == 0  # p50 and p99 of the slowed twin
    assert {(c, v) for c, _, v in loud.flagged} == {(TWIN, "worse")}
    assert loud.widest > 0.2
    assert not noise_floor(one(paired).verdicts.iloc[0:0]).measured


def _section(text: str, label: str) -> str:
    return text[text.index(f"## {label}"):]


def test_report_opens_with_noise_floor_verdicts_and_forest(built: Path) -> None:
    """The run's section: the A/A line, the forest plot beside the verdict tables, then the
    Nagle and send-path charts, advice, more charts, and last the method, the machines
    (folded in HTML) and every case; the list of runs comes last."""
    md = _section((built / "README.md").read_text(encoding="utf-8"), "alpha/r2")
    lines = [line for line in md.splitlines()[1:] if line.strip()]
    assert lines[0].startswith("A/A: 6 twins (15 comparisons), all same within ±")
    slug = charts.slug("alpha/r2")
    order = [md.index(s) for s in ("A/A: 6 twins", "### Verdicts", f"charts/{slug}-forest.png",
                                   "#### stream · small", "#### wwr · small",
                                   "### The Nagle trap and the send paths",
                                   f"charts/{slug}-nagle.png",
                                   f"charts/{slug}-throughput-stream.png",
                                   f"charts/{slug}-segments.png", "### Recommendations",
                                   "### Myths", "### More charts", f"charts/{slug}-ccdf-rr.png",
                                   "### Method", "Suite **synthetic**", "### Machines",
                                   "### All cases")]
    assert order == sorted(order)
    assert "WARNING" not in md
    assert "median over its slots" not in md  # verdicts from the trials alone, as stored
    assert "| 64 B | `makefile nodelay` | `makefile` | throughput |" in md
    assert re.search(r"\| 64 B \| `sendall twin` \| `sendall` \| p50 \| [\d.]+× \| "
                     r"[\d.]+–[\d.]+ \| same \|", md)
    html = (built / "index.html").read_text(encoding="utf-8")
    forest_png = f"{charts.slug('alpha/r2')}-forest.png"
    assert html.index("A/A: 6 twins") < html.index('id="verdicts"') \
        < html.index('<div class="cols"><div class="col">') \
        < html.index(forest_png) < html.index('</div><div class="col">') \
        < html.index('id="stream--small') < html.index('id="machines"') \
        < html.index("<details><summary>Both ends: CPU, kernel, Python") \
        < html.index("net.ipv4.tcp_wmem") < html.index('id="all-cases"') \
        < html.index('id="runs-in-this-report"')
    for suffix in ("png", "svg"):
        assert (built / "charts" / f"{charts.slug('alpha/r2')}-forest.{suffix}"
                ).stat().st_size > 1000


def test_a_twin_called_different_is_a_warning_at_the_top(noisy_twin: Path,
                                                         tmp_path: Path) -> None:
    document.build_report([noisy_twin], tmp_path)
    md = _section((tmp_path / "README.md").read_text(encoding="utf-8"), "alpha/drift")
    first = next(line for line in md.splitlines()[1:] if line.strip())
    assert first.startswith("**WARNING** — A/A: 2 of 15 twin comparisons came out better or "
                            f"worse (`{TWIN}` p50 worse, `{TWIN}` p99 worse)")
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<h2 id="alphadrift">alpha/drift</h2>\s*<p class="bad"><strong>WARNING'
                     r"</strong>", html)
    line = terminal.noise_line(one(noisy_twin))
    assert line.plain.startswith("WARNING: A/A: 2 of 15") and TWIN in line.plain


def test_paired_report_is_byte_identical_when_rebuilt(paired: Path, built: Path) -> None:
    before = {p: p.read_bytes() for p in sorted(built.rglob("*")) if p.is_file()}
    document.build_report([paired], built)
    assert {p: p.read_bytes() for p in sorted(built.rglob("*")) if p.is_file()} == before


def test_forest_plot_draws_headline_rows_and_marks_twins(paired: Path) -> None:
    run = one(paired)
    rows = forest.rows(run)
    assert set(rows["metric"]) == {"throughput_bps", "lat_p50_us"}
    assert rows["twin"].sum() == 6
    fig = forest.forest(run)
    assert fig is not None
    assert [ax.get_title(loc="right").split(":")[0] for ax in fig.axes] == \
        ["stream", "rr", "wwr", "pipeline", "file"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["better", "worse", "same", "A/A twin (identical code)"]


def test_schema_1_run_keeps_the_old_layout(tmp_path: Path) -> None:
    run = write_run(tmp_path, "old", "r", small_cases())
    document.build_report([run], tmp_path / "out")
    md = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    section = _section(md, "old/r")
    assert "### Verdicts" not in md and "A/A" not in md and "### Method" not in md
    assert section.splitlines()[2].startswith("Suite **synthetic**")
    assert "pyperf 2 processes × 3 values (1 warmup)" in section
    assert section.index("### The Nagle trap and the send paths") \
        < section.index("### Recommendations") < section.index("### Machines")
    assert not list((tmp_path / "out" / "charts").glob("*forest*"))
    assert "Welch's t-test" in md


def test_schema_1_table_without_a_twin_column_loads(tmp_path: Path) -> None:
    """The committed runs' tables (schema 1) have no twin column; they load and report."""
    run = write_run(tmp_path, "old", "r", [Case("rr", "sendall", 64)])
    table = run / "table.csv"
    table.write_text("\n".join(",".join(line.split(",")[:13] + line.split(",")[14:])
                               for line in table.read_text().splitlines()) + "\n")
    assert "twin" not in table.read_text().splitlines()[0].split(",")
    assert not one(run).ok.empty
    assert not flushbench.load(run)["twin"].any()  # schema 1 had no twins
    document.build_report([run], tmp_path / "out")


def _render(renderable: object, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def test_terminal_verdict_table_fits_80_columns_for_the_quick_suite(tmp_path: Path) -> None:
    """Every comparison of the quick suite's cases: no line over 80 (a label may fold at a
    space), no number cut; at 100 columns no label folds."""
    cases = [c for c in load_suite("quick").cases if not c.twin]
    run = one(write_paired_run(tmp_path, "m", "quick", cases, rounds=3))
    view = verdicts.view(run)
    assert len(view) > 250
    for width in (80, 100, 300):  # fits, and is no wider than 100 when given room
        table = terminal.verdict_table(run, width=width)
        assert table is not None
        text = _render(table, width)
        lines = text.splitlines()
        assert max(len(line.rstrip()) for line in lines) <= min(width, 100), width
        assert "…" not in text
        for ratio, low, high in zip(view["ratio"], view["ci_low"], view["ci_high"]):
            assert verdicts.fmt_factor(ratio) in text  # whole, never folded
            assert verdicts.fmt_interval(low, high) in text
        if width >= 100:
            for label, vs in set(zip(view["label"], view["vs_short"], strict=True)):
                assert re.search(rf"^ {re.escape(label)} +{re.escape(vs)} ", text, re.M), \
                    label
    longest = max(view["label"].str.len())
    assert longest >= len("makefile sndbuf 64 KiB")


def test_markup_in_a_case_id_is_refused_in_one_line(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A case id holding rich markup (``x[bold]y``) is not a case id: show and report say so
    in one line naming the file and exit 2, rather than print or draw it."""
    cases = [Case("rr", s, 64) for s in ("sendall", "x[bold]y")]
    run = write_paired_run(tmp_path, "m", "odd", cases)
    for argv in (["show", str(run)], ["report", str(run), "--out", str(tmp_path / "out")]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "table.csv" in err and "not a case id" in err, err
        assert "Traceback" not in err


def test_show_prints_verdicts_and_the_full_table_with_all(paired: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    assert cli.main(["show", str(paired)]) == 0
    out = capsys.readouterr().out  # data on stdout: show RUN > f keeps it
    assert "95 % CI" in out and "A/A: 6 twins" in out and "calls/msg" not in out
    assert out.index("95 % CI") < out.index("A/A: 6 twins")
    assert f"flushbench show --all {paired}" in out
    assert cli.main(["show", "--all", "--filter", "wwr-*", str(paired)]) == 0
    out = capsys.readouterr().out
    assert "segs/msg" in out and "p50" in out and "95 % CI" in out
    assert re.search(r"^wwr\b", out, re.M) and not re.search(r"^stream\b", out, re.M)
    assert "calls/msg" not in out  # a column of the throughput workloads' table
    assert cli.build_parser().parse_args(["show", "x", "--all"]).all is True


def test_show_of_a_schema_1_run_prints_the_summary(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, "old", "r", [Case("rr", "sendall", 64)])
    assert cli.main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    assert "p50" in out and "segs/msg" in out and "95 % CI" not in out and "A/A" not in out


def test_myths_and_recommendations_use_paired_verdicts(paired: Path) -> None:
    run = one(paired)
    found = {m.claim: m for m in recommend.myths(run)}
    nodelay = found["TCP_NODELAY always helps"]
    assert nodelay.verdict.startswith("false: it made throughput or latency worse in ")
    assert "segments/message" in nodelay.evidence[0]
    assert "paired by round" in nodelay.verdict
    assert all("paired: " in line for line in nodelay.evidence)
    sendall = found["sendall is always enough"]
    assert sendall.verdict.startswith("false for speed") and "paired" in sendall.verdict
    ids = set(run.table["case"])
    for myth in found.values():
        assert set(myth.cases) <= ids and not any(c.endswith("-twin") for c in myth.cases)
    recs = recommend.recommendations(run).set_index("workload")
    assert recs.loc["wwr", "significance"].startswith("paired: better, p50 ")
    assert "Welch" not in " ".join(recs["significance"])


def test_nodelay_myth_holds_on_paired_wwr(tmp_path: Path) -> None:
    cases = [Case("wwr", "sendall", 64, nodelay=nd) for nd in (False, True)]
    myth = {m.claim: m for m in recommend.myths(one(write_paired_run(tmp_path, "m", "w",
                                                                    cases)))}
    assert myth["TCP_NODELAY always helps"].verdict.startswith("holds in this run")


def test_noisy_advice_names_rounds_not_processes() -> None:
    text = finding_sentence(Finding("noisy", ("c",), (0.2,), {"threshold": 0.1}))
    assert "--rounds/--values" in text and "--processes" not in text
