"""bench/bench_harness.py: the overhead figure and the repeat-mode agreement (no timing bars)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from flushbench.results import RunWriter
from flushbench.suite import Case
from synthetic import case_data, make_meta, small_cases

HARNESS = Path(__file__).resolve().parents[1] / "bench" / "bench_harness.py"


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_harness"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def write_run(root: Path, run_id: str, rates: dict[str, float], failed: set[str] = frozenset(),
              host: dict[str, float] | None = None) -> Path:
    """A run whose throughput cases have exactly the given msgs_per_s (others synthetic)."""
    rng = np.random.default_rng(3)
    writer = RunWriter.create(root / "m" / run_id, make_meta("m", run_id))
    for case in small_cases():
        row, samples = case_data(case, rng)
        if case.id in rates:
            row["msgs_per_s"] = rates[case.id]
        if host and case.id in host:
            row["host_speed"] = host[case.id]
        if case.id in failed:
            row = {**case.to_dict(), "case": case.id, "error": "PeerError: reset"}
            samples = {}
        writer.add_case(row, samples)
    return writer.dir


def test_overhead_is_a_positive_finite_figure(harness: ModuleType) -> None:
    """The timed loop's extra cost per operation over the bare operation is > 0 ns."""
    ns = harness.instrumentation_overhead_ns(ops=5000, repeat=5)
    assert math.isfinite(ns) and ns > 0


def test_overhead_figures_are_differences(harness: ModuleType) -> None:
    """The headline is timed-loop minus op-bare; the parts subtract the empty loop."""
    per_op = {"loop-empty": 10e-9, "loop-stamp": 60e-9, "op-bare": 100e-9,
              "op-counted": 120e-9, "timed-loop": 190e-9, "post-value-copy": 40e-9}
    fig = harness.overhead_figures(per_op)
    assert fig["overhead"] == pytest.approx(90.0)
    assert fig["stamp"] == pytest.approx(50.0) and fig["counter"] == pytest.approx(20.0)
    assert "90.0 ns per operation" in harness.format_overhead(fig)[0]


def test_every_overhead_benchmark_runs(harness: ModuleType) -> None:
    """Each pyperf time function returns a positive duration for a few loops."""
    names = [name for name, _, _ in harness.overhead_benchmarks()]
    assert len(names) == len(set(names))
    for _, func, _ in harness.overhead_benchmarks():
        assert func(50) > 0


def test_repeat_agreement_counts_cases_within_ten_percent(harness: ModuleType,
                                                          tmp_path: Path) -> None:
    """Throughput cases agree within ±10 %; failed ones are set apart; latency ones ignored."""
    thr = [c.id for c in small_cases() if c.workload in ("stream", "file")]
    base = {cid: 1000.0 * (i + 1) for i, cid in enumerate(thr)}
    # B/A: 1.00, 1.05, 0.91, 1.10 (the edge counts), 1.25, 0.80, then 1.0; the last fails in B
    factors = [1.00, 1.05, 0.91, 1.10, 1.25, 0.80] + [1.0] * (len(thr) - 6)
    other = {cid: base[cid] * f for cid, f in zip(thr, factors)}
    rr = next(c.id for c in small_cases() if c.workload == "rr")
    other[rr] = 1.0  # a latency case far off: not a throughput case, not counted
    a = write_run(tmp_path, "a", base)
    b = write_run(tmp_path, "b", other, failed={thr[-1]})
    agr = harness.repeat_agreement(a, b)
    total = len(thr) - 1
    assert (agr.within, agr.total) == (total - 2, total)
    assert agr.fraction == pytest.approx((total - 2) / total)
    assert agr.failed == [thr[-1]] and agr.missing == []
    assert set(agr.noisy["case"]) == {thr[4], thr[5]}
    assert agr.headline().startswith(f"{total - 2} of {total} throughput cases within ±10 %")
    lines = harness.format_agreement(agr)
    assert any(thr[4] in line for line in lines)


def test_repeat_agreement_lists_cases_in_one_run_only(harness: ModuleType,
                                                      tmp_path: Path) -> None:
    """A throughput case missing from one run is listed, not counted."""
    cases = [Case("stream", "sendall", 1024), Case("stream", "makefile", 1024)]
    rng = np.random.default_rng(5)
    dirs = []
    for run_id, chosen in (("a", cases), ("b", cases[:1])):
        writer = RunWriter.create(tmp_path / "m" / run_id, make_meta("m", run_id))
        for case in chosen:
            writer.add_case(*case_data(case, rng))
        dirs.append(writer.dir)
    agr = harness.repeat_agreement(*dirs, tolerance=0.5)
    assert agr.total == 1 and agr.within == 1
    assert agr.missing == [cases[1].id]


def test_repeat_agreement_shows_how_far_the_host_speed_explains(harness: ModuleType,
                                                                tmp_path: Path) -> None:
    """Cases that moved with the host's CPU probe are named as such; figures stay as measured."""
    thr = [c.id for c in small_cases() if c.workload in ("stream", "file")]
    base = {cid: 1000.0 for cid in thr}
    # every case 20 % faster in B, and so was the host around each case but the first
    a = write_run(tmp_path, "a", base, host={cid: 10.0 for cid in thr})
    b = write_run(tmp_path, "b", {cid: 1200.0 for cid in thr},
                  host={cid: 10.0 if i == 0 else 12.0 for i, cid in enumerate(thr)})
    agr = harness.repeat_agreement(a, b)
    assert agr.within == 0  # the measured figures are not adjusted
    assert agr.within_host_adjusted() == len(thr) - 1
    assert agr.host_shift == pytest.approx(math.exp((len(thr) - 1) * math.log(1.2) / len(thr)))
    text = "\n".join(harness.format_agreement(agr))
    assert f"{len(thr) - 1} of {len(thr)} within ±10 % once each case's own host ratio" in text


def test_hostdrift_compares_whole_windows_at_every_offset() -> None:
    """bench_hostdrift: back-to-back window means, within ±10 % or not, at each start."""
    spec = importlib.util.spec_from_file_location("bench_hostdrift", HARNESS.with_name(
        "bench_hostdrift.py"))
    assert spec is not None and spec.loader is not None
    drift = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drift)
    steady = drift.agreement([10.0] * 8, run_slices=3)
    assert steady["pairs"] == 3 and steady["fraction"] == 1.0
    # the speed doubles half-way: only the pairs that straddle no step agree
    step = drift.agreement([10.0] * 4 + [20.0] * 4, run_slices=2)
    assert step["pairs"] == 5 and step["within"] == 2
    assert step["ratio_max"] == pytest.approx(2.0)
    assert drift.agreement([10.0] * 3, run_slices=2) == {"pairs": 0}
