"""Run directories: schema, atomic writers and ``load()``.

    results/<machine-id>/<run-id>/
        pyperf.json   pyperf BenchmarkSuite, seconds per message
        table.csv     one row per case (COLUMNS below)
        samples/      <case-id>.npz: lat_ns (per operation, ns), values_s_per_msg (one per
                      timed pyperf value), ops_per_value
        meta.json     both ends' metadata, suite, versions, schema version

Every file is written to a temporary name, fsynced and renamed, so a crash at any moment
leaves the last complete version of each file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, Literal, TypedDict, overload

import numpy as np
import pandas as pd

from .errors import ResultsError, UsageError
from .untrusted import (
    check_case_ids,
    check_meta,
    check_size,
    check_unique,
    load_npz,
    numbers,
    samples_file,
)

SCHEMA_VERSION = 2  # 2: interleaved rounds (trials.csv, verdicts.csv, twin column)

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
                  "tls_version", "tls_cipher", "driver"}
BOOL_COLUMNS = {"nodelay", "nodelay_eff", "twin", "tls"}
NUMBER_COLUMNS = [c for c in COLUMNS if c not in STRING_COLUMNS | BOOL_COLUMNS]
# whole numbers of bytes or counts: the case's parameters (msg_size in every row) and what
# the kernel and the loops counted
WHOLE_COLUMNS = ["msg_size", "sndbuf", "rcvbuf", "notsent_lowat", "parts", "reply", "batch",
                 "buffer", "sndbuf_eff", "rcvbuf_eff", "notsent_lowat_eff", "lat_samples",
                 "retrans", "rtt_us", "msgs", "bytes", "values", "loops", "conns"]

TABLE = "table.csv"
META = "meta.json"
PYPERF = "pyperf.json"
SAMPLES = "samples"


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


# -- atomic file writes -------------------------------------------------------------------

@overload
def atomic_write(path: Path, mode: Literal["w"] = "w") -> AbstractContextManager[IO[str]]: ...
@overload
def atomic_write(path: Path, mode: Literal["wb"]) -> AbstractContextManager[IO[bytes]]: ...


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path``, fsync, then rename over it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dirfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)


def write_json(path: Path, data: Any) -> None:
    with atomic_write(path) as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")


def sample_path(run_dir: Path, case_id: str) -> Path:
    """Where a case's samples file is written (ids of our own cases)."""
    return Path(run_dir) / SAMPLES / f"{case_id}.npz"


# -- writing a run ------------------------------------------------------------------------

class RunWriter:
    """Writes one run directory, case by case; every call leaves a loadable run."""

    def __init__(self, run_dir: Path, meta: Mapping[str, Any],
                 rows: Sequence[Mapping[Hashable, Any]] = ()) -> None:
        self.dir = Path(run_dir)
        self.meta = dict(meta)
        # keyed by column name; Hashable as pandas' to_dict("records") types its rows
        self.rows: dict[str, dict[Hashable, Any]] = {r["case"]: dict(r) for r in rows}
        self.order: list[str] = []  # the suite's case order; rows are written in it

    @classmethod
    def create(cls, run_dir: Path, meta: Mapping[str, Any]) -> RunWriter:
        run_dir = Path(run_dir)
        if (run_dir / META).exists():
            raise UsageError(f"{run_dir} already holds a run; choose another --out or "
                             f"--resume {run_dir}")
        try:
            (run_dir / SAMPLES).mkdir(parents=True, exist_ok=True)
            probe = run_dir / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UsageError(f"output directory {run_dir} is not writable: "
                             f"{exc.strerror or exc}") from None
        meta = dict(meta)
        meta["schema_version"] = SCHEMA_VERSION
        writer = cls(run_dir, meta)
        writer.write_table()
        writer.write_meta()  # last: a meta.json means a complete, loadable run directory
        return writer

    @classmethod
    def reopen(cls, run_dir: Path) -> RunWriter:
        """Open an existing run (for --resume), keeping its finished rows."""
        meta = read_meta(run_dir)
        table = read_table(run_dir, meta)
        (Path(run_dir) / SAMPLES).mkdir(exist_ok=True)
        return cls(run_dir, meta, table.to_dict("records"))

    def done_ids(self, include_failed: bool = False) -> set[str]:
        return {cid for cid, r in self.rows.items() if include_failed or not r.get("error")}

    def write_meta(self) -> None:
        write_json(self.dir / META, self.meta)

    def write_table(self) -> None:
        rank = {cid: i for i, cid in enumerate(self.order)}
        rows = sorted(self.rows.values(), key=lambda r: rank.get(r["case"], len(rank)))
        frame = pd.DataFrame(rows, columns=COLUMNS)
        with atomic_write(self.dir / TABLE) as fh:
            frame.to_csv(fh, index=False)

    def add_case(self, row: ResultRow, samples: Mapping[str, np.ndarray] | None = None,
                 *, compress: bool = True, table: bool = True) -> None:
        """Store one finished (or failed) case: samples first, then the row.

        A run in progress stores its samples uncompressed (``compress=False``: deflating
        millions of latencies after every visit cost more than the visit's own merge) and
        may write the table once for several cases (``table=False``, then
        :meth:`write_table`); the run's end stores them compressed.
        """
        full: dict[Hashable, Any] = {c: row.get(c) for c in COLUMNS}
        if not full["case"]:
            raise ValueError("a row needs its case id")
        if samples:
            buf = io.BytesIO()
            arrays = {k: np.asarray(v) for k, v in samples.items()}
            # numpy's stub has allow_pickle: bool beside **kwds, so mypy checks arrays against it
            save = np.savez_compressed if compress else np.savez
            save(buf, **arrays)  # type: ignore[arg-type]  # stub: allow_pickle: bool
            with atomic_write(sample_path(self.dir, full["case"]), "wb") as fh:
                fh.write(buf.getvalue())
        self.rows[full["case"]] = full
        if table:
            self.write_table()

    def write_pyperf(self, suite_json: str) -> None:
        with atomic_write(self.dir / PYPERF) as fh:
            fh.write(suite_json)


