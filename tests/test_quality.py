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


def widen(run: Path, intervals: dict[tuple[str, str], tuple[float, float]]) -> pd.DataFrame:
    """Set the 95 % interval of some (case, metric) comparisons; the other rows stay."""
    frame = pd.read_csv(run / VERDICTS, keep_default_na=False)
    for (case, metric), (low, high) in intervals.items():
        rows = (frame["case"] == case) & (frame["metric"] == metric)
        assert rows.sum() >= 1, (case, metric)
        frame.loc[rows, ["ci_low", "ci_high"]] = [low, high]
    frame.to_csv(run / VERDICTS, index=False)
    return frame


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return write_paired_run(tmp_path, "alpha", "wide", small_cases())


def test_half_width_is_geometric_and_rejects_nonsense() -> None:
    assert half_width(1 / 1.1, 1.1) == pytest.approx(0.1)
    assert half_width(0.5, 2.0) == pytest.approx(1.0)
    for low, high in ((0.0, 1.0), (-1.0, 1.0), (1.2, 1.1), (math.nan, 1.0), (1.0, math.inf)):
        assert math.isnan(half_width(low, high))


def test_wide_headline_comparisons_are_named_widest_first(run: Path) -> None:
    """Only a comparison on its workload's headline figure counts; twins, p99 and segments
    per message do not, however wide."""
    stream = "stream-makefile-s64-p2-nd0-sbauto-loopback"  # against sendall
    latency = "wwr-makefile-s64-p2-nd0-sbauto-loopback"
    twin = "stream-sendall-s64-p2-nd0-sbauto-loopback-twin"
    widen(run, {(stream, "throughput_bps"): (0.8, 1.25),  # ±11.8 %
                (latency, "lat_p50_us"): (0.5, 2.0),  # ±100 %
                (latency, "lat_p99_us"): (0.1, 10.0),  # p99: not a headline figure
                (stream, "segs_per_msg"): (0.1, 10.0),
                (twin, "throughput_bps"): (0.1, 10.0)})  # twins: the noise floor's
    (stored,) = open_runs([run])
    found = {f.kind: f for f in findings(stored.table, stored.verdicts)}
    assert "noisy" not in found
    wide = found["wide"]
    assert wide.cases == (latency, stream)
    assert wide.against == ("wwr-sendall-s64-p2-nd0-sbauto-loopback",
                            "stream-sendall-s64-p2-nd0-sbauto-loopback")
    assert wide.values == pytest.approx((1.0, math.sqrt(1.25 / 0.8) - 1))
    verdicts = stored.verdicts
    headline = verdicts[(verdicts["axis"] != "A/A") & verdicts["metric"].isin(
        ["throughput_bps", "lat_p50_us"])]
    assert wide.figures["of"] == len(headline)


def test_a_paired_run_is_not_called_noisy_for_its_values_spread(run: Path) -> None:
    """2 ms values spread widely in every case; a paired run with narrow intervals has
    nothing to warn about, while the same table without verdicts still does."""
    table = pd.read_csv(run / TABLE, keep_default_na=False)
    table["rate_rsd"] = 0.3
    table.to_csv(run / TABLE, index=False)
    (stored,) = open_runs([run])
    kinds = {f.kind for f in findings(stored.table, stored.verdicts)}
    assert not kinds & {"wide", "noisy"}
    assert "noisy" in {f.kind for f in findings(stored.table)}


def test_show_and_the_report_name_the_wide_comparisons(run: Path, tmp_path: Path) -> None:
    case = "stream-makefile-s64-p2-nd0-sbauto-loopback"
    widen(run, {(case, "throughput_bps"): (0.7, 1.3)})
    proc = flushbench_cli("show", str(run))
    assert proc.returncode == 0, proc.stderr
    err = " ".join(proc.stderr.split())
    assert "warning: 1 of " in err
    assert (f"comparisons have a 95 % interval wider than ±10 % on their headline figure "
            f"(widest: {case} against stream-sendall-s64-p2-nd0-sbauto-loopback, ±36 %)"
            in err)
    assert "noisy" not in err and "Traceback" not in err
    document.build_report([run], tmp_path / "report")
    md = (tmp_path / "report" / "README.md").read_text(encoding="utf-8")
    assert f"| `{case}` | `stream-sendall-s64-p2-nd0-sbauto-loopback` | ±36.3% |" in md
