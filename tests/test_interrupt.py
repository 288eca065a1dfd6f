"""Ctrl-C at any moment keeps every finished case, leaves no process behind, and
``--resume`` completes the run to the same table a whole run gives."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import flushbench
from flushbench.analysis.cells import cells
from flushbench.schema import NAMES
from flushbench.suites import load_suite
from test_run import ROOT, TESTS, flushbench_cli

REPEATS = int(os.environ.get("FLUSHBENCH_INTERRUPT_REPEATS", "10"))


def session_members(sid: int) -> list[int]:
    """PIDs of live (not zombie) processes in session ``sid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def start_run(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)]),
           "PYTHONFAULTHANDLER": "1"}  # a fatal error shows every thread's stack
    return subprocess.Popen([sys.executable, "-m", "flushbench", "run", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT, start_new_session=True)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_sigint_at_random_moments_then_resume(tmp_path: Path) -> None:
    """10 times: Ctrl-C the smoke run, check what is left, resume it to a full table."""
    rng = random.Random(20261121)
    smoke = load_suite("smoke")
    in_order = [c.id for cell in cells(smoke.cases) for c in cell.cases]  # twins included
    expected = sorted(in_order)
    resumed_partial = 0
    for attempt in range(REPEATS):
        out = tmp_path / f"run{attempt}"
        proc = start_run("--suite", "smoke", "--out", str(out), "--quiet")
        if attempt % 4 == 0:  # early: importing, starting the peer, calibrating
            time.sleep(rng.uniform(0.3, 3.0))
        else:  # mid-run, however long the start took on this host (once over 4 s)
            started = time.monotonic() + 60
            while not (out / "meta.json").exists() and proc.poll() is None and \
                    time.monotonic() < started:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 5.0))
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
        _, err = proc.communicate(timeout=60)
        deadline = time.monotonic() + 10
        while session_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session_members(proc.pid) == [], f"attempt {attempt}: processes left behind"
        if proc.returncode == 0:
            assert len(flushbench.load(out)) == len(expected)
            continue  # it finished before the signal arrived: nothing to resume
        if not (out / "meta.json").exists():
            # stopped before the run directory existed (still importing, or starting the peer)
            assert proc.returncode in (130, -signal.SIGINT), err
            continue
        assert proc.returncode == 130, f"attempt {attempt}: exit {proc.returncode}: {err}"
        assert f"flushbench run --resume {out}" in err.splitlines()  # on a line of its own
        assert "Benchmark interrupted" not in err and "Traceback" not in err, err  # no leaks
        kept = flushbench.load(out)
        assert set(kept["case"]) <= set(expected)
        assert (kept["error"] == "").all(), "an interrupted case must not be kept as a row"
        resumed_partial += len(kept) < len(expected)
        done = flushbench_cli("run", "--resume", str(out), "--quiet", timeout=120)
        assert done.returncode == 0, done.stderr
        table = flushbench.load(out)
        assert sorted(table["case"]) == expected
        assert list(table["case"]) == in_order
        assert set(NAMES) <= set(table.columns) and (table["error"] == "").all()
        trials = pd.read_csv(out / "trials.csv")  # every case measured once in every round
        assert trials.groupby("case")["round"].nunique().eq(smoke.rounds).all()
        assert not trials.duplicated(["case", "round"]).any()
        assert (out / "verdicts.csv").exists()
        assert not list(out.glob(".parts-*")), "worker scratch left in the run directory"
    assert resumed_partial >= REPEATS // 4, "too few interrupts landed mid-run to prove much"
