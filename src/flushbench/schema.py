"""The results table's schema: its columns as stored in a run's ``table.csv`` and as users
get them from :func:`flushbench.load` and ``flushbench show --all --format csv|json|md``.

The stored names (:data:`COLUMNS`, :class:`ResultRow`) are flushbench's own: the writer,
the reports and the analysis read them, and they do not change. The public view
(:data:`PUBLIC`, :func:`to_public`) is what users get, one documented column each:

* names say their unit where a figure has one (``throughput_bit_s``, ``lat_p50_us``,
  ``host_speed_mloops_s``); the case's parameters keep the names of a suite's matrix keys
  (``msg_size``, ``sndbuf`` …: bytes) so that ``df.sndbuf == 65536`` reads like the suite;
* pandas nullable dtypes throughout (``Int64``, ``Float64``, ``boolean``, ``string``), and
  ``<NA>`` where an option was not set (``sndbuf`` 0 in the table: never set, autotuning),
  where a figure was not measured, or where a run predates the column;
* ``run`` and ``machine`` first, ``suite`` and ``created`` (UTC) from meta.json last.

Runs written by older versions load through the same view (the migration): the table reader
adds what an older table lacks (schema 1 had no ``twin``; runs before TLS, the drivers and the
host-speed probe lack those columns), and every public column is filled from it with the
defaults below. The column table is :func:`markdown_table`, appended to this docstring and
held equal to docs/api.md by a test.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import pandas as pd

# -- stored: table.csv's columns, as flushbench itself reads and writes them -----------------

CASE_COLUMNS = ["case", "workload", "strategy", "nodelay", "sndbuf", "rcvbuf", "notsent_lowat",
                "msg_size", "parts", "reply", "batch", "buffer", "transport", "twin", "tls",
                "tls_version", "conns", "driver"]
METRIC_COLUMNS = [
    "throughput_bps",  # payload bits per second sent by the client
    "msgs_per_s",
    "rate_rsd",  # relative standard deviation of the per-value rates (noise)
    "lat_mean_us", "lat_p50_us", "lat_p90_us", "lat_p99_us", "lat_p999_us", "lat_max_us",
    "lat_samples",
    "send_calls_per_msg",  # calls into the socket API per message
    "segs_per_msg",  # data segments sent per message (TCP_INFO tcpi_data_segs_out)
    "retrans",  # tcpi_total_retrans over the timed values
    "rtt_us",  # tcpi_rtt at the end of the case
    "cpu_s_per_gb_client", "cpu_s_per_gb_peer",  # CPU seconds per GB moved, both directions
    "nodelay_eff", "sndbuf_eff", "rcvbuf_eff", "notsent_lowat_eff",
    "cc_eff",  # the client socket's TCP congestion control, read back
    "peer_sink",  # what the peer did with the case's one-way data: discard or copy (sink.py)
    "opt_mismatch",  # empty when every option reads back as requested
    "msgs", "bytes", "values", "loops", "duration_s",
    "host_speed",  # the host's CPU speed around the case: million loops/s (hostspeed.py)
    "error",  # empty for a finished case; the reason for a failed one
    # TLS cases only (empty otherwise): see measure/tls.py
    "tls_records_per_msg",  # TLS records per message: tls_overhead_bytes_per_msg / tls_record_bytes
    "tls_overhead_bytes_per_msg",  # wire bytes (tcpi_bytes_sent) over the payload, per message
    "tls_record_bytes",  # what one record adds, from the version and cipher (22 for TLS 1.3)
    "tls_cipher",  # the negotiated version and cipher
    "tls_handshake_us",  # the handshake of the case's last trial (never inside a value)
    # driver cases only (empty otherwise): see measure/multisession.py. Per value, each
    # connection's rate (its bytes over its own time); then the mean over values of:
    "jain_fairness",  # Jain's index of those rates (1: all equal; 1/conns: one got it all)
    "conn_min_bps", "conn_max_bps",  # the slowest and the fastest connection's bits/s
    "cpu_share_client", "cpu_share_peer",  # CPU seconds per second of values (1.0: one CPU)
]
COLUMNS = CASE_COLUMNS + METRIC_COLUMNS
STRING_COLUMNS = {"case", "workload", "strategy", "transport", "opt_mismatch", "error",
                  "tls_version", "tls_cipher", "driver", "cc_eff", "peer_sink"}
BOOL_COLUMNS = {"nodelay", "nodelay_eff", "twin", "tls"}
NUMBER_COLUMNS = [c for c in COLUMNS if c not in STRING_COLUMNS | BOOL_COLUMNS]
# whole numbers of bytes or counts: the case's parameters (msg_size in every row) and what
# the kernel and the loops counted
WHOLE_COLUMNS = ["msg_size", "sndbuf", "rcvbuf", "notsent_lowat", "parts", "reply", "batch",
                 "buffer", "sndbuf_eff", "rcvbuf_eff", "notsent_lowat_eff", "lat_samples",
                 "retrans", "rtt_us", "msgs", "bytes", "values", "loops", "conns"]


class ResultRow(TypedDict, total=False):
    """A table row as the manager makes it (run/merge.py, for :meth:`RunWriter.add_case`):
    the keys are :data:`COLUMNS`, in order; a failed case has only its case columns,
    ``error`` and ``host_speed``. Rows read back from a ``table.csv`` are plain dicts
    (pandas cells: NaN and NA where a value is missing)."""

    case: str
    workload: str
    strategy: str
    nodelay: bool
    sndbuf: int
    rcvbuf: int
    notsent_lowat: int
    msg_size: int
    parts: int
    reply: int
    batch: int
    buffer: int
    transport: str
    twin: bool
    tls: bool
    tls_version: str  # "" without TLS
    conns: int
    driver: str  # "" for a single-connection case
    throughput_bps: float
    msgs_per_s: float
    rate_rsd: float
    lat_mean_us: float
    lat_p50_us: float
    lat_p90_us: float
    lat_p99_us: float
    lat_p999_us: float
    lat_max_us: float
    lat_samples: int
    send_calls_per_msg: float | None  # None: not counted (driver cases)
    segs_per_msg: float | None
    retrans: int | None
    rtt_us: int | None
    cpu_s_per_gb_client: float
    cpu_s_per_gb_peer: float
    nodelay_eff: bool | None
    sndbuf_eff: int | None
    rcvbuf_eff: int | None
    notsent_lowat_eff: int | None
    cc_eff: str  # "" where not TCP (unix)
    peer_sink: str  # "" where the workload sends no one-way data (rr, pipeline, wwr)
    opt_mismatch: str
    msgs: int
    bytes: int
    values: int
    loops: int
    duration_s: float
    host_speed: float | None
    error: str
    tls_records_per_msg: float | None
    tls_overhead_bytes_per_msg: float | None
    tls_record_bytes: int | None
    tls_cipher: str
    tls_handshake_us: float | None
    jain_fairness: float | None
    conn_min_bps: float | None
    conn_max_bps: float | None
    cpu_share_client: float | None
    cpu_share_peer: float | None


# -- public: the view load() gives ----------------------------------------------------------

DATETIME = "datetime64[ns, UTC]"
_ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d{1,9})?)?)?"
                       r"(Z|[+-]\d\d:?\d\d)?\Z")


@dataclass(frozen=True)
class Column:
    """One public column: ``source`` is its table.csv column ("" for one from meta.json);
    ``unset``: a 0 (or an empty text) there means "not set", shown as ``<NA>``."""

    name: str
    dtype: str
    unit: str
    meaning: str
    source: str = ""
    unset: bool = False


def _c(name: str, dtype: str, unit: str, meaning: str, source: str | None = None,
       unset: bool = False) -> Column:
    return Column(name, dtype, unit, meaning, name if source is None else source, unset)


_LAT = "latency of one operation (a message for stream and file, request to reply for rr " \
       "and wwr, a batch to its reply for pipeline): "
PUBLIC: tuple[Column, ...] = (
    Column("run", "string", "", "the run's id (meta.json run_id, else its folder's name)"),
    Column("machine", "string", "", "the machine's id (meta.json machine_id, else the folder "
           "above the run)"),
    _c("case", "string", "", "the case id: table key, pyperf benchmark name, samples file"),
    _c("workload", "string", "", "stream, rr, wwr, pipeline or file"),
    _c("strategy", "string", "", "the send path: send, sendall, makefile, sendmsg, coalesce, "
       "cork, msg_more, sendfile, asyncio or a plugin's name"),
    _c("nodelay", "boolean", "", "TCP_NODELAY as requested (always set, on or off)"),
    _c("sndbuf", "Int64", "bytes", "SO_SNDBUF as requested; <NA>: never set (autotuning)",
       unset=True),
    _c("rcvbuf", "Int64", "bytes", "the peer's SO_RCVBUF as requested; <NA>: never set",
       unset=True),
    _c("notsent_lowat", "Int64", "bytes", "TCP_NOTSENT_LOWAT as requested; <NA>: never set",
       unset=True),
    _c("msg_size", "Int64", "bytes", "one message, its 4-byte header included (file: the "
       "file's size)"),
    _c("parts", "Int64", "", "pieces each message is written in (header, then body)"),
    _c("reply", "Int64", "bytes", "the peer's answer per operation as set; <NA>: the "
       "workload's default (rr: msg_size; wwr, pipeline: 1; stream, file: none)", unset=True),
    _c("batch", "Int64", "messages", "messages per operation (pipeline; 1 elsewhere)"),
    _c("buffer", "Int64", "bytes", "makefile's buffer size; <NA>: io.DEFAULT_BUFFER_SIZE, "
       "or not makefile", unset=True),
    _c("transport", "string", "", "loopback, loopback6, emulated, remote or unix"),
    _c("twin", "boolean", "", "an A/A twin: its baseline's code under a second label; false "
       "in runs before twins"),
    _c("tls", "boolean", "", "over TLS; false in runs before TLS"),
    _c("tls_version", "string", "", "1.2 or 1.3; <NA> without TLS", unset=True),
    _c("conns", "Int64", "connections", "connections the client drives at once; 1 in runs "
       "before drivers"),
    _c("driver", "string", "", "how one client drives its connections: threads, selectors, "
       "asyncio, uvloop or trio; <NA>: one connection", unset=True),
    _c("throughput_bit_s", "Float64", "bit/s", "payload bits per second the client sent",
       "throughput_bps"),
    _c("msgs_per_s", "Float64", "messages/s", "messages per second"),
    _c("rate_rsd", "Float64", "ratio", "relative standard deviation of the per-value rates "
       "(the noise)"),
    _c("lat_mean_us", "Float64", "µs", _LAT + "mean"),
    _c("lat_p50_us", "Float64", "µs", _LAT + "median"),
    _c("lat_p90_us", "Float64", "µs", _LAT + "90th percentile"),
    _c("lat_p99_us", "Float64", "µs", _LAT + "99th percentile"),
    _c("lat_p999_us", "Float64", "µs", _LAT + "99.9th percentile"),
    _c("lat_max_us", "Float64", "µs", _LAT + "the longest"),
    _c("lat_samples", "Int64", "operations", "latencies the percentiles come from"),
    _c("send_calls_per_msg", "Float64", "calls/message", "calls into the socket API per "
       "message; <NA>: not counted (driver cases)"),
    _c("segs_per_msg", "Float64", "segments/message", "TCP data segments sent per message "
       "(tcpi_data_segs_out); <NA> without TCP_INFO (unix)"),
    _c("retrans_segs", "Int64", "segments", "segments retransmitted in the timed values "
       "(tcpi_total_retrans); <NA> without TCP_INFO", "retrans"),
    _c("rtt_us", "Int64", "µs", "the kernel's smoothed RTT (tcpi_rtt) at the case's end"),
    _c("cpu_s_per_gb_client", "Float64", "s/GB", "client CPU seconds per 10^9 bytes moved "
       "(request and reply)"),
    _c("cpu_s_per_gb_peer", "Float64", "s/GB", "peer CPU seconds per 10^9 bytes moved"),
    _c("nodelay_eff", "boolean", "", "TCP_NODELAY read back after the case; <NA>: not TCP"),
    _c("sndbuf_eff", "Int64", "bytes", "SO_SNDBUF read back (Linux doubles and clamps the "
       "request: 1 gives 4608)"),
    _c("rcvbuf_eff", "Int64", "bytes", "the peer's SO_RCVBUF read back"),
    _c("notsent_lowat_eff", "Int64", "bytes", "TCP_NOTSENT_LOWAT read back (0: none set on "
       "the socket); <NA>: not TCP"),
    _c("cc_eff", "string", "", "the client socket's TCP congestion control read back "
       "(TCP_CONGESTION: the run's cc, else the host's default); <NA>: not TCP, or a run "
       "before it was recorded", unset=True),
    _c("peer_sink", "string", "", "what the peer said it did with the case's one-way data: "
       "discard (MSG_TRUNC, dropped uncopied) or copy (into a buffer); a cell with a TLS or "
       "unix case copies throughout; <NA>: request-response workloads, or a run before it was "
       "recorded", unset=True),
    _c("opt_mismatch", "string", "", "each option the kernel did not take as asked; empty "
       "when all did"),
    _c("msgs", "Int64", "messages", "messages sent in the timed values"),
    _c("bytes", "Int64", "bytes", "payload bytes sent in the timed values"),
    _c("values", "Int64", "values", "timed values, over all rounds"),
    _c("loops", "Int64", "operations", "operations per timed value (calibrated, then frozen)"),
    _c("duration_s", "Float64", "s", "time in the timed values"),
    _c("host_speed_mloops_s", "Float64", "10^6 loops/s", "the host's CPU speed around the "
       "case (a fixed pure-Python loop); <NA> in runs before the probe", "host_speed"),
    _c("error", "string", "", "empty for a finished case; why a failed one failed"),
    _c("tls_records_per_msg", "Float64", "records/message", "TLS records per message; <NA> "
       "without TLS"),
    _c("tls_overhead_bytes_per_msg", "Float64", "bytes/message", "wire bytes over the "
       "payload per message (TCP_INFO bytes sent); <NA> without TLS"),
    _c("tls_record_bytes", "Float64", "bytes", "what one record adds (22 for TLS 1.3 with "
       "AES-GCM); <NA> without TLS"),
    _c("tls_cipher", "string", "", "the negotiated version and cipher; <NA> without TLS",
       unset=True),
    _c("tls_handshake_us", "Float64", "µs", "the handshake of the last trial (never timed "
       "in a value); <NA> without TLS"),
    _c("jain_fairness", "Float64", "ratio", "Jain's index of the connections' rates (1: all "
       "equal, 1/conns: one got all); driver cases"),
    _c("conn_min_bit_s", "Float64", "bit/s", "the slowest connection's rate; driver cases",
       "conn_min_bps"),
    _c("conn_max_bit_s", "Float64", "bit/s", "the fastest connection's rate; driver cases",
       "conn_max_bps"),
    _c("cpu_share_client", "Float64", "CPU s/s", "client CPU seconds per second of timed "
       "values (1.0: one CPU); driver cases"),
    _c("cpu_share_peer", "Float64", "CPU s/s", "the same for the peer; driver cases"),
    Column("suite", "string", "", "the suite's name (meta.json)"),
    Column("created", DATETIME, "UTC", "when the run started (meta.json created); NaT when "
           "missing"),
)
RUN_DIR = Column("run_dir", "string", "", "the folder the run was read from (load() only)")
NAMES = [c.name for c in PUBLIC]
# table.csv column -> public name, where they differ
RENAMED = {c.source: c.name for c in PUBLIC if c.source and c.source != c.name}


def created_at(meta: Mapping[str, Any]) -> pd.Timestamp | None:
    """meta.json's ``created`` (ISO 8601; without an offset: UTC) as a UTC timestamp; None
    when it is missing or not such a date (words like "now" are not)."""
    value = meta.get("created")
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        return None
    try:
        stamp = pd.Timestamp(value).as_unit("ns")  # ns: the column's unit (1677-2262)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    except (ValueError, OverflowError, TypeError):  # OutOfBoundsDatetime is a ValueError
        return None


def _suite_name(meta: Mapping[str, Any]) -> Any:
    suite = meta.get("suite")
    name = suite.get("name") if isinstance(suite, Mapping) else None
    return name if isinstance(name, str) else pd.NA


def _column(table: pd.DataFrame, col: Column) -> pd.Series:
    raw = table[col.source] if col.source in table.columns else \
        pd.Series(pd.NA, index=table.index, dtype="object")
    if col.dtype == "string":
        out = raw.astype("string")
        if col.unset:
            out = out.mask(out.eq("").fillna(False).astype(bool))
        if col.name == "tls_version":  # a tls-off case holds the default: not set
            out = out.mask(~table["tls"].astype("boolean").fillna(False).astype(bool))
        return out
    if col.dtype == "Int64":
        ints = pd.to_numeric(raw, errors="coerce").astype("Int64")
        return ints.mask(ints.eq(0).fillna(False).astype(bool)) if col.unset else ints
    if col.dtype == "Float64":
        return pd.to_numeric(raw, errors="coerce").astype("Float64")
    return raw.astype(pd.api.types.pandas_dtype(col.dtype))


def to_public(table: pd.DataFrame, meta: Mapping[str, Any], run_dir: Path | str) -> pd.DataFrame:
    """One run's table (as ``results.read_table`` gives it) in the public schema: the
    columns of :data:`PUBLIC` in order, with their dtypes."""
    run_dir = Path(run_dir)
    run, machine = meta.get("run_id"), meta.get("machine_id")
    stamp = created_at(meta)
    per_run = {
        "run": run if isinstance(run, str) and run else run_dir.name,
        "machine": machine if isinstance(machine, str) and machine else run_dir.parent.name,
        "suite": _suite_name(meta),
        "created": pd.NaT if stamp is None else stamp,
    }
    data: dict[str, pd.Series] = {}
    for col in PUBLIC:
        if col.name in per_run:
            data[col.name] = pd.Series([per_run[col.name]] * len(table), index=table.index,
                                       dtype=col.dtype)
        else:
            data[col.name] = _column(table, col)
    return pd.DataFrame(data, index=table.index).reset_index(drop=True)


def markdown_table() -> str:
    """The column table (name, dtype, unit, meaning) as Markdown, for docs/api.md."""
    lines = ["| column | dtype | unit | meaning |", "|---|---|---|---|"]
    for col in (*PUBLIC, RUN_DIR):
        note = f" (table.csv: `{col.source}`)" if col.source and col.source != col.name else ""
        meaning = col.meaning.replace("<NA>", "`<NA>`")  # not an HTML tag to a renderer
        lines.append(f"| `{col.name}` | {col.dtype} | {col.unit} | {meaning}{note} |")
    return "\n".join(lines) + "\n"


__doc__ = f"{__doc__}\n{markdown_table()}"

if __name__ == "__main__":  # python -m flushbench.schema: the table for docs/api.md
    print(markdown_table(), end="")
