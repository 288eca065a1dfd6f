"""Stored runs as analysis and reports see them: a run directory read once.

Everything here reads run directories written by :mod:`flushbench.results` and nothing else.
Two kinds of observation come from a case's samples file:

* per-value rates: one per timed pyperf value, from ``values_s_per_msg``: bits/s for the
  throughput workloads (stream, file), messages/s for the others. They carry the run-to-run
  noise (processes x values), so they are what significance tests use.
* per-operation latencies (``lat_ns``), from which percentiles and CCDFs are drawn; where the
  samples also hold ``ops_per_value``, the p50 of each value is an observation too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..case import THROUGHPUT_WORKLOADS
from ..errors import ResultsError
from ..results import find_runs, load_samples, read_meta, read_table


@dataclass(frozen=True)
class StoredRun:
    """One run directory, read once; samples are read lazily and cached."""

    path: Path
    meta: dict[str, Any]
    table: pd.DataFrame
    _cache: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False,
                                                       compare=False)

    @property
    def machine(self) -> str:
        return str(self.meta.get("machine_id") or self.path.parent.name)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)

    @property
    def label(self) -> str:
        return f"{self.machine}/{self.run_id}"

    @property
    def ok(self) -> pd.DataFrame:
        """The finished cases (no error)."""
        ok: pd.DataFrame = self.table[self.table["error"] == ""]
        return ok

    @property
    def failed(self) -> pd.DataFrame:
        failed: pd.DataFrame = self.table[self.table["error"] != ""]
        return failed

    def samples(self, case_id: str) -> dict[str, np.ndarray]:
        if case_id not in self._cache:
            self._cache[case_id] = load_samples(self.path, case_id)
        return self._cache[case_id]

    def value_rates(self, row: Any) -> np.ndarray | None:
        """Per-value rates of one case: bits/s (stream, file) or messages/s (others)."""
        stored = self.samples(str(row["case"])).get("values_s_per_msg")
        if stored is None:
            return None
        values: np.ndarray = np.asarray(stored, dtype=float)
        values = values[np.isfinite(values) & (values > 0)]
        if values.size == 0:
            return None
        if row["workload"] in THROUGHPUT_WORKLOADS:
            return float(row["msg_size"]) * 8.0 / values
        return 1.0 / values

    def value_p50s_us(self, case_id: str) -> np.ndarray | None:
        """The p50 latency of each timed value, when the samples record ops per value."""
        data = self.samples(case_id)
        lat, ops = data.get("lat_ns"), data.get("ops_per_value")
        if lat is None or ops is None:
            return None
        ops = np.asarray(ops, dtype=np.int64)
        if ops.size < 2 or (ops <= 0).any() or int(ops.sum()) != np.asarray(lat).size:
            return None
        chunks = np.split(np.asarray(lat, dtype=float), np.cumsum(ops)[:-1])
        return np.array([np.median(c) for c in chunks]) / 1000.0

    def latencies_us(self, case_id: str) -> np.ndarray | None:
        lat = self.samples(case_id).get("lat_ns")
        if lat is None or np.asarray(lat).size == 0:
            return None
        return np.sort(np.asarray(lat, dtype=float)) / 1000.0


def open_runs(paths: Iterable[str | Path]) -> list[StoredRun]:
    """Read every run at or below each path, in the order given, each run once."""
    seen: set[Path] = set()
    runs: list[StoredRun] = []
    for given in paths:
        for run_dir in find_runs(Path(given)):
            key = run_dir.resolve()
            if key in seen:
                continue
            seen.add(key)
            meta = read_meta(run_dir)
            runs.append(StoredRun(run_dir, meta, read_table(run_dir, meta)))
    if not runs:
        raise ResultsError("no runs given")
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):  # same machine and run id twice: name them by path
        runs = [StoredRun(r.path, {**r.meta, "run_id": f"{r.run_id}#{i}"}, r.table)
                for i, r in enumerate(runs, 1)]
    return runs
