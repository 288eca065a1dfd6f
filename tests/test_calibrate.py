"""flushbench calibrate: the reference tools run at the start of every round, the ratios paired
by round; real iperf3 and sockperf on 127.0.0.1 where installed, one-line errors otherwise."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flushbench import cli
from flushbench.case import Case
from flushbench.results import read_meta
from flushbench.run.calibrate import (
    CSV,
    ROUNDS_CSV,
    ToolRounds,
    calibration_suite,
    paired_ratios,
    suite_text,
)
from flushbench.run.reftools import INSTALL_HINT, Place, Tools, listening
from flushbench.run.schedule import Visit
from flushbench.untrusted import check_meta
from test_run import flushbench_cli

IPERF3, SOCKPERF = shutil.which("iperf3"), shutil.which("sockperf")
need_iperf3 = pytest.mark.skipif(IPERF3 is None, reason="iperf3 is not installed "
                                 f"({INSTALL_HINT})")
need_both = pytest.mark.skipif(IPERF3 is None or SOCKPERF is None,
                               reason=f"iperf3 or sockperf is not installed ({INSTALL_HINT})")

SEND = Case("stream", "send", 1024)
SENDALL = Case("stream", "sendall", 1024)
TWIN = Case("stream", "sendall", 1024, twin=True)
THREADS = Case("stream", "sendall", 1024, conns=2, driver="threads")
RR_SEND = Case("rr", "send", 64, parts=1, nodelay=True)
RR_SENDALL = Case("rr", "sendall", 64, parts=1, nodelay=True)


def trial(case: Case, round_: int, bps: float = math.nan, p50: float = math.nan,
          p99: float = math.nan, error: str = "") -> dict[str, Any]:
    return {"case": case.id, "workload": case.workload, "round": round_, "throughput_bps": bps,
            "lat_p50_us": p50, "lat_p99_us": p99, "error": error or math.nan}


def test_paired_ratios_pair_each_round_with_its_own_tool_figure() -> None:
    """Best = highest median over rounds (twins never count); ratio_r = case in r / tool in r,
    over the rounds both measured; the median with its min and max."""
    trials = pd.DataFrame([
        trial(SEND, 0, 4e9), trial(SEND, 1, 4e9), trial(SEND, 2, 4e9),
        trial(SENDALL, 0, 6e9), trial(SENDALL, 1, 9e9), trial(SENDALL, 2, 0, error="reset"),
        trial(TWIN, 0, 50e9), trial(TWIN, 1, 50e9), trial(TWIN, 2, 50e9),
        trial(THREADS, 0, 8e9), trial(THREADS, 1, 12e9),
        trial(RR_SEND, 0, p50=30, p99=90), trial(RR_SEND, 1, p50=40, p99=100),
        trial(RR_SENDALL, 0, p50=50, p99=60), trial(RR_SENDALL, 1, p50=50, p99=60)])
    tools = pd.DataFrame([
        {"tool": "iperf3", "round": 0, "msg_size": 1024, "conns": 1, "throughput_bps": 10e9,
         "error": ""},
        {"tool": "iperf3", "round": 1, "msg_size": 1024, "conns": 1, "throughput_bps": 20e9,
         "error": ""},
        {"tool": "iperf3", "round": 2, "msg_size": 1024, "conns": 1, "error": "failed"},
        {"tool": "iperf3", "round": 0, "msg_size": 1024, "conns": 2, "throughput_bps": 16e9,
         "error": ""},
        {"tool": "iperf3", "round": 1, "msg_size": 1024, "conns": 2, "throughput_bps": 16e9,
         "error": ""},
        {"tool": "sockperf", "round": 0, "msg_size": 64, "conns": 1, "rtt_p50_us": 20.0,
         "rtt_p99_us": 30.0, "error": ""},
        {"tool": "sockperf", "round": 1, "msg_size": 64, "conns": 1, "rtt_p50_us": 20.0,
         "rtt_p99_us": 50.0, "error": ""}])
    cases = [SEND, SENDALL, TWIN, THREADS, RR_SEND, RR_SENDALL]
    table, by_round = paired_ratios(trials, tools, cases, [1024], 64, conns=2)
    rows = {r["metric"]: r for r in table.to_dict("records")}
    assert list(rows) == ["stream 1024 B throughput (Gbit/s)",
                          "stream 1024 B x 2 conns throughput (Gbit/s)",
                          "rr 64 B RTT p50 (us)", "rr 64 B RTT p99 (us)"]
    one = rows["stream 1024 B throughput (Gbit/s)"]
    assert one["case"] == SENDALL.id and one["tool"] == "iperf3"  # median 7.5e9 > send's 4e9
    assert one["rounds"] == 2  # round 2: sendall failed and iperf3 failed
    assert one["ratio"] == pytest.approx((0.6 + 0.45) / 2)  # 6/10, 9/20: not 7.5/15
    assert (one["ratio_min"], one["ratio_max"]) == (pytest.approx(0.45), pytest.approx(0.6))
    assert one["flushbench"] == pytest.approx(7.5) and one["reference"] == pytest.approx(15)
    two = rows["stream 1024 B x 2 conns throughput (Gbit/s)"]
    assert (two["case"], two["tool"], two["rounds"]) == (THREADS.id, "iperf3 -P 2", 2)
    assert two["ratio"] == pytest.approx((0.5 + 0.75) / 2)
    p50, p99 = rows["rr 64 B RTT p50 (us)"], rows["rr 64 B RTT p99 (us)"]
    assert p50["case"] == p99["case"] == RR_SEND.id  # lowest median p50 (its p99 is worse)
    assert p50["ratio"] == pytest.approx((1.5 + 2.0) / 2)
    assert p99["ratio"] == pytest.approx((3.0 + 2.0) / 2)
    mine = by_round[by_round["metric"] == one["metric"]]
    assert list(mine["round"]) == [0, 1]
    assert list(mine["ratio"]) == [pytest.approx(0.6), pytest.approx(0.45)]


def test_paired_ratios_without_the_tool_keep_flushbench_figure() -> None:
    trials = pd.DataFrame([trial(SENDALL, 0, 6e9), trial(SENDALL, 1, 8e9)])
    table, by_round = paired_ratios(trials, pd.DataFrame(), [SENDALL], [1024], 64)
    (row,) = table.to_dict("records")
    assert row["flushbench"] == pytest.approx(7.0) and row["rounds"] == 0
    assert math.isnan(row["reference"]) and math.isnan(row["ratio"])
    assert by_round.empty


class FakeTools(Tools):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def run_round(self, round_: int, rounds: int) -> None:
        self.log.append(f"tools {round_}/{rounds}")


class FakeProgress:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def __enter__(self) -> FakeProgress:
        self.log.append("enter")
        return self

    def __exit__(self, *exc: object) -> None:
        self.log.append("exit")

    def start_visit(self, visit: Visit, cases: Sequence[Case]) -> None:
        self.log.append(f"start {visit.round}.{visit.cell}")

    def end_visit(self, visit: Visit, rows: Sequence[dict[str, Any]]) -> None:
        self.log.append(f"end {visit.round}.{visit.cell}")


def test_tool_rounds_run_the_tools_before_each_rounds_first_visit() -> None:
    log: list[str] = []
    with ToolRounds(FakeProgress(log), FakeTools(log), 2) as progress:
        for r, c in ((0, 1), (0, 0), (1, 0), (1, 1)):
            progress.start_visit(Visit(r, c, ()), [])
            progress.end_visit(Visit(r, c, ()), [])
    assert log == ["enter", "tools 0/2", "start 0.1", "end 0.1", "start 0.0", "end 0.0",
                   "tools 1/2", "start 1.0", "end 1.0", "start 1.1", "end 1.1", "exit"]


def test_suite_holds_the_n_connection_streams_and_parses() -> None:
    assert "processes" not in suite_text([131072], 64)
    suite = calibration_suite([1024, 131072], 64, rounds=3, conns=4)
    assert (suite.rounds, suite.values) == (3, 3)
    many = {(c.driver, c.strategy, c.msg_size) for c in suite.cases if c.conns == 4}
    assert {d for d, _, _ in many} == {"threads", "selectors"}
    assert {s for _, _, s in many} == {1024, 131072}
    assert all(c.workload == "stream" for c in suite.cases if c.conns == 4)
    assert not any(c.conns > 1 for c in calibration_suite([1024], 64, 3, 1).cases)


def test_listening_sees_a_listener_without_connecting() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert listening(os.getpid(), port) is False
        s.listen()
        assert listening(os.getpid(), port) is True
    assert Place.of(None, {}).pinned is False


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(("argv", "words"), [
    (["--sizes", "12x"], "expected a byte count like 4096"),
    (["--sizes", "4"], "--sizes: each size must be 8.."),
    (["--rounds", "0"], "expected a whole number >= 1, got '0'"),
    (["--rounds", "1001"], "--rounds must be <= 1000"),
    (["--conns", "0"], "conns must be 1..1000 connections, got '0'"),
    (["--conns", "1001"], "conns must be 1..1000 connections, got '1001'"),
    (["--rr-size", "8"], "--rr-size: sockperf ping-pong takes 14..65507 bytes, got 8"),
    (["--seconds", "0"], "expected seconds > 0"),
    (["--seconds", "inf"], "--seconds must be <= 3600 per tool run, got inf"),
    (["--peer", "h:1"], "calibrate runs the reference tools itself"),
])
def test_bad_arguments_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path, argv: list[str],
                                               words: str) -> None:
    try:
        code = cli.main(["calibrate", "--out", str(tmp_path / "run"), *argv])
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("flushbench")]
    assert code == 2 and len(lines) == 1 and words in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_bad_argument_on_the_command_line(tmp_path: Path) -> None:
    proc = flushbench_cli("calibrate", "--conns", "0", "--out", str(tmp_path / "run"),
                          timeout=30)
    assert proc.returncode == 2
    assert one_line(proc.stderr) == ("flushbench calibrate: error: argument --conns: conns "
                                     "must be 1..1000 connections, got '0' (see 'flushbench "
                                     "calibrate --help')")


def tool_path(tmp_path: Path, *names: str) -> str:
    """A PATH holding only ``names`` (and taskset): the other tools are "not installed"."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in (*names, "taskset"):
        if (found := shutil.which(name)) is not None:
            (bin_dir / name).symlink_to(found)
    return str(bin_dir)


