"""Stored runs as analysis and reports see them: a run directory read once.

Everything here reads run directories written by :mod:`flushbench.results` and nothing else.
Two kinds of observation come from a case's samples file:

* per-value rates: one per timed pyperf value, from ``values_s_per_msg``: bits/s for the
  throughput workloads (stream, file), messages/s for the others. They carry the run-to-run
  noise (processes x values), so they are what significance tests use.
* per-operation latencies (``lat_ns``), from which percentiles and CCDFs are drawn; where the
  samples also hold ``ops_per_value``, the p50 of each value is an observation too.

Runs of schema 2 (interleaved rounds) also hold ``trials.csv`` (a row per case and round) and
``verdicts.csv`` (each case against its baseline, paired by round); :attr:`StoredRun.trials`
and :attr:`StoredRun.verdicts` read them on first use, and are empty (with their columns) for
older runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..case import THROUGHPUT_WORKLOADS
from ..errors import ResultsError
from ..results import find_runs, load_samples, read_csv, read_meta, read_table
from ..untrusted import check_case_ids, numbers
from . import slots as slotting
from .verdicts import VERDICT_COLUMNS, VERDICTS

TRIALS = "trials.csv"
# The columns of trials.csv, as run/trials.py writes them (analysis may not import run/; a
# test holds the two lists equal).
TRIAL_COLUMNS = ["case", "workload", "round", "cell", "position", "start_s", "end_s", "cpu",
                 "pid", "loops", "values", "throughput_bps", "msgs_per_s", "lat_p50_us",
                 "lat_p99_us", "segs_per_msg", "send_calls_per_msg", "cpu_s_per_gb_client",
                 "cpu_s_per_gb_peer", "host_speed", "ready_us", "error"]
_TRIAL_TEXT = ("case", "workload", "cell", "cpu", "error")
_TRIAL_NUMBERS = [c for c in TRIAL_COLUMNS if c not in _TRIAL_TEXT]
_VERDICT_TEXT = ("case", "baseline", "axis", "metric", "verdict")
_VERDICT_FLOAT = ("ratio", "ci_low", "ci_high", "p_value", "q_value")
_CASE_IDS = {TRIALS: ("case",), VERDICTS: ("case", "baseline")}
# A ratio to a baseline no measurement comes near (sndbuf=1 against auto: 600x); past it a
# log axis around it overflows.
RATIO_RANGE = (1e-12, 1e12)


def _read_csv(path: Path, columns: list[str], text: tuple[str, ...]) -> pd.DataFrame:
    """A run's CSV file with ``columns`` first (missing ones added); empty when absent.

    Its case ids are checked as table.csv's are (a case id names a samples file)."""
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype="object" if c in text else "float64")
                             for c in columns})
    frame = read_csv(path, text)
    if "case" not in frame.columns:
        raise ResultsError(f"{path} lacks the column case; it is not a flushbench file")
    for col in columns:
        if col not in frame.columns:
            frame[col] = pd.NA
    frame = frame[columns + [c for c in frame.columns if c not in columns]]
    for col in text:
        frame[col] = frame[col].fillna("").astype(str)
    for col in _CASE_IDS.get(path.name, ()):
        check_case_ids(frame[col], path, col)
    return frame


