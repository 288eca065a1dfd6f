"""How noisy a run was: wide verdict intervals in a paired run, the values' spread in an old one."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from flushbench.analysis.quality import findings, half_width
from flushbench.analysis.runs import open_runs
from flushbench.report import document
from flushbench.results import TABLE
from synthetic import small_cases, write_paired_run
from test_run import flushbench_cli

VERDICTS = "verdicts.csv"


def widen(run: Path, intervals: dict[tuple[str, str, str], tuple[float, float]]) -> None:
    """Set the 95 % interval of some (case, baseline, metric) comparisons; the rest stay."""
    frame = pd.read_csv(run / VERDICTS, keep_default_na=False)
    for (case, baseline, metric), (low, high) in intervals.items():
        rows = (frame["case"] == case) & (frame["baseline"] == baseline) & \
            (frame["metric"] == metric)
        assert rows.sum() == 1, (case, baseline, metric)
        frame.loc[rows, ["ci_low", "ci_high"]] = [low, high]
    frame.to_csv(run / VERDICTS, index=False)


STREAM, STREAM_BASE = ("stream-makefile-s64-p2-nd0-sbauto-loopback",
                       "stream-sendall-s64-p2-nd0-sbauto-loopback")
WWR, WWR_BASE = "wwr-makefile-s64-p2-nd1-sbauto-loopback", "wwr-sendall-s64-p2-nd1-sbauto-loopback"
TRAP, TRAP_BASE = "wwr-sendall-s64-p2-nd1-sbauto-loopback", "wwr-sendall-s64-p2-nd0-sbauto-loopback"


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return write_paired_run(tmp_path, "alpha", "wide", small_cases())


def test_half_width_is_geometric_and_rejects_nonsense() -> None:
    assert half_width(1 / 1.1, 1.1) == pytest.approx(0.1)
    assert half_width(0.5, 2.0) == pytest.approx(1.0)
    for low, high in ((0.0, 1.0), (-1.0, 1.0), (1.2, 1.1), (math.nan, 1.0), (1.0, math.inf)):
        assert math.isnan(half_width(low, high))


def test_wide_headline_comparisons_are_named_widest_first(run: Path) -> None:
    """Only a comparison on its workload's headline figure counts; twins, p99, segments per
    message and a ratio out of the delayed-ACK trap (0.0008x) do not, however wide."""
    widen(run, {(STREAM, STREAM_BASE, "throughput_bps"): (0.8, 1.25),  # ±11.8 %
                (WWR, WWR_BASE, "lat_p50_us"): (0.5, 2.0),  # ±100 %
                (WWR, WWR_BASE, "lat_p99_us"): (0.1, 10.0),  # p99: not a headline figure
                (STREAM, STREAM_BASE, "segs_per_msg"): (0.1, 10.0),
                (TRAP, TRAP_BASE, "lat_p50_us"): (0.0001, 0.01),  # the trap: not in doubt
                (f"{STREAM_BASE}-twin", STREAM_BASE, "throughput_bps"): (0.1, 10.0)})
    (stored,) = open_runs([run])
    found = {f.kind: f for f in findings(stored.table, stored.verdicts, stored.trials)}
    assert "noisy" not in found
    wide = found["wide"]
    assert wide.cases == (WWR, STREAM)
    assert wide.against == (WWR_BASE, STREAM_BASE)
    assert wide.values == pytest.approx((1.0, math.sqrt(1.25 / 0.8) - 1))
    verdicts = stored.verdicts
    headline = verdicts[(verdicts["axis"] != "A/A") & verdicts["metric"].isin(
        ["throughput_bps", "lat_p50_us"]) & verdicts["ratio"].between(0.1, 10)]
    assert wide.figures["of"] == len(headline)


def test_hostile_or_stray_verdict_rows_are_skipped(run: Path) -> None:
    """A row without an interval, a case the table does not hold and a failed case are
    not judged; what is left still is."""
    widen(run, {(STREAM, STREAM_BASE, "throughput_bps"): (0.7, 1.3)})
    (stored,) = open_runs([run])
    verdicts = stored.verdicts.copy()
    stray = verdicts[verdicts["case"] == STREAM].assign(case="stream-ghost-s64-p2-nd0-"
                                                        "sbauto-loopback")
    verdicts = pd.concat([verdicts, stray], ignore_index=True)
    unknown = (verdicts["case"] == WWR) & (verdicts["metric"] == "lat_p50_us")
    verdicts.loc[unknown, ["ci_low", "ci_high"]] = [math.nan, math.inf]
    (wide,) = [f for f in findings(stored.table, verdicts) if f.kind == "wide"]
    assert wide.cases == (STREAM,)
    table = stored.table.copy()
    table.loc[table["case"] == STREAM, "error"] = "the peer reset the connection"
    assert "wide" not in {f.kind for f in findings(table, verdicts)}


def test_a_paired_run_is_not_called_noisy_for_its_values_spread(run: Path) -> None:
    """2 ms values spread widely in every case; a paired run with narrow intervals has
    nothing to warn about, nor one whose verdicts are not written yet (trials only), while
    the same table of a run of one block per case still does."""
    table = pd.read_csv(run / TABLE, keep_default_na=False)
    table["rate_rsd"] = 0.3
    table.to_csv(run / TABLE, index=False)
    (stored,) = open_runs([run])
    kinds = {f.kind for f in findings(stored.table, stored.verdicts, stored.trials)}
    assert not kinds & {"wide", "noisy"}
    (run / VERDICTS).unlink()
    (unfinished,) = open_runs([run])
    assert unfinished.verdicts.empty and not unfinished.trials.empty
    kinds = {f.kind for f in findings(unfinished.table, unfinished.verdicts,
                                      unfinished.trials)}
    assert not kinds & {"wide", "noisy"}
    assert "noisy" in {f.kind for f in findings(stored.table)}


def test_show_and_the_report_name_the_wide_comparisons(run: Path, tmp_path: Path) -> None:
    """show warns on stderr (only about the cases it shows), and the report lists them."""
    widen(run, {(STREAM, STREAM_BASE, "throughput_bps"): (0.7, 1.3)})
    proc = flushbench_cli("show", str(run))
    assert proc.returncode == 0, proc.stderr
    err = " ".join(proc.stderr.split())
    assert "warning: 1 of " in err
    assert ("comparisons have a 95 % interval reaching more than ±10 % around their ratio on "
            f"their headline figure (widest: {STREAM} against {STREAM_BASE}, ±36 %)" in err)
    assert "noisy" not in err and "Traceback" not in err
    other = flushbench_cli("show", str(run), "-f", "rr-*")
    assert other.returncode == 0, other.stderr
    assert "interval reaching" not in other.stderr and "noisy" not in other.stderr
    document.build_report([run], tmp_path / "report")
    md = (tmp_path / "report" / "README.md").read_text(encoding="utf-8")
    assert f"| `{STREAM}` | `{STREAM_BASE}` | ±36.3% |" in md