def check_run(run_dir: Path, rounds: int, metrics: list[str]) -> dict[str, Any]:
    """Every metric has a ratio > 0 over every round, in both files and in meta.json."""
    table = pd.read_csv(run_dir / CSV)
    assert list(table.columns[:6]) == ["metric", "case", "flushbench", "reference", "tool",
                                       "ratio"]
    assert list(table["metric"]) == metrics
    assert (table["ratio"] > 0).all() and (table["rounds"] == rounds).all(), table
    assert (table["ratio_min"] <= table["ratio"]).all()
    assert (table["ratio"] <= table["ratio_max"]).all()
    by_round = pd.read_csv(run_dir / ROUNDS_CSV)
    for metric in metrics:
        mine = by_round[by_round["metric"] == metric]
        assert sorted(mine["round"]) == list(range(rounds)), by_round
        assert (mine["ratio"] > 0).all() and (mine["reference"] > 0).all()
    meta = read_meta(run_dir)
    check_meta(meta, run_dir / "meta.json")  # the additions pass the untrusted-input checks
    cal: dict[str, Any] = meta["calibration"]
    assert cal["paired_by_round"] and cal["rounds"] == rounds
    assert [r["metric"] for r in cal["ratios"]] == metrics
    assert all(len(r["per_round"]) == rounds for r in cal["ratios"])
    return cal