# -- reading runs -------------------------------------------------------------------------

def read_meta(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / META
    if not path.is_file():
        raise ResultsError(f"{run_dir} is not a run directory: {META} is missing")
    check_size(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError: JSONDecodeError, and integers over Python's 4300-digit limit
        raise ResultsError(f"{path} is corrupt or truncated ({str(exc)[:120]}); rerun or "
                           "delete the run") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("schema_version"), int) \
            or isinstance(meta["schema_version"], bool):
        raise ResultsError(f"{path} has no schema_version; it is not a flushbench run")
    version = meta["schema_version"]
    if version > SCHEMA_VERSION:
        raise ResultsError(f"{path} was written with schema {version}, this flushbench reads "
                           f"up to {SCHEMA_VERSION}: upgrade flushbench "
                           "(pip install -U flushbench)")
    check_meta(meta, path)
    return meta


def read_csv(path: Path, strings: Iterable[str]) -> pd.DataFrame:
    """One of a run's CSV files (``strings``: its text columns); ResultsError naming it."""
    check_size(path)
    try:
        frame: pd.DataFrame = pd.read_csv(path, dtype={c: "string" for c in strings},
                                          keep_default_na=False, na_values=[""])
    except (ValueError, OverflowError, pd.errors.EmptyDataError) as exc:
        # ValueError: pandas' ParserError and UnicodeDecodeError among them
        raise ResultsError(f"{path} is corrupt or truncated ({str(exc)[:120]}); rerun or "
                           "delete the run") from None
    return frame


def read_table(run_dir: Path, meta: Mapping[str, Any] | None = None) -> pd.DataFrame:
    path = Path(run_dir) / TABLE
    if not path.is_file():
        raise ResultsError(f"{run_dir}: {TABLE} is missing")
    frame = read_csv(path, STRING_COLUMNS)
    missing = [c for c in ("case", "workload", "strategy") if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path} lacks column(s) {', '.join(missing)}; it is not a "
                           "flushbench table")
    for col in COLUMNS:  # older schemas: add what they did not have
        if col not in frame.columns:
            # schema 1 had no twins; runs before TLS had no TLS cases, before drivers one
            # connection per case
            frame[col] = False if col in ("twin", "tls") else 1 if col == "conns" else pd.NA
    frame = frame[COLUMNS + [c for c in frame.columns if c not in COLUMNS]]
    for col in STRING_COLUMNS:
        frame[col] = frame[col].fillna("").astype(str)
    check_case_ids(frame["case"], path)  # a case id names its samples file
    check_unique(frame["case"], path)
    frame = numbers(frame, NUMBER_COLUMNS, path, whole=WHOLE_COLUMNS, required=["msg_size"],
                    inf_as_missing=True)
    for col in BOOL_COLUMNS:
        frame[col] = frame[col].map(_to_bool).astype("boolean")
    return frame


def _to_bool(value: Any) -> Any:
    if isinstance(value, str):
        return {"true": True, "false": False, "1": True, "0": False}.get(value.lower(), pd.NA)
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return pd.NA
    return bool(value)


def find_runs(path: Path) -> list[Path]:
    """Run directories at or below ``path`` (a run, a machine folder or a results root)."""
    path = Path(path)
    if (path / META).is_file():
        return [path]
    if not path.exists():
        raise ResultsError(f"{path} does not exist")
    runs = sorted(p.parent for p in path.rglob(META) if "report" not in p.parts)
    if not runs:
        raise ResultsError(f"no runs found under {path} (looked for */{META})")
    return runs


def load(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """The results table of one run or many, with ``run`` and ``machine`` columns."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    frames = []
    for run_dir in (r for p in paths for r in find_runs(Path(p))):
        meta = read_meta(run_dir)
        frame = read_table(run_dir, meta)
        frame.insert(0, "run", meta.get("run_id", run_dir.name))
        frame.insert(1, "machine", meta.get("machine_id", run_dir.parent.name))
        frame["run_dir"] = str(run_dir)
        frames.append(frame)
    if not frames:
        raise ResultsError("no runs to load")
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def load_samples(run_dir: Path, case_id: str) -> dict[str, np.ndarray]:
    """A case's samples ({} without a file); the id and the resolved path are checked to
    stay inside the run's samples folder."""
    path = samples_file(Path(run_dir) / SAMPLES, case_id)
    if not path.is_file():
        return {}
    return load_npz(path)