@dataclass(frozen=True)
class StoredRun:
    """One run directory, read once; samples are read lazily and cached."""

    path: Path
    meta: dict[str, Any]
    table: pd.DataFrame
    _cache: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False,
                                                       compare=False)
    _frames: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)

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
        """The finished single-connection cases (no error), without the A/A twins: what
        charts and advice use (driver cases: :attr:`driver_ok`).

        A twin is its cell's baseline under a second label; it belongs in the noise floor and
        the full table, not beside its baseline in a chart.
        """
        ok: pd.DataFrame = self._finished()[~self._many()]
        return ok

    @property
    def driver_ok(self) -> pd.DataFrame:
        """The finished driver cases (many connections each), without twins: the report's
        section on drivers, never beside single-connection cases in a chart or advice."""
        many: pd.DataFrame = self._finished()[self._many()]
        return many

    def _finished(self) -> pd.DataFrame:
        twin = self.table["twin"].fillna(False).astype(bool)
        done: pd.DataFrame = self.table[(self.table["error"] == "") & ~twin]
        return done

    def _many(self) -> pd.Series:
        """Per row of :meth:`_finished`: a driver case."""
        driver = self._finished()["driver"].fillna("").astype(str)
        return ~driver.isin(["", "nan", "<NA>"])

    @property
    def trials(self) -> pd.DataFrame:
        """trials.csv: a row per case and round (empty for runs before schema 2)."""
        if "trials" not in self._frames:
            path = self.path / TRIALS
            frame = _read_csv(path, TRIAL_COLUMNS, _TRIAL_TEXT)
            self._frames["trials"] = numbers(frame, _TRIAL_NUMBERS, path, whole=["round"],
                                             inf_as_missing=True)
        return self._frames["trials"]

    @property
    def verdicts(self) -> pd.DataFrame:
        """verdicts.csv: each comparison and metric, paired by round (empty before schema 2)."""
        if "verdicts" not in self._frames:
            path = self.path / VERDICTS
            frame = numbers(_read_csv(path, VERDICT_COLUMNS, _VERDICT_TEXT),
                            [*_VERDICT_FLOAT, "rounds"], path, whole=["rounds"],
                            within={c: RATIO_RANGE for c in ("ratio", "ci_low", "ci_high")})
            for col in _VERDICT_FLOAT:
                frame[col] = frame[col].astype(float)
            frame["rounds"] = frame["rounds"].fillna(0).astype(int)
            frame["higher_is_better"] = frame["higher_is_better"].map(
                lambda v: str(v).strip().lower() in ("true", "1")).astype(bool)
            self._frames["verdicts"] = frame
        return self._frames["verdicts"]

    @property
    def failed(self) -> pd.DataFrame:
        failed: pd.DataFrame = self.table[self.table["error"] != ""]
        return failed

    def samples(self, case_id: str) -> dict[str, np.ndarray]:
        if case_id not in self._cache:
            self._cache[case_id] = load_samples(self.path, case_id)
        return self._cache[case_id]

    def slot_figures(self, case_id: str, column: str) -> dict[int, np.ndarray] | None:
        """A case's values' figures of ``column`` by round, in slot order (None without
        them: ``slots.py``)."""
        return slotting.from_samples(self.samples(case_id), column)

    def value_rates(self, row: Any) -> np.ndarray | None:
        """Per-value rates of one case: bits/s (stream, file) or messages/s (others)."""
        stored = self.samples(str(row["case"])).get("values_s_per_msg")
        if stored is None:
            return None
        values: np.ndarray = np.asarray(stored, dtype=float)
        values = values[np.isfinite(values) & (values > 0)]
        if values.size == 0:
            return None
        rates = (float(row["msg_size"]) * 8.0 / values if row["workload"] in THROUGHPUT_WORKLOADS
                 else 1.0 / values)
        rates = rates[np.isfinite(rates) & (rates > 0)]  # a run from elsewhere may hold 0s
        return rates if rates.size else None

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
        p50s = np.array([np.median(c) for c in chunks]) / 1000.0
        p50s = p50s[np.isfinite(p50s) & (p50s > 0)]  # latencies are positive and finite
        return p50s if p50s.size >= 2 else None

    def latencies_us(self, case_id: str) -> np.ndarray | None:
        lat = self.samples(case_id).get("lat_ns")
        if lat is None:
            return None
        values = np.asarray(lat, dtype=float)
        values = values[np.isfinite(values) & (values > 0)]  # as value_p50s_us
        return np.sort(values) / 1000.0 if values.size else None


def open_runs(paths: Iterable[str | Path],
              skip: Callable[[Path, str], None] | None = None) -> list[StoredRun]:
    """Read every run at or below each path, in the order given, each run once.

    A run that cannot be read raises ResultsError; with ``skip``, a broken run found inside
    a folder of runs is passed to it (its path and the one-line reason) and left out, so one
    corrupt copy does not stop the rest. A run named directly always raises.
    """
    seen: set[Path] = set()
    runs: list[StoredRun] = []
    for given in paths:
        found = find_runs(Path(given))
        for run_dir in found:
            key = run_dir.resolve()
            if key in seen:
                continue
            seen.add(key)
            try:
                meta = read_meta(run_dir)
                runs.append(StoredRun(run_dir, meta, read_table(run_dir, meta)))
            except ResultsError as exc:
                if skip is None or run_dir.resolve() == Path(given).resolve():
                    raise
                skip(run_dir, str(exc))
    if not runs:
        raise ResultsError("no runs given")
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):  # same machine and run id twice: name them by path
        runs = [StoredRun(r.path, {**r.meta, "run_id": f"{r.run_id}#{i}"}, r.table)
                for i, r in enumerate(runs, 1)]
    return runs
