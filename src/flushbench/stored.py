"""Stored runs as the report and the comparison see them: meta, table and observations.

Everything here reads run directories written by :mod:`flushbench.results` and nothing
else. Two kinds of observation come from a case's samples file:

* per-value rates — one per timed pyperf value, from ``values_s_per_msg``: bits/s for the
  throughput workloads (stream, file), messages/s for the others. They carry the
  run-to-run noise (processes × values), so they are what significance tests use.
* per-operation latencies (``lat_ns``), from which percentiles and CCDFs are drawn; where
  the samples also hold ``ops_per_value``, the p50 of each value is an observation too.

Statistics come from scipy; nothing here hand-rolls a test or an interval.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .errors import ResultsError
from .results import find_runs, load_samples, read_meta, read_table

THROUGHPUT_WORKLOADS = ("stream", "file")
ALPHA = 0.05  # significance level: 95 % intervals throughout
BOOT_RESAMPLES = 999
BOOT_MAX_SAMPLES = 2000  # latency samples per side fed to the bootstrap (keeps it < 0.3 s)
SEED = 20240601  # fixed: unchanged data must give unchanged reports

# Options that, with the strategy, make a "configuration"; msg_size is the x axis.
OPTION_COLUMNS = ("nodelay", "sndbuf", "rcvbuf", "notsent_lowat", "parts", "reply", "batch",
                  "buffer", "transport")
SIZE_BANDS = ((0, 1024, "small (< 1 KiB)"), (1024, 64 * 1024, "medium (1–64 KiB)"),
              (64 * 1024, math.inf, "large (≥ 64 KiB)"))


@dataclass(frozen=True)
class Headline:
    """The figure a workload is judged by."""

    column: str
    label: str
    higher_is_better: bool


def headline(workload: str) -> Headline:
    if workload in THROUGHPUT_WORKLOADS:
        return Headline("throughput_bps", "throughput", True)
    return Headline("lat_p50_us", "p50 latency", False)


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
        return self.table[self.table["error"] == ""]

    @property
    def failed(self) -> pd.DataFrame:
        return self.table[self.table["error"] != ""]

    def samples(self, case_id: str) -> dict[str, np.ndarray]:
        if case_id not in self._cache:
            self._cache[case_id] = load_samples(self.path, case_id)
        return self._cache[case_id]

    def value_rates(self, row: Any) -> np.ndarray | None:
        """Per-value rates of one case: bits/s (stream, file) or messages/s (others)."""
        values = self.samples(str(row["case"])).get("values_s_per_msg")
        if values is None:
            return None
        values = np.asarray(values, dtype=float)
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


# -- statistics (scipy) ---------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """``new`` relative to ``ref``: a ratio with a 95 % interval and a test."""

    ratio: float
    low: float = math.nan
    high: float = math.nan
    p_value: float = math.nan
    method: str = ""

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.low) and (self.low > 1.0 or self.high < 1.0))


def _seeded(kwargs: dict[str, Any]) -> dict[str, Any]:
    # scipy >= 1.15 spells the generator ``rng``; older ones ``random_state``.
    params = inspect.signature(stats.bootstrap).parameters
    key = "rng" if "rng" in params else "random_state"
    return {**kwargs, key: np.random.default_rng(SEED)}


def compare_rates(ref: np.ndarray | None, new: np.ndarray | None,
                  method: str = "Welch t on log per-value rates") -> Comparison | None:
    """Ratio of geometric means with Welch's t interval on the logs (scipy).

    Used for per-value rates and for per-value p50 latencies alike: one observation per
    timed value, so the interval carries the noise between values and processes.
    """
    if ref is None or new is None or len(ref) < 2 or len(new) < 2:
        return None
    lref, lnew = np.log(ref), np.log(new)
    ratio = float(np.exp(lnew.mean() - lref.mean()))
    if np.ptp(lref) == 0 and np.ptp(lnew) == 0:  # no spread at all: no test possible
        return Comparison(ratio, method=f"{method} (no spread)")
    res = stats.ttest_ind(lnew, lref, equal_var=False)
    ci = res.confidence_interval(confidence_level=1 - ALPHA)
    return Comparison(ratio, float(np.exp(ci.low)), float(np.exp(ci.high)), float(res.pvalue),
                      method)


def _median_ratio(new: np.ndarray, ref: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(new, axis=axis) / np.median(ref, axis=axis)


def _thin(a: np.ndarray) -> np.ndarray:
    if a.size <= BOOT_MAX_SAMPLES:
        return a
    return np.random.default_rng(SEED).choice(a, BOOT_MAX_SAMPLES, replace=False)


def compare_latency(ref: np.ndarray | None, new: np.ndarray | None) -> Comparison | None:
    """Ratio of pooled p50 latencies; percentile-bootstrap interval, Mann–Whitney U (scipy).

    The fallback when samples do not say which value each operation belongs to: pooled
    operations are not independent, so this interval understates run-to-run noise.
    """
    if ref is None or new is None or len(ref) < 5 or len(new) < 5:
        return None
    ratio = float(np.median(new) / np.median(ref))
    p_value = float(stats.mannwhitneyu(new, ref).pvalue)
    a, b = _thin(np.asarray(ref)), _thin(np.asarray(new))
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return Comparison(ratio, p_value=p_value, method="bootstrap (no spread)")
    res = stats.bootstrap((b, a), _median_ratio, **_seeded(dict(
        n_resamples=BOOT_RESAMPLES, method="percentile", vectorized=True,
        confidence_level=1 - ALPHA)))
    ci = res.confidence_interval
    return Comparison(ratio, float(ci.low), float(ci.high), p_value,
                      "bootstrap of pooled p50 ratio; Mann–Whitney U")


def geomean(values: Sequence[float]) -> float:
    arr = np.asarray([v for v in values if np.isfinite(v) and v > 0], dtype=float)
    return float(stats.gmean(arr)) if arr.size else math.nan


# -- labels and units -----------------------------------------------------------------------

def size_label(n: Any) -> str:
    try:
        n = int(n)
    except (TypeError, ValueError):
        return "?"
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def size_band(n: float) -> str:
    for low, high, name in SIZE_BANDS:
        if low <= n < high:
            return name
    return SIZE_BANDS[-1][2]


def fmt_bps(bps: Any) -> str:
    if not _finite(bps):
        return "–"
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if abs(bps) >= scale:
            return f"{bps / scale:.3g} {unit}"
    return f"{bps:.3g} bit/s"


def fmt_us(us: Any) -> str:
    if not _finite(us):
        return "–"
    if us >= 1e6:
        return f"{us / 1e6:.3g} s"
    if us >= 1e3:
        return f"{us / 1e3:.3g} ms"
    return f"{us:.3g} µs"


def fmt_num(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if _finite(x) else "–"


def fmt_ratio(x: Any) -> str:
    if not _finite(x):
        return "–"
    return f"{x:,.0f}×" if x >= 100 else f"{x:.3g}×"


def fmt_headline(workload: str, value: Any) -> str:
    return fmt_bps(value) if workload in THROUGHPUT_WORKLOADS else fmt_us(value)


def _finite(x: Any) -> bool:
    try:
        return x is not None and x is not pd.NA and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def is_true(x: Any) -> bool:
    """True for True/1, False for False/0/NA/None (a nullable boolean cell)."""
    return x is not None and x is not pd.NA and not (isinstance(x, float) and math.isnan(x)) \
        and bool(x)


def options_label(row: Any, with_size: bool = False) -> str:
    """'nodelay on, sndbuf auto' plus any option that is not at its default."""
    bits = [f"nodelay {'on' if is_true(row.get('nodelay')) else 'off'}",
            "sndbuf " + (size_label(row["sndbuf"]) if _finite(row.get("sndbuf"))
                         and row["sndbuf"] > 0 else "auto")]
    for col, name in (("rcvbuf", "rcvbuf"), ("notsent_lowat", "notsent_lowat"),
                      ("buffer", "buffer"), ("reply", "reply")):
        if _finite(row.get(col)) and row[col] > 0:
            bits.append(f"{name} {size_label(row[col])}")
    if _finite(row.get("batch")) and row["batch"] > 1:
        bits.append(f"batch {int(row['batch'])}")
    if with_size:
        bits.insert(0, size_label(row["msg_size"]))
    return ", ".join(bits)


VARIANT_COLUMNS = (("rcvbuf", "rcvbuf"), ("notsent_lowat", "lowat"), ("buffer", "buf"),
                   ("reply", "reply"), ("batch", "k"), ("parts", "parts"))


def variant_label(row: Any, columns: Iterable[str] | None = None) -> str:
    """Options other than nodelay and sndbuf, as 'buf 64 KiB k16' ('' if none).

    ``columns`` limits the label to options that vary (a legend need not repeat what every
    line shares); by default every option not at its default is named.
    """
    bits = []
    for col, name in VARIANT_COLUMNS:
        if (columns is not None and col not in columns) or not _finite(row.get(col)):
            continue
        value = int(row[col])
        default = {"batch": 1, "parts": 2}.get(col, 0)
        if columns is None and value == default:
            continue
        if col == "batch":
            bits.append(f"k{value}")
        elif col == "parts":
            bits.append(f"{value} parts")
        else:
            bits.append(f"{name} {size_label(value) if value else 'default'}")
    return " ".join(bits)


def with_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Add plain ``nd`` (bool), ``sb`` (int, 0 = auto) and ``series`` (strategy + the options
    that vary between cases of the same workload and size)."""
    frame = frame.copy()
    frame["nd"] = [is_true(v) for v in frame["nodelay"]]
    frame["sb"] = pd.to_numeric(frame["sndbuf"], errors="coerce").fillna(0).astype(int)
    # An option "varies" when cases of one workload and size differ in it (so an rr reply
    # that simply follows the size is not repeated in every legend entry).
    varying = {wl: {c for c, _ in VARIANT_COLUMNS
                    if part.groupby("msg_size")[c].nunique(dropna=True).max() > 1}
               for wl, part in frame.groupby("workload")}
    frame["series"] = [
        (f"{r['strategy']} · {v}" if (v := variant_label(r, varying[r["workload"]]))
         else r["strategy"]) for _, r in frame.iterrows()]
    return frame
