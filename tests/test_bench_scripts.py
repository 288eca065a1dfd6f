"""bench/bench_*.py: the overhead figure, repeat agreement, the breakdown's accounting, and a
real in-process breakdown of one case (no timing bars)."""

from __future__ import annotations

import importlib
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from flushbench.analysis.runs import open_runs
from flushbench.case import Case
from flushbench.results import SCHEMA_VERSION, RunWriter
from flushbench.run.timing import Timeline
from synthetic import case_data, make_meta, small_cases

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = ["bench_overhead", "bench_wall", "bench_repeat", "bench_breakdown",
           "bench_verdicts", "bench_connections", "bench_iperf", "bench_harness_loop",
           "bench_copy_alignment", "bench_peer_sink"]
sys.path.insert(0, str(BENCH))  # the scripts import their shared module, _common


def bench(name: str) -> ModuleType:
    return importlib.import_module(name)


def write_run(root: Path, run_id: str, rates: dict[str, float],
              failed: frozenset[str] = frozenset(), host: dict[str, float] | None = None,
              cases: list[Case] | None = None) -> Path:
    """A run whose throughput cases have exactly the given msgs_per_s (others synthetic)."""
    rng = np.random.default_rng(3)
    writer = RunWriter.create(root / "m" / run_id, make_meta("m", run_id))
    for case in cases or small_cases():
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


def throughput_ids() -> list[str]:
    return [c.id for c in small_cases() if c.workload in ("stream", "file")]


# -- bench_overhead -------------------------------------------------------------------------

def test_overhead_is_a_positive_finite_figure() -> None:
    """The timed loop's extra cost per operation over the bare operation is > 0 ns."""
    ns = bench("bench_overhead").instrumentation_overhead_ns(ops=5000, repeat=5)
    assert math.isfinite(ns) and ns > 0


def test_overhead_figures_are_differences() -> None:
    """The headline is timed-loop minus op-bare; the parts subtract the empty loop."""
    ov = bench("bench_overhead")
    per_op = {"loop-empty": 10e-9, "loop-stamp": 60e-9, "op-bare": 100e-9,
              "op-counted": 120e-9, "timed-loop": 190e-9, "post-value-copy": 40e-9}
    fig = ov.overhead_figures(per_op)
    assert fig["overhead"] == pytest.approx(90.0)
    assert fig["stamp"] == pytest.approx(50.0) and fig["counter"] == pytest.approx(20.0)
    assert "90.0 ns per operation" in ov.format_overhead(fig)[0]


def test_every_overhead_benchmark_runs() -> None:
    """Each pyperf time function returns a positive duration, also over several values."""
    ov = bench("bench_overhead")
    names = [name for name, _, _ in ov.overhead_benchmarks()]
    assert len(names) == len(set(names))
    for _, func, _ in ov.overhead_benchmarks():
        assert func(50) > 0
    assert ov.chunks(2 * ov.OP_CAP + 7) == [ov.OP_CAP, ov.OP_CAP, 7]


def test_timed_loop_is_flushbenchs_loop_with_the_counting_strategy() -> None:
    """timed-loop runs SyncLoop with the real SendallStrategy: two calls per 2-part message,
    and the stand-in socket answers GO and DONE as a peer would."""
    ov = bench("bench_overhead")
    strategy = ov.SendallStrategy(ov._null_socket())
    assert ov.timed_loop(strategy)(ov.OP_CAP + 3) > 0
    assert strategy.calls == 2 * (ov.OP_CAP + 3)
    bare = ov.UncountedSendall(ov._null_socket())
    ov.unrolled(bare)(5)
    assert bare.calls == 0


# -- bench_repeat ---------------------------------------------------------------------------

