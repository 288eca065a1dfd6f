"""End to end: real peer, real visit workers in interleaved rounds, real files."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyperf
import pytest

import flushbench
from flushbench.results import load_samples
from flushbench.schema import NAMES

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def flushbench_cli(*args: str, env: dict[str, str] | None = None,
                   timeout: float = 240) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(TESTS),
                                              full_env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "flushbench", *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=ROOT)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "run"
    proc = flushbench_cli("run", "--suite", "smoke", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_smoke_run_writes_the_four_outputs(smoke_run: Path) -> None:
    """A smoke run leaves pyperf.json, table.csv, trials.csv, verdicts.csv, samples/ and
    meta.json, all loadable; each cell's baseline has an A/A twin."""
    for name in ("pyperf.json", "table.csv", "meta.json", "samples", "trials.csv",
                 "verdicts.csv"):
        assert (smoke_run / name).exists(), name
    frame = flushbench.load(smoke_run)
    assert list(frame.columns[:2]) == ["run", "machine"]
    assert set(NAMES) <= set(frame.columns)  # the public schema: unit-explicit names
    assert len(frame) == 9 and (frame["error"] == "").all()  # 6 cases, 3 cells: 3 twins
    assert frame["twin"].sum() == 3
    assert frame[frame["twin"]]["case"].str.endswith("-twin").all()
    for col in ("throughput_bit_s", "msgs_per_s", "lat_p50_us", "lat_p99_us", "segs_per_msg",
                "send_calls_per_msg", "cpu_s_per_gb_client", "cpu_s_per_gb_peer", "sndbuf_eff",
                "host_speed_mloops_s"):
        assert frame[col].notna().all() and (frame[col] > 0).all(), col
    meta = json.loads((smoke_run / "meta.json").read_text())
    assert meta["schema_version"] == 2 and meta["suite"]["name"] == "smoke"
    assert meta["schedule"]["rounds"] == 5 and isinstance(meta["schedule"]["seed"], int)
    assert "net.ipv4.tcp_wmem" in meta["client"]["sysctls"]
    for path in (smoke_run / "samples").glob("*.npz"):  # stored deflated once the run ends
        with zipfile.ZipFile(path) as archive:
            assert {m.compress_type for m in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    assert len(list((smoke_run / "samples").glob("*.npz"))) == 9
    assert meta["peer"]["python"]
    assert meta["host_speed_probe"]["cpus"] and meta["host_speed_probe"]["slice_s"] > 0
    suite = pyperf.BenchmarkSuite.load(str(smoke_run / "pyperf.json"))
    assert sorted(suite.get_benchmark_names()) == sorted(frame["case"])
    for bench in suite.get_benchmarks():  # one pyperf run per round: 8 values, or 2 for a
        slow = "-wwr-sendall-s64-p2-nd0-" in f"-{bench.get_name()}"  # slow (trap) case
        per_round = [len(run.values) for run in bench.get_runs()]
        assert bench.get_unit() == "second" and len(per_round) == 5
        # any trial whose operation takes most of a value runs 2 values in a row (a stall
        # on a busy machine can make a stream's trial slow too); the trap case always does
        assert set(per_round) == {2} if slow else set(per_round) <= {8, 2}, per_round
        assert slow or per_round.count(8) >= 3, per_round
    trials = pd.read_csv(smoke_run / "trials.csv")
    assert len(trials) == 9 * 5 and set(trials["round"]) == set(range(5))
    assert trials.groupby("round")["case"].nunique().eq(9).all()
    # every trial's GO/READY round trip (the host's wake-up time, analysis/hoststate.py):
    # a real round trip through the peer process, well under a second
    assert trials["ready_us"].between(1.0, 1e6).all(), trials["ready_us"]
    verdicts = pd.read_csv(smoke_run / "verdicts.csv")
    assert set(verdicts["verdict"]) <= {"better", "worse", "same", "no data"}
    assert (verdicts["axis"] == "A/A").sum() == 3 * 3 - 1  # stream: 2 metrics, rr/wwr: 3
    loops = json.loads((smoke_run / "loops.json").read_text())
    for twin in frame[frame["twin"]]["case"]:  # a twin does exactly its original's work
        assert loops[twin] == loops[twin.removesuffix("-twin")]
    # the write-write-read cases that run in slots share one count (run/loopcounts.py);
    # the trap case runs its values in a row and keeps its own (one 40 ms op per value)
    shared = {loops[f"wwr-{s}-s64-p2-nd{d}-sbauto-loopback"]
              for s, d in (("sendall", 1), ("makefile", 0), ("makefile", 1))}
    assert len(shared) == 1 and shared != {loops["wwr-sendall-s64-p2-nd0-sbauto-loopback"]}
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:  # pinned by default: workers and peer on two different CPUs
        assert meta["pin"] == {"client": cpus[-1], "peer": cpus[0]}


@pytest.mark.slow
def test_smoke_run_shows_the_nagle_trap(smoke_run: Path) -> None:
    """wwr with Nagle on waits for a delayed ACK per request; with TCP_NODELAY it does not."""
    frame = flushbench.load(smoke_run).set_index("case")
    off = frame.loc["wwr-sendall-s64-p2-nd0-sbauto-loopback"]
    on = frame.loc["wwr-sendall-s64-p2-nd1-sbauto-loopback"]
    assert off["lat_p50_us"] >= 20_000
    assert on["lat_p50_us"] < 5_000
    # write-write sends two segments per message; makefile+flush sends one
    assert 1.7 <= on["segs_per_msg"] <= 2.3
    assert 0.9 <= frame.loc["wwr-makefile-s64-p2-nd1-sbauto-loopback", "segs_per_msg"] <= 1.2
    samples = load_samples(smoke_run, "wwr-sendall-s64-p2-nd1-sbauto-loopback")
    assert samples["lat_ns"].size == samples["ops_per_value"].sum() >= 40
    assert samples["values_s_per_msg"].size == 40  # 5 rounds x 8 values
    assert sorted(set(samples["round_of_value"])) == list(range(5))
    verdicts = pd.read_csv(smoke_run / "verdicts.csv").set_index(["case", "axis", "metric"])
    trap = verdicts.loc[("wwr-sendall-s64-p2-nd1-sbauto-loopback", "nodelay", "lat_p50_us")]
    assert trap["verdict"] == "better" and trap["ratio"] < 0.1


@pytest.mark.slow
def test_stream_verdicts_pair_throughput_slot_by_slot(smoke_run: Path, tmp_path: Path
                                                      ) -> None:
    """The stream twins' throughput ratio in verdicts.csv is the mean over rounds of the
    median slot-by-slot log ratio of the stored values (analysis/slots.py), not the ratio
    of the trials' pooled figures; so is the rr twins' p50 ratio, from each value's p50."""
    verdicts = pd.read_csv(smoke_run / "verdicts.csv")
    rows = verdicts[(verdicts["axis"] == "A/A") & (verdicts["metric"] == "throughput_bps")]
    assert len(rows) == 1
    row = rows.iloc[0]
    case, base = (load_samples(smoke_run, str(row[k])) for k in ("case", "baseline"))
    d = []
    for r in range(5):
        a = case["v_bytes"][case["round_of_value"] == r] / \
            case["v_elapsed_ns"][case["round_of_value"] == r]
        b = base["v_bytes"][base["round_of_value"] == r] / \
            base["v_elapsed_ns"][base["round_of_value"] == r]
        assert a.size == b.size  # both ran their values in slots
        d.append(float(np.median(np.log(a) - np.log(b))))
    assert row["ratio"] == pytest.approx(float(np.exp(np.mean(d))), rel=1e-5)
    trials = pd.read_csv(smoke_run / "trials.csv").pivot_table(
        index="round", columns="case", values="throughput_bps")
    pooled = float(np.exp(np.mean(np.log(trials[row["case"]] / trials[row["baseline"]]))))
    assert row["ratio"] != pytest.approx(pooled, rel=1e-9)
    rr = verdicts[(verdicts["axis"] == "A/A") & (verdicts["metric"] == "lat_p50_us")
                  & verdicts["case"].str.startswith("rr-")].iloc[0]
    case, base = (load_samples(smoke_run, str(rr[k])) for k in ("case", "baseline"))
    p50s = [np.array([np.median(v) for v in np.split(s["lat_ns"].astype(float),
                                                     np.cumsum(s["ops_per_value"])[:-1])])
            for s in (case, base)]
    d = [float(np.median(np.log(p50s[0][case["round_of_value"] == r])
                         - np.log(p50s[1][base["round_of_value"] == r]))) for r in range(5)]
    assert rr["ratio"] == pytest.approx(float(np.exp(np.mean(d))), rel=1e-5)
    assert json.loads((smoke_run / "meta.json").read_text())["schedule"]["pairing"] == "slots"
    from flushbench.report.document import build_report

    build_report([smoke_run], tmp_path / "report")  # the report says how it paired
    assert "is the median over its slots of the case's value against the baseline's" in \
        (tmp_path / "report" / "README.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_pyperf_tools_accept_runs(smoke_run: Path, tmp_path: Path) -> None:
    """python -m pyperf show and compare_to work on our pyperf.json."""
    other = tmp_path / "again"
    proc = flushbench_cli("run", "--suite", "smoke", "--filter", "rr-", "--out", str(other),
                          "--quiet")
    assert proc.returncode == 0, proc.stderr
    shown = subprocess.run([sys.executable, "-m", "pyperf", "show", str(smoke_run / "pyperf.json")],
                           capture_output=True, text=True, check=True)
    assert "wwr-sendall-s64-p2-nd0-sbauto-loopback" in shown.stdout
    compared = subprocess.run([sys.executable, "-m", "pyperf", "compare_to", "--table",
                               str(smoke_run / "pyperf.json"), str(other / "pyperf.json")],
                              capture_output=True, text=True)
    assert compared.returncode == 0, compared.stderr
    assert "rr-sendall-s64-p2-nd1-sbauto-loopback" in compared.stdout + compared.stderr


FORWARDING_SUITE = """
[suite]
name = "fwd"
rounds = 2
values = 2
warmups = 1
value_time = 0.05

[[matrix]]
workload = "stream"
strategy = "sendall"
nodelay = [false, true]
sndbuf = [1, 65536]
notsent_lowat = [0, 16384]
msg_size = 1024
ops = 200

[[matrix]]
workload = "rr"
strategy = "recording"
nodelay = true
rcvbuf = 32768
msg_size = 100
reply = 10
ops = 200
"""


@pytest.mark.slow
def test_workers_see_each_cases_options(tmp_path: Path) -> None:
    """Options reach every visit's worker and are read back per case."""
    suite = tmp_path / "fwd.toml"
    suite.write_text(FORWARDING_SUITE)
    record = tmp_path / "seen.jsonl"
    out = tmp_path / "run"
    proc = flushbench_cli("run", "--suite", str(suite), "--out", str(out), "--quiet",
                          "--cc", "reno",  # built into every Linux kernel
                          "--strategy-plugin", "plugin_strategy:RecordingStrategy",
                          "--inherit-environ", "FLUSHBENCH_TEST_RECORD",
                          env={"FLUSHBENCH_TEST_RECORD": str(record)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    frame = flushbench.load(out).set_index("case")
    stream = frame[(frame["workload"] == "stream") & ~frame["twin"]]
    assert len(stream) == 8 and (frame["error"] == "").all()
    assert (stream["nodelay_eff"] == stream["nodelay"]).all()
    assert (stream["sndbuf_eff"] == stream["sndbuf"].map({1: 4608, 65536: 131072})).all()
    assert (stream["notsent_lowat_eff"] == stream["notsent_lowat"].fillna(0)).all()
    assert (stream[stream["sndbuf"] == 1]["opt_mismatch"].str.contains("kernel gave 4608")).all()
    # the run's congestion control, on every connection, recorded and read back
    assert (frame["cc_eff"] == "reno").all()
    assert json.loads((out / "meta.json").read_text())["schedule"]["cc"] == "reno"
    rr = frame.loc["rr-recording-s100-p2-nd1-sbauto-rb32K-r10-loopback"]
    assert rr["error"] == "" and rr["rcvbuf_eff"] == 65536 and rr["reply"] == 10
    # the plugin ran in a worker process per round, each with the case's options on its
    # socket (the case and its A/A twin both use the plugin)
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert len({s["pid"] for s in seen}) == 2
    assert all(s["nodelay"] == 1 and s["buffer"] == io.DEFAULT_BUFFER_SIZE for s in seen)


def test_dry_run_lists_cases_with_an_estimate() -> None:
    """--dry-run prints every case id and a total time, and runs nothing."""
    proc = flushbench_cli("run", "--suite", "smoke", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 10
    assert lines[-1].startswith("6 cases and 3 A/A twins in 3 cells, 5 rounds x 8 values")
    assert all("\t~" in line for line in lines[:-1])


def test_result_row_type_names_every_table_column() -> None:
    """The typed row the manager builds and the table's columns are the same list."""
    from flushbench.results import COLUMNS, ResultRow

    assert set(ResultRow.__annotations__) == set(COLUMNS)


@pytest.mark.slow
def test_a_calibrating_twin_follows_its_original(smoke_run: Path) -> None:
    """In the calibration rounds a twin runs the count its original's values run, value by
    value, not the count the original's warm-up guessed (once 3 against 234 at 16 KiB)."""
    for twin in ("stream-sendall-s128K-p2-nd0-sbauto-loopback-twin",
                 "rr-sendall-s64-p2-nd1-sbauto-loopback-twin"):
        a, b = load_samples(smoke_run, twin), load_samples(smoke_run, twin.removesuffix("-twin"))
        for r in (0, 1):
            ops_twin = np.median(a["ops_per_value"][a["round_of_value"] == r])
            ops_root = np.median(b["ops_per_value"][b["round_of_value"] == r])
            assert ops_root / 2 <= ops_twin <= ops_root * 2, (twin, r, ops_twin, ops_root)
