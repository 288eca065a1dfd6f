"""Trials: what one case measured in one round, and everything a case measured so far.

A visit's worker leaves one record per case (``measure/visit.py``). Here a record becomes a
*trial row* (``trials.csv``: the per-round figures the paired verdicts are taken on) and joins
the case's accumulated values and samples, from which the case's table row, its samples file
and its pyperf Benchmark (one pyperf Run per trial) are made.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyperf

from ..analysis import slots as slotting
from ..case import Case
from ..results import ResultRow, load_samples
from .merge import failed_row, summarize

TRIALS = "trials.csv"
TRIAL_COLUMNS = ["case", "workload", "round", "cell", "position", "start_s", "end_s", "cpu",
                 "pid", "loops", "values", "throughput_bps", "msgs_per_s", "lat_p50_us",
                 "lat_p99_us", "segs_per_msg", "send_calls_per_msg", "cpu_s_per_gb_client",
                 "cpu_s_per_gb_peer", "host_speed", "ready_us", "error"]
# A value's counters, kept per value in the samples file (``v_<field>``) so that an
# interrupted run resumes with everything it measured.
VALUE_FIELDS = ("ops", "msgs", "bytes", "reply_bytes", "elapsed_ns", "cpu_client_ns",
                "cpu_peer_ns", "calls", "segs", "retrans", "tls_bytes")
EFFECTIVE = ("nodelay_eff", "sndbuf_eff", "rcvbuf_eff", "notsent_lowat_eff", "cc_eff",
             "peer_sink", "opt_mismatch", "rtt_us", "tls_handshake_us", "tls_cipher",
             "tls_record_bytes")
_FIGURES = ("throughput_bps", "msgs_per_s", "lat_p50_us", "lat_p99_us", "segs_per_msg",
            "send_calls_per_msg", "cpu_s_per_gb_client", "cpu_s_per_gb_peer")


def read_record(folder: Path, case: Case) -> tuple[dict[str, Any], np.ndarray]:
    """A case's record from a visit's output folder, and its latencies (ns)."""
    path = folder / f"{case.id}.json"
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {"case": case.id, "values": [], "error": "the visit's worker left no result "
                  "for this case (it died or timed out before it)"}
    lat_file = folder / f"{case.id}.lat"
    lat = np.fromfile(lat_file, dtype=np.int64) if lat_file.exists() else np.zeros(0, np.int64)
    return record, lat


def trial_row(case: Case, record: dict[str, Any], lat: np.ndarray, round_: int, cell: str,
              position: int, host_speed: float | None) -> dict[str, Any]:
    """One line of trials.csv."""
    row: dict[str, Any] = {"case": case.id, "workload": case.workload, "round": round_,
                           "cell": cell,
                           "position": position, "host_speed": host_speed}
    for key in ("start_s", "end_s", "cpu", "pid", "loops"):
        row[key] = record.get(key)
    values = record.get("values") or []
    row["values"] = len(values)
    error = str(record.get("error") or "")
    if not values and not error:
        error = "no values measured"
    row["error"] = " ".join(error.split())[:500]
    if values and not error:
        figures, _ = summarize(case, values, record.get("effective") or {}, lat,
                               int(record.get("loops") or 0))
        for key in _FIGURES:
            row[key] = figures.get(key)
        ready = [v["ready_ns"] for v in values if v.get("ready_ns")]
        row["ready_us"] = statistics.median(ready) / 1e3 if ready else None
    return row


@dataclass
class CaseTrials:
    """Everything one case measured so far, over all its finished trials."""

    case: Case
    values: list[dict[str, Any]] = field(default_factory=list)
    value_rounds: list[int] = field(default_factory=list)
    lat: list[np.ndarray] = field(default_factory=list)
    effective: dict[str, Any] = field(default_factory=dict)
    loops: int = 0
    errors: list[str] = field(default_factory=list)
    host_speeds: list[float] = field(default_factory=list)

    def add(self, record: dict[str, Any], lat: np.ndarray, round_: int,
            host_speed: float | None) -> None:
        values = record.get("values") or []
        if record.get("error") or not values:
            self.errors.append(str(record.get("error") or "no values measured"))
            return
        self.values.extend(values)
        self.value_rounds.extend([round_] * len(values))
        self.lat.append(lat)
        self.effective = record.get("effective") or self.effective
        self.loops = int(record.get("loops") or self.loops)
        if host_speed is not None:
            self.host_speeds.append(host_speed)

    def row(self) -> tuple[ResultRow, dict[str, np.ndarray] | None]:
        """The case's table row over all trials (a failed row when none finished)."""
        if not self.values:
            return failed_row(self.case, self.reason()), None
        lat = np.concatenate(self.lat) if self.lat else np.zeros(0, np.int64)
        out, samples = summarize(self.case, self.values, self.effective, lat, self.loops)
        out["host_speed"] = float(np.mean(self.host_speeds)) if self.host_speeds else None
        samples["round_of_value"] = np.asarray(self.value_rounds, dtype=np.int64)
        for key in VALUE_FIELDS:
            samples[f"v_{key}"] = np.asarray([-1 if v.get(key) is None else v[key]
                                              for v in self.values], dtype=np.int64)
        if self.case.driver:  # each value's connection times, value after value
            samples["v_conn_ns"] = np.asarray([t for v in self.values
                                               for t in (v.get("conn_ns") or [])], np.int64)
        return out, samples

    def slot_figures(self, column: str) -> dict[int, np.ndarray] | None:
        """Each value's figure of ``column`` by round, in slot order (what a throughput or
        p50 verdict pairs: ``analysis/slots.py``)."""
        if column == slotting.THROUGHPUT:
            return slotting.slot_rates(self.value_rounds,
                                       [v.get("bytes", 0) for v in self.values],
                                       [v.get("elapsed_ns", 0) for v in self.values])
        if column == slotting.P50 and self.lat:
            return slotting.value_p50s(self.value_rounds, np.concatenate(self.lat),
                                       [v.get("ops", 0) for v in self.values])
        return None

    def restore(self, run_dir: Path, row: dict[str, Any]) -> None:
        """Take back what an interrupted run stored of this case (its samples file)."""
        data = load_samples(run_dir, self.case.id)
        if "round_of_value" not in data or "v_msgs" not in data:
            return
        rounds = [int(r) for r in data["round_of_value"]]
        columns = {k: data[f"v_{k}"] for k in VALUE_FIELDS if f"v_{k}" in data}
        self.values = [{k: (None if k in ("segs", "retrans", "calls") and int(col[i]) < 0
                            else int(col[i]))
                        for k, col in columns.items()} for i in range(len(rounds))]
        conn_ns = data.get("v_conn_ns")
        if conn_ns is not None and conn_ns.size == len(self.values) * self.case.conns:
            for i, value in enumerate(self.values):
                value["conn_ns"] = [int(t) for t in conn_ns[i * self.case.conns:
                                                            (i + 1) * self.case.conns]]
        for value in self.values:  # -1: no TLS (or no bytes_sent counter)
            if value.get("tls_bytes", 0) < 0:
                value["tls_bytes"] = None
        self.value_rounds = rounds
        self.lat = [np.asarray(data.get("lat_ns", np.zeros(0, np.int64)), dtype=np.int64)]
        self.effective = {k: row.get(k) for k in EFFECTIVE}
        self.loops = int(row.get("loops") or 0)
        speed = row.get("host_speed")
        if speed is not None and np.isfinite(float(speed)):
            self.host_speeds = [float(speed)]

    def reason(self) -> str:
        """Why the case failed: the first error of a trial that reached the peer (a refused
        connect is only the echo of a peer that an earlier trial saw die)."""
        real = [e for e in self.errors if not e.startswith("cannot connect to the peer")]
        return (real or self.errors or ["not run"])[0]

    def benchmark(self, metadata: dict[str, Any]) -> pyperf.Benchmark | None:
        """The case as one pyperf Benchmark: a Run per trial, seconds per message."""
        runs = []
        for round_ in sorted(set(self.value_rounds)):
            vals = [v for v, r in zip(self.values, self.value_rounds) if r == round_]
            seconds = [v["elapsed_ns"] / 1e9 / v["msgs"] for v in vals if v["msgs"]]
            if not seconds:
                continue
            md = {**metadata, "name": self.case.id, "loops": max(1, self.loops),
                  "inner_loops": self.case.msgs_per_op, "unit": "second",
                  "flushbench_round": round_}
            runs.append(pyperf.Run(seconds, metadata=md, collect_metadata=False))
        return pyperf.Benchmark(runs) if runs else None