def test_repeat_agreement_counts_cases_within_ten_percent(tmp_path: Path) -> None:
    """Throughput cases agree within ±10 %; failed ones are set apart; latency ones ignored."""
    rep = bench("bench_repeat")
    thr = throughput_ids()
    base = {cid: 1000.0 * (i + 1) for i, cid in enumerate(thr)}
    # B/A: 1.00, 1.05, 0.91, 1.10 (the edge counts), 1.25, 0.80, then 1.0; the last fails in B
    factors = [1.00, 1.05, 0.91, 1.10, 1.25, 0.80] + [1.0] * (len(thr) - 6)
    other = {cid: base[cid] * f for cid, f in zip(thr, factors, strict=True)}
    rr = next(c.id for c in small_cases() if c.workload == "rr")
    other[rr] = 1.0  # a latency case far off: not a throughput case, not counted
    runs = open_runs([write_run(tmp_path, "a", base),
                      write_run(tmp_path, "b", other, failed=frozenset({thr[-1]}))])
    agr = rep.repeat_agreement(runs)
    total = len(thr) - 1
    assert (agr.within, agr.total) == (total - 2, total)
    assert agr.fraction == pytest.approx((total - 2) / total)
    assert agr.failed == [thr[-1]] and agr.missing == []
    assert set(agr.noisy["case"]) == {thr[4], thr[5]}
    assert agr.headline().startswith(f"{total - 2} of {total} throughput cases within ±10 %")
    sig = rep.significance(runs)
    assert set(agr.cases["case"]) <= set(sig)  # the same keys as compare's table
    lines = rep.format_agreement(agr, sig)
    assert any(thr[4] in line and line.rstrip().endswith(("yes", "no")) for line in lines)
    assert any(thr[-1] in line for line in lines if line.startswith("  failed"))


def test_repeat_agreement_lists_cases_in_one_run_only(tmp_path: Path) -> None:
    """A throughput case missing from one run is listed, not counted."""
    cases = [Case("stream", "sendall", 1024), Case("stream", "makefile", 1024)]
    runs = open_runs([write_run(tmp_path, "a", {}, cases=cases),
                      write_run(tmp_path, "b", {}, cases=cases[:1])])
    agr = bench("bench_repeat").repeat_agreement(runs, tolerance=0.5)
    assert agr.total == 1 and agr.within == 1
    assert agr.missing == [cases[1].id]


def test_repeat_aligns_runs_as_compare_does(tmp_path: Path) -> None:
    """Two runs over different transports (one each) align on the id without the transport."""
    rep = bench("bench_repeat")
    v4 = [Case("stream", "sendall", 1024), Case("stream", "makefile", 1024)]
    v6 = [c.with_transport("loopback6") for c in v4]
    runs = open_runs([write_run(tmp_path, "a", {v4[0].id: 100.0}, cases=v4),
                      write_run(tmp_path, "b", {v6[0].id: 150.0}, cases=v6)])
    agr = rep.repeat_agreement(runs)
    assert agr.total == 2 and agr.missing == [] and "transport" in agr.aligned_by
    key = v4[0].id.removesuffix("-loopback")
    assert agr.cases.set_index("case").loc[key, "ratio"] == pytest.approx(1.5)
    assert set(agr.cases["case"]) <= set(rep.significance(runs))


def test_repeat_agreement_shows_how_far_the_host_speed_explains(tmp_path: Path) -> None:
    """Cases that moved with the host's CPU probe are named as such; figures stay as measured."""
    rep = bench("bench_repeat")
    thr = throughput_ids()
    # every case 20 % faster in B, and so was the host around each case but the first
    runs = open_runs([
        write_run(tmp_path, "a", dict.fromkeys(thr, 1000.0), host=dict.fromkeys(thr, 10.0)),
        write_run(tmp_path, "b", dict.fromkeys(thr, 1200.0),
                  host={cid: 10.0 if i == 0 else 12.0 for i, cid in enumerate(thr)})])
    agr = rep.repeat_agreement(runs)
    assert agr.within == 0  # the measured figures are not adjusted
    assert agr.within_host_adjusted() == len(thr) - 1
    assert agr.within_after_shift() == len(thr)
    assert agr.host_shift == pytest.approx(math.exp((len(thr) - 1) * math.log(1.2) / len(thr)))
    text = "\n".join(rep.format_agreement(agr))
    assert f"{len(thr) - 1} of {len(thr)} within ±10 % once each case's own host ratio" in text


