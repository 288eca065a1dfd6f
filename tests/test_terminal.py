"""The terminal for people: a table per workload in 80 columns with whole numbers, lines
above the live bar, an ETA from the estimates; and data for programs (--format) on stdout."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from flushbench import cli
from flushbench.analysis.runs import open_runs
from flushbench.report.format import fmt_bps, fmt_us
from flushbench.report.summary import summary_tables
from flushbench.report.terminal import progress_line
from flushbench.run.progress import eta_s, fmt_eta
from synthetic import default_cases, write_paired_run, write_run


def _render(renderable: object, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize("width", [80, 100])
def test_the_summary_is_a_table_per_workload_with_whole_numbers(tmp_path: Path,
                                                                width: int) -> None:
    (run,) = open_runs([write_run(tmp_path, cases=default_cases())])
    frame = run.table
    text = _render(summary_tables(frame, "m / run1", width), width)
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= width
    assert "…" not in text
    titles = [line.strip() for line in lines if line.strip() in set(frame["workload"])]
    assert titles == list(dict.fromkeys(frame["workload"]))  # one table each, in order
    for row in frame.to_dict("records"):  # every headline figure, scaled, whole
        if row["workload"] in ("stream", "file"):
            assert fmt_bps(row["throughput_bps"]) in text
        else:
            assert fmt_us(row["lat_p50_us"]) in text


def test_notes_are_numbered_footnotes(tmp_path: Path) -> None:
    """An option the kernel did not take is a [n] mark and one footnote, not a wrapped cell."""
    (run,) = open_runs([write_run(tmp_path, cases=default_cases())])
    frame = run.table.copy()
    note = "sndbuf requested 1, kernel gave 4608"
    frame.loc[frame.index[:3], "opt_mismatch"] = note
    text = _render(summary_tables(frame, "", 80), 80)
    assert text.count("[1]") == 4  # three marks and the footnote
    assert text.count(note) == 1


def test_a_finished_trial_is_one_line_with_its_cell_case_and_figure() -> None:
    row = {"workload": "wwr", "strategy": "makefile", "msg_size": 64, "parts": 2,
           "nodelay": True, "lat_p50_us": 38.1, "lat_p99_us": 94.9}
    assert progress_line(3, 10, row) == "3/10 wwr 64 B: makefile nodelay  p50 38.1 µs  " \
                                         "p99 94.9 µs"
    failed = progress_line(1, 10, {**row, "error": "PeerError: reset"})
    assert failed.endswith("FAILED: PeerError: reset")


def test_the_eta_comes_from_the_estimates_and_the_pace_so_far() -> None:
    assert eta_s(100.0, 0.0, 0.0) == 100.0  # from the first moment: the estimate
    assert eta_s(100.0, 50.0, 100.0) == 100.0  # twice as slow as estimated
    assert eta_s(100.0, 50.0, 25.0) == 25.0
    assert eta_s(100.0, 100.0, 80.0) == 0.0
    assert eta_s(100.0, 1.0, 1000.0) == 99 * 4  # one odd visit does not explode it
    assert fmt_eta(161) == "2:41" and fmt_eta(3725) == "1:02:05"


def test_list_dry_run_and_compare_give_records_on_stdout(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    kinds = {r["kind"] for r in records}
    assert kinds == {"strategy", "workload", "suite", "id-token"}
    assert any(r["name"] == "nd0 / nd1" for r in records)
    assert cli.main(["list"]) == 0
    assert "token by token" in capsys.readouterr().out
    assert cli.main(["run", "--dry-run", "-s", "smoke", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("case,estimate_s,skipped\n") and out.count("\n") >= 7
    a = write_paired_run(tmp_path, "m", "a", seed=1)
    b = write_paired_run(tmp_path, "m", "b", seed=2)
    assert cli.main(["compare", str(a), str(b), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["comparison"] for r in rows} == {"ratio_of_ratios", "absolute"}
    target = tmp_path / "cmp.md"
    assert cli.main(["compare", str(a), str(b), "--format", "md", "-o", str(target)]) == 0
    assert capsys.readouterr().out == "" and target.read_text().startswith("| comparison |")
    assert cli.main(["compare", str(a), str(b), "-o", str(tmp_path / "cmp.txt")]) == 0
    assert "ratio of ratios" in (tmp_path / "cmp.txt").read_text()


def test_format_without_dry_run_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--format", "json"]) == 2
    assert "--format and --output go with --dry-run" in capsys.readouterr().err
