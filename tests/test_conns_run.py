"""A real run of driver cases: 8 connections per case, each driver against threads, through
the CLI (manager, visit workers, peer); then what the table, samples and verdicts hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushbench.measure.drivers import unavailable
from flushbench.results import load_samples
from test_run import flushbench_cli

SUITE = """
[suite]
name = "conns8"
rounds = 2
values = 2
value_time = 0.01
timeout = 60

[[matrix]]
workload = "stream"
strategy = "sendall"
msg_size = 16384
conns = 8
driver = ["threads", "selectors", "asyncio", "uvloop", "trio"]

[[matrix]]
workload = "rr"
strategy = "sendall"
nodelay = true
msg_size = 64
conns = 8
driver = ["threads", "selectors", "asyncio"]
"""


@pytest.fixture(scope="module")
def conns_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("conns")
    (root / "conns8.toml").write_text(SUITE)
    out = root / "run"
    proc = flushbench_cli("run", "--suite", str(root / "conns8.toml"), "--out", str(out),
                          "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_every_driver_case_finishes_with_its_connection_figures(conns_run: Path) -> None:
    table = pd.read_csv(conns_run / "table.csv", keep_default_na=False)
    skipped = {d for d in ("uvloop", "trio") if unavailable(d)}
    assert set(table["driver"]) == {"threads", "selectors", "asyncio", "uvloop",
                                    "trio"} - skipped
    assert (table["error"] == "").all(), table["error"].tolist()
    assert (table["conns"] == 8).all()
    for column in ("throughput_bps", "msgs_per_s", "jain_fairness", "conn_min_bps",
                   "conn_max_bps", "cpu_share_client", "cpu_share_peer"):
        values = pd.to_numeric(table[column])
        assert (values > 0).all(), column
    assert (pd.to_numeric(table["jain_fairness"]) <= 1.0 + 1e-9).all()
    assert (pd.to_numeric(table["conn_min_bps"]) <= pd.to_numeric(table["conn_max_bps"])).all()
    rr = table[table["workload"] == "rr"]
    assert (pd.to_numeric(rr["lat_p999_us"]) >= pd.to_numeric(rr["lat_p50_us"])).all()


def test_samples_keep_each_connections_time_and_every_round_trip(conns_run: Path) -> None:
    table = pd.read_csv(conns_run / "table.csv", keep_default_na=False)
    for _, row in table.iterrows():
        samples = load_samples(conns_run, row["case"])
        values = int(row["values"])
        assert samples["v_conn_ns"].size == values * 8
        assert (samples["v_conn_ns"] > 0).all()
        if row["workload"] == "rr":  # every connection's every operation
            assert samples["lat_ns"].size == int(np.sum(samples["v_ops"]))


def test_each_driver_is_judged_against_threads_by_round(conns_run: Path) -> None:
    verdicts = pd.read_csv(conns_run / "verdicts.csv", keep_default_na=False)
    driver = verdicts[verdicts["axis"] == "driver"]
    assert len(driver) > 0
    assert driver["baseline"].str.endswith("-c8-threads-loopback").all()
    assert (driver["rounds"] == 2).all()
    assert set(verdicts["axis"]) >= {"driver", "A/A"}


def test_a_resumed_run_takes_back_each_connections_time(conns_run: Path) -> None:
    """What --resume restores from the samples gives the same connection figures."""
    from flushbench.case import Case
    from flushbench.results import read_meta, read_table
    from flushbench.run.trials import CaseTrials
    from flushbench.suites import parse_suite

    meta = read_meta(conns_run)
    cases = {c.id: c for c in parse_suite(meta["suite"]["source"]).cases}
    for row in read_table(conns_run, meta).to_dict("records"):
        case_id = str(row["case"])
        case = cases.get(case_id) or Case(**{**cases[case_id.removesuffix("-twin")].to_dict(),
                                             "twin": True})
        acc = CaseTrials(case)
        acc.restore(conns_run, row)
        again, _ = acc.row()
        for column in ("jain_fairness", "conn_min_bps", "conn_max_bps", "throughput_bps"):
            assert again[column] == pytest.approx(row[column], rel=1e-6), column


def test_the_calibrated_count_is_per_connection_and_fits_the_value_time(conns_run: Path) -> None:
    """loops.json holds operations per connection per value (what a driver case's ``n`` is):
    at the median time the run measured per operation on each connection, that many fill
    about one value time, not ``conns`` of them (they filled 1,000 at 1,000 connections
    before: a value of 0.1 s took 100 s)."""
    import json

    loops = json.loads((conns_run / "loops.json").read_text())
    table = pd.read_csv(conns_run / "table.csv", keep_default_na=False)
    checked = 0
    for case in table["case"]:
        samples = load_samples(conns_run, case)
        ops = samples["v_ops"].astype(float)
        per_conn_op_s = float(np.median(samples["v_elapsed_ns"] / 1e9 / (ops / 8)))
        count = int(loops[case])
        if count >= 20000 or per_conn_op_s * 8 > 0.01:  # capped by the case, or one op is long
            continue
        assert count * per_conn_op_s < 4 * 0.01, (case, count, per_conn_op_s)
        checked += 1
    assert checked >= 3