# -- bench_breakdown ------------------------------------------------------------------------

def test_timeline_separates_nested_spans() -> None:
    """A span inside another counts in both totals and in ``inside``; ``own`` is the rest."""
    tl = Timeline()
    with tl.span("probe"):
        time.sleep(0.01)
    with tl.span("case"):
        with tl.span("probe"):
            time.sleep(0.02)
        time.sleep(0.01)
    assert tl.counts["probe"] == 2
    assert tl.inside["case", "probe"] == pytest.approx(0.02, abs=0.015)
    assert tl.totals["probe"] > tl.inside["case", "probe"] + 0.009
    assert tl.own("case") == pytest.approx(tl.totals["case"] - tl.inside["case", "probe"])
    assert ("probe", "case") not in tl.inside


def test_breakdown_rows_add_up_to_the_wall_time() -> None:
    """Trial phases come out of the worker processes' span, merge and write and the probes
    out of the visits; the last row is what no span covers."""
    bd = bench("bench_breakdown")
    tl = Timeline()
    tl.totals.update({"visit (all of it)": 10.0, "worker process": 8.0,
                      "merge and write": 0.5, "host probe": 0.7, "verdicts": 0.1})
    tl.inside.update({("visit (all of it)", "worker process"): 8.0,
                      ("visit (all of it)", "merge and write"): 0.5,
                      ("visit (all of it)", "host probe"): 0.6})
    tl.counts.update({"visit (all of it)": 2, "worker process": 2})
    for case in ("a", "b", "a-twin", "b", "a", "a-twin"):  # two visits of three trials
        tl.worker(case, {"connect_s": 0.01, "file_s": 0.0, "setup_s": 0.5, "warm_up_s": 0.3,
                         "values_s": 1.0, "values": 2})
    m = bd.Measured(wall=12.0, timeline=tl, progress_s=0.2, finish_s=0.4, cases=3, rounds=2)
    rows = dict(bd.breakdown_rows(m))
    assert sum(rows.values()) == pytest.approx(12.0)
    assert rows["worker: HELLO, socket options, strategy"] == pytest.approx(6 * 0.2)
    assert rows["worker: timed values (12; GO/READY + operations)"] == pytest.approx(6.0)
    rest = "worker: the rest (start-up, per-value accounting, close, exit)"
    assert rows[rest] == pytest.approx(8.0 - 0.06 - 1.2 - 1.8 - 6.0)
    assert rows["manager: rest of each visit (plan file, clean-up)"] == \
        pytest.approx(10 - 8 - 0.5 - 0.6)
    assert rows["manager: host CPU probe (first, and after each visit)"] == pytest.approx(0.7)
    assert rows["end: verdicts.csv"] == pytest.approx(0.1)
    last = list(rows)[-1]
    assert last.startswith("start and end") and rows[last] == pytest.approx(12 - 10 - 0.1 - 0.1
                                                                            - 0.2 - 0.4)
    text = "\n".join(bd.format_breakdown(m, start_up_s=0.1))
    assert "3 cases in 2 rounds, 2 visits, 2 worker processes, 6 trials" in text
    assert "about 0.20 s" in text  # start-up times worker processes, not trials


def run_script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=BENCH.parent)