@pytest.mark.slow
@need_iperf3
def test_calibrate_pairs_iperf3_by_round_and_says_what_is_missing(tmp_path: Path) -> None:
    """sockperf hidden from PATH: iperf3 and flushbench still run, and one line says what is
    missing and how to install it. (Only the sendall stream, to keep it short.) With --cc,
    flushbench's connections and iperf3's sender use that congestion control."""
    out = tmp_path / "run"
    proc = flushbench_cli("calibrate", "--sizes", "131072", "--rounds", "2", "--seconds", "1",
                          "--filter", "stream-sendall", "--cc", "reno", "--out", str(out),
                          env={"PATH": tool_path(tmp_path, "iperf3")}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(out)
    missing = [ln for ln in proc.stderr.splitlines() if "not found" in ln]
    assert missing == [f"sockperf not found: iperf3 and flushbench still run; install with: "
                       f"{INSTALL_HINT}"]
    assert proc.stderr.count("reference: iperf3 -l 131072: ") == 2  # one line per round
    cal = check_run(out, 2, ["stream 131072 B throughput (Gbit/s)"])
    assert cal["tools"] == {"iperf3": True, "sockperf": False}
    assert [(r["tool"], r["round"], r["streams"], r["cc"]) for r in cal["raw"]] == \
        [("iperf3", 0, 1, "reno"), ("iperf3", 1, 1, "reno")]  # as iperf3's JSON says
    assert cal["cc"] == "reno"
    assert set(pd.read_csv(out / "trials.csv")["case"]) <= set(
        pd.read_csv(out / "table.csv").query("cc_eff == 'reno'")["case"])


@pytest.mark.slow
@need_both
def test_calibrate_with_conns_runs_iperf3_with_as_many_streams(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = flushbench_cli("calibrate", "--sizes", "128K", "--rounds", "2", "--seconds", "1",
                          "--conns", "4", "--filter", "sendall", "--out", str(out),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(proc.stderr)  # the table, for the record (pytest -s)
    cal = check_run(out, 2, ["stream 131072 B throughput (Gbit/s)",
                             "stream 131072 B x 4 conns throughput (Gbit/s)",
                             "rr 64 B RTT p50 (us)", "rr 64 B RTT p99 (us)"])
    iperf = [r for r in cal["raw"] if r["tool"] == "iperf3"]
    assert sorted((r["round"], r["conns"], r["streams"]) for r in iperf) == \
        [(0, 1, 1), (0, 4, 4), (1, 1, 1), (1, 4, 4)]  # streams: as iperf3's JSON reports
    four = pd.read_csv(out / CSV).set_index("metric").loc[
        "stream 131072 B x 4 conns throughput (Gbit/s)"]
    assert four["tool"] == "iperf3 -P 4" and "-c4-" in four["case"]
    trials = pd.read_csv(out / "trials.csv")
    assert {"threads", "selectors"} <= {c.rsplit("-", 2)[1] for c in trials["case"]
                                        if "-c4-" in c and not c.endswith("-twin")}
    sock = [r for r in cal["raw"] if r["tool"] == "sockperf"]
    assert sorted(r["round"] for r in sock) == [0, 1] and all(r["rtt_p50_us"] > 0 for r in sock)
    assert json.loads((out / "meta.json").read_text())["calibration"]["conns"] == 4
    report = tmp_path / "report"
    proc = flushbench_cli("report", str(out), "--out", str(report), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (report / "README.md").read_text()
    assert "Harness ceiling" in page and "Paired by round" in page and "iperf3 -P 4" in page
