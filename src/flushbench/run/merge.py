"""Turn what the workers left in the parts directory into one table row and its samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..analysis.fairness import stream_figures
from ..case import Case
from ..errors import PeerError

if TYPE_CHECKING:
    from ..results import ResultRow

PercentileColumn = Literal["lat_p50_us", "lat_p90_us", "lat_p99_us", "lat_p999_us"]
PERCENTILES: dict[PercentileColumn, float] = {"lat_p50_us": 50, "lat_p90_us": 90,
                                              "lat_p99_us": 99, "lat_p999_us": 99.9}


def case_row(case: Case) -> ResultRow:
    """The case's own columns (what was asked)."""
    return {"case": case.id, "workload": case.workload, "strategy": case.strategy,
            "nodelay": case.nodelay, "sndbuf": case.sndbuf, "rcvbuf": case.rcvbuf,
            "notsent_lowat": case.notsent_lowat, "msg_size": case.msg_size,
            "parts": case.parts, "reply": case.reply_size, "batch": case.batch,
            "buffer": case.buffer, "transport": case.transport, "twin": case.twin,
            "tls": case.tls, "tls_version": case.tls_version if case.tls else "",
            "conns": case.conns, "driver": case.driver}


def failed_row(case: Case, reason: str) -> ResultRow:
    row = case_row(case)
    row["error"] = " ".join(str(reason).split())[:500] or "failed"
    return row


def collect(case: Case, parts_dir: Path, loops: int
            ) -> tuple[ResultRow, dict[str, np.ndarray], list[dict[str, Any]]]:
    """Merge every worker's counters and samples for ``case``; remove its parts.

    Returns the table row, the samples and each worker's own phases (for a Timeline).
    """
    folder = Path(parts_dir) / case.id
    values: list[dict[str, Any]] = []
    effective: dict[str, Any] = {}
    phases: list[dict[str, Any]] = []
    lat_chunks = []
    for stats_file in sorted(folder.glob("*.json")):
        data = json.loads(stats_file.read_text())
        values.extend(data["values"])
        effective = data["effective"]  # the same options in every worker; keep the last
        phases.append(data.get("phases") or {})
        lat_file = stats_file.with_suffix(".lat")
        if lat_file.exists():
            lat_chunks.append(np.fromfile(lat_file, dtype=np.int64))
    shutil.rmtree(folder, ignore_errors=True)
    if not values:
        raise PeerError("the workers finished but left no measurements")
    lat = np.concatenate(lat_chunks) if lat_chunks else np.zeros(0, np.int64)
    row, samples = summarize(case, values, effective, lat, loops)
    return row, samples, phases


def tls_figures(row: ResultRow, values: list[dict[str, Any]], effective: dict[str, Any],
                msgs: float) -> None:
    """Records and overhead bytes per message (from each value's ``tls_bytes``: wire bytes
    over the payload, GO frame excluded), the negotiated cipher and the handshake."""
    extra = [v.get("tls_bytes") for v in values]
    per_msg = sum(int(x) for x in extra if x is not None) / msgs \
        if extra and None not in extra else None
    record = effective.get("tls_record_bytes")
    row["tls_overhead_bytes_per_msg"] = per_msg
    row["tls_records_per_msg"] = per_msg / record if per_msg is not None and record else None
    row["tls_record_bytes"] = record
    row["tls_cipher"] = str(effective.get("tls_cipher") or "")
    row["tls_handshake_us"] = effective.get("tls_handshake_us")


def connection_figures(row: ResultRow, values: list[dict[str, Any]]) -> None:
    """A driver case's fairness and per-connection spread, and both ends' CPU share: per
    value, each connection's rate is its bytes (ops x msg_size) over its own time; the
    columns are the means over values (a value with no per-connection times is left out)."""
    fair, low, high = [], [], []
    for v in values:
        ns = list(v.get("conn_ns") or [])
        if not ns or min(ns) <= 0:
            continue
        figures = stream_figures([v["bytes"] // len(ns)] * len(ns), ns)
        fair.append(figures.jain_fairness)
        low.append(figures.conn_min_bps)
        high.append(figures.conn_max_bps)
    row["jain_fairness"] = float(np.mean(fair)) if fair else None
    row["conn_min_bps"] = float(np.mean(low)) if low else None
    row["conn_max_bps"] = float(np.mean(high)) if high else None
    wall = sum(v["elapsed_ns"] for v in values)
    row["cpu_share_client"] = sum(v["cpu_client_ns"] for v in values) / wall if wall else None
    row["cpu_share_peer"] = sum(v["cpu_peer_ns"] for v in values) / wall if wall else None


def summarize(case: Case, values: list[dict[str, Any]], effective: dict[str, Any],
              lat: np.ndarray, loops: int) -> tuple[ResultRow, dict[str, np.ndarray]]:
    msgs = np.array([v["msgs"] for v in values], dtype=float)
    elapsed_s = np.array([v["elapsed_ns"] for v in values], dtype=float) / 1e9
    total_msgs, total_bytes = msgs.sum(), float(sum(v["bytes"] for v in values))
    total_s = elapsed_s.sum()
    per_value_rate = msgs / elapsed_s
    # CPU is spent on both directions: per GB moved (request + reply bytes)
    gb = (total_bytes + sum(v.get("reply_bytes", 0) for v in values)) / 1e9
    segs = [v["segs"] for v in values]
    row = case_row(case)
    row.update({
        "msgs_per_s": total_msgs / total_s,
        "throughput_bps": total_bytes * 8 / total_s,
        "rate_rsd": float(per_value_rate.std(ddof=1) / per_value_rate.mean())
        if len(values) > 1 else 0.0,
        "lat_samples": int(lat.size),
        "send_calls_per_msg": sum(v["calls"] for v in values) / total_msgs
        if None not in (v.get("calls") for v in values) else None,  # None: not counted
        "segs_per_msg": sum(segs) / total_msgs if None not in segs else None,
        "retrans": int(sum(v["retrans"] for v in values))
        if None not in (v.get("retrans") for v in values) else None,  # None: no TCP_INFO
        "rtt_us": effective.get("rtt_us"),
        "cpu_s_per_gb_client": sum(v["cpu_client_ns"] for v in values) / 1e9 / gb,
        "cpu_s_per_gb_peer": sum(v["cpu_peer_ns"] for v in values) / 1e9 / gb,
        "nodelay_eff": effective.get("nodelay_eff"),
        "sndbuf_eff": effective.get("sndbuf_eff"),
        "rcvbuf_eff": effective.get("rcvbuf_eff"),
        "notsent_lowat_eff": effective.get("notsent_lowat_eff"),
        "cc_eff": effective.get("cc_eff") or "",
        "peer_sink": sink if isinstance(sink := effective.get("peer_sink"), str) else "",
        "opt_mismatch": effective.get("opt_mismatch", ""),
        "msgs": int(total_msgs), "bytes": int(total_bytes), "values": len(values),
        "loops": loops, "duration_s": float(total_s), "error": "",
    })
    if case.tls:
        tls_figures(row, values, effective, float(total_msgs))
    if case.driver:
        connection_figures(row, values)
    if lat.size:
        us = lat / 1e3
        row["lat_mean_us"] = float(us.mean())
        row["lat_max_us"] = float(us.max())
        for col, q in PERCENTILES.items():
            row[col] = float(np.percentile(us, q))
    samples = {"lat_ns": lat, "values_s_per_msg": elapsed_s / msgs,
               "ops_per_value": np.array([v["ops"] for v in values], dtype=np.int64)}
    return row, samples