def test_breakdown_of_one_real_case(tmp_path: Path) -> None:
    """One smoke cell in process (rr 64 B and its twin, 5 rounds): the hook's spans and the
    trials' phases are all there."""
    done = run_script(str(BENCH / "bench_breakdown.py"), "--suite", "smoke", "--filter",
                      "rr-*", "--no-startup", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "2 cases in 5 rounds, 5 visits, 5 worker processes, 10 trials" in out
    rows = {m[1].strip(): (float(m[2]), float(m[3])) for m in
            re.finditer(r"^  (\S.*?)\s+(-?\d+\.\d\d)\s+-?\d+\.\d\s+(-?\d+\.\d)%$", out, re.M)}
    assert len(rows) == 13
    assert sum(share for _, share in rows.values()) == pytest.approx(100, abs=1)
    timed = next(k for k in rows if k.startswith("worker: timed values ("))
    assert rows[timed][0] > 0  # Session.phases
    # the manager's "worker process" span holds more than the trials' own phases
    assert rows["worker: the rest (start-up, per-value accounting, close, exit)"][0] > 0
    assert rows["end: verdicts.csv"][0] > 0
    table = (tmp_path / "run" / "table.csv").read_text()
    assert table.count("rr-sendall") == 2 and "-twin" in table
    assert (tmp_path / "run" / "verdicts.csv").exists()


# -- every script ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", SCRIPTS)
def test_help_works(name: str) -> None:
    done = run_script(str(BENCH / f"{name}.py"), "--help", timeout=60)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr
    doc = bench(name).__doc__
    assert doc and "python bench/" + name + ".py" in doc


def test_a_failed_suite_run_is_reported(tmp_path: Path) -> None:
    """_common.run_suite returns the exit code and keeps the log (bench_wall, bench_repeat)."""
    common = bench("_common")
    wall, code, log = common.run_suite("no-such-suite", tmp_path / "run")
    assert code == 2 and wall > 0
    assert "no-such-suite" in common.log_tail(log)
    assert "median 2.0 s, min 1.0 s over 3 runs" in bench("bench_wall").summary("s", [1, 2, 3])


def test_hostdrift_compares_whole_windows_at_every_offset() -> None:
    """bench_hostdrift: back-to-back window means, within ±10 % or not, at each start."""
    drift = bench("bench_hostdrift")
    steady = drift.agreement([10.0] * 8, run_slices=3)
    assert steady["pairs"] == 3 and steady["fraction"] == 1.0
    # the speed doubles half-way: only the pairs that straddle no step agree
    step = drift.agreement([10.0] * 4 + [20.0] * 4, run_slices=2)
    assert step["pairs"] == 5 and step["within"] == 2
    assert step["ratio_max"] == pytest.approx(2.0)
    assert drift.agreement([10.0] * 3, run_slices=2) == {"pairs": 0}


# -- bench_connections ----------------------------------------------------------------------

def test_connections_compares_real_connections(tmp_path: Path) -> None:
    """Two connections, two values each, one set: both connections' means are figures, the
    first is the reference (0 %), and the JSON keeps the spreads."""
    out = tmp_path / "conns.json"
    done = run_script(str(BENCH / "bench_connections.py"), "--conns", "2", "--values", "2",
                      "--procs", "1", "--size", "1K", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "spread of connection means" in done.stdout
    [got] = json.loads(out.read_text())["sets"]
    assert got["relative"][0] == 0 and len(got["relative"]) == 2
    assert got["between_sd"] >= 0 and got["predicted_sd"] > 0


def test_connections_take_turns_with_congestion_controls(tmp_path: Path) -> None:
    """--cc: the sets alternate between the host's default and reno (set on every
    connection); the end has a median per congestion control; an unknown one is refused."""
    out = tmp_path / "cc.json"
    done = run_script(str(BENCH / "bench_connections.py"), "--conns", "2", "--values", "2",
                      "--procs", "2", "--size", "1K", "--cc", "host,reno", "-o", str(out))
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert [s["cc"] for s in data["sets"]] == [f"host ({data['host_cc']})", "reno"]
    assert set(data["by_cc"]) == {f"host ({data['host_cc']})", "reno"}
    assert all(v["sets"] == 1 for v in data["by_cc"].values())
    bad = run_script(str(BENCH / "bench_connections.py"), "--cc", "nosuchcc")
    assert bad.returncode == 2 and "'nosuchcc' is not available here" in bad.stderr


def test_harness_loop_pairs_values_on_one_connection(tmp_path: Path) -> None:
    """Two connections, two pairs each: every pair has both figures, and the ratio and its
    interval are finite and ordered."""
    out = tmp_path / "loop.json"
    done = run_script(str(BENCH / "bench_harness_loop.py"), "--conns", "2", "--values", "2",
                      "--size", "16K", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "harness / plain loop on the same connection" in done.stdout
    got = json.loads(out.read_text())
    assert len(got["pairs"]) == 4 and all(r["harness"] > 0 and r["plain"] > 0
                                          for r in got["pairs"])
    low, high = got["summary"]["ci95"]
    assert 0 < low <= got["summary"]["ratio"] <= high


def test_copy_alignment_times_every_offset_and_pairs_both_buffers(tmp_path: Path) -> None:
    """memcpy timed at every size and offset; a coalesce stream with both placements, two
    pairs of values each, on a real peer. No speed is asserted: which offsets are slow
    depends on the CPU and the libc."""
    out = tmp_path / "copy.json"
    done = run_script(str(BENCH / "bench_copy_alignment.py"), "--values", "2", "--sizes",
                      "16K", "-o", str(out))
    assert done.returncode == 0, done.stderr
    got = json.loads(out.read_text())
    table = got["memcpy_us"]
    assert len(table) == 6 and all(len(row) == 11 and min(row.values()) > 0
                                   for row in table.values())
    pairs = got["streams"]["16384"]["pairs"]
    assert len(pairs) == 2 and all(p["in place"] > 0 and p["+16"] > 0 for p in pairs)
    low, high = got["streams"]["16384"]["summary"]["ci95"]
    assert 0 < low <= got["streams"]["16384"]["summary"]["ratio"] <= high
    bad = run_script(str(BENCH / "bench_copy_alignment.py"), "--sizes", "16Q")
    assert bad.returncode == 2 and "--sizes" in bad.stderr


def test_peer_sink_runs_both_sinks_and_says_which(tmp_path: Path) -> None:
    """One pair of real runs (the smoke suite's stream cell): each run's peer used the sink
    it was given, and both have their figures. No speed is asserted."""
    out, keep = tmp_path / "sink.json", tmp_path / "runs"
    done = run_script(str(BENCH / "bench_peer_sink.py"), "--pairs", "1", "--suite", "smoke",
                      "--sizes", "128K", "-o", str(out), "--keep", str(keep), timeout=300)
    assert done.returncode == 0, done.stderr
    for sink in ("discard", "copy"):
        meta = json.loads((keep / f"p0-{sink}" / "meta.json").read_text())
        assert meta["peer_sink"] == sink
    got = json.loads(out.read_text())
    assert sorted(r["sink"] for r in got["rows"]) == ["copy", "discard"]
    assert all(r["peer_us_per_mib"] > 0 and r["sendall_gbps"] > 0 and 0 < r["twin"]
               for r in got["rows"])
    assert set(got["summary"]["128K"]) == {"discard", "copy"}
    bad = run_script(str(BENCH / "bench_peer_sink.py"), "--sizes", "16Q")
    assert bad.returncode == 2 and "--sizes" in bad.stderr


@pytest.mark.parametrize("name", ["bench_verdicts", "bench_repeat"])
def test_stored_runs_that_do_not_load_get_one_line(name: str, tmp_path: Path) -> None:
    """--from two folders that are not runs (table.csv gone, as in a pruned probe folder):
    one line naming the folder and what is missing, exit 2, no traceback."""
    for x in "ab":
        (tmp_path / x).mkdir()
        meta = {**make_meta("vm", x), "schema_version": SCHEMA_VERSION}
        (tmp_path / x / "meta.json").write_text(json.dumps(meta))
    extra = ["--only-repeat"] if name == "bench_verdicts" else []
    done = run_script(str(BENCH / f"{name}.py"), *extra, "--from", str(tmp_path / "a"),
                      str(tmp_path / "b"), timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{name}: ")
    assert "table.csv is missing" in lines[0]
