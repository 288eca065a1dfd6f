"""One visit's worker process: started with the visit's plan, bounded in time, always reaped.

The worker (``python -m flushbench.measure.visit``) gets a clean environment, as pyperf gives
its workers (the environment's size moves memory layout, and so timings): PATH, HOME, the
locale and TZ, the PYTHONPATH that finds this flushbench, plus what ``--inherit-environ``
names. Its stderr goes to a file whose last line names the reason when a case has no result.
The peer's ticket reaches it as one line on its stdin: not in argv (any local user can read
those in /proc), not in the environment, not in the visit's file.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import procs
from ..case import Case
from .trials import read_record

KEEP_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")


def worker_env(inherit: str | None) -> dict[str, str]:
    """A clean environment for a worker, with what ``--inherit-environ`` asks to keep."""
    full = procs.child_env()
    keep = set(KEEP_ENV) | {"PYTHONPATH"} | {v for v in (inherit or "").split(",") if v}
    return {k: v for k, v in full.items() if k in keep}


@dataclass(frozen=True)
class VisitSpec:
    """What one worker process measures: the cases in order, and how."""

    round: int
    cases: tuple[Case, ...]
    loops: dict[str, int]  # frozen loops per case (0 or absent: calibrate in this visit)
    values: int
    warmups: int
    value_time: float
    io_timeout: float
    epoch: float  # the run's start (time.time()): trial start times are relative to it
    strategy_plugins: tuple[str, ...] = ()
    seed: int = 0  # orders the visit's slots (derived from the run's seed)
    tls_ca: str | None = None  # the run's CA certificate, for TLS cases (a path, not a key)
    cc: str = ""  # the client sockets' congestion control ("": the host's default)
    sink: str = ""  # what the connections ask of the peer's one-way reads (sink.for_cases)

    def to_json(self) -> str:
        return json.dumps({
            "round": self.round, "cases": [c.to_dict() for c in self.cases],
            "loops": {c.id: self.loops.get(c.id, 0) for c in self.cases},
            "values": self.values, "warmups": self.warmups, "value_time": self.value_time,
            "io_timeout": self.io_timeout, "epoch": self.epoch, "seed": self.seed,
            "strategy_plugins": list(self.strategy_plugins), "tls_ca": self.tls_ca,
            "cc": self.cc, "sink": self.sink})


def run_visit(spec: VisitSpec, folder: Path, peer: str, worker_args: Sequence[str],
              env: dict[str, str], timeout: float, cpu: int | None = None,
              ticket: str | None = None) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Run one visit; return each case's record and latencies, in the visit's order.

    ``ticket``: the peer's (each data hello carries it), written to the
    worker's stdin. A case the worker left no result for (it died, or ran out of
    ``timeout``) gets a record whose ``error`` says why.
    """
    folder.mkdir(parents=True, exist_ok=True)
    plan = folder / "visit.json"
    plan.write_text(spec.to_json())
    argv = [sys.executable, "-m", "flushbench.measure.visit", "--visit", str(plan),
            "--peer", peer, "--out", str(folder), *worker_args]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    err_path = folder / "worker.err"
    reason = ""
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if ticket else subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            if proc.stdin is not None:  # one short line: the pipe takes it without blocking
                with contextlib.suppress(OSError), proc.stdin:
                    proc.stdin.write(f"{ticket}\n".encode())
            code = procs.wait(proc, timeout)
            if code:
                reason = f"the visit's worker exited with code {code}"
        except subprocess.TimeoutExpired:
            reason = f"timed out after {timeout:.0f} s (the visit's worker was stopped)"
        finally:
            procs.stop(proc)  # also on Ctrl-C: never leave a worker behind
    lines = [ln for ln in err_path.read_text(errors="replace").splitlines() if ln.strip()]
    out = []
    for case in spec.cases:
        record, lat = read_record(folder, case)
        if record.get("error") and not record.get("values") and (reason or lines):
            if "left no result" in str(record["error"]):
                record["error"] = lines[-1] if lines else reason
        out.append((record, lat))
    return out
