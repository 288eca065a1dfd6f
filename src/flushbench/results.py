"""Run directories: the writer, the readers and ``load()``.

    results/<machine-id>/<run-id>/
        pyperf.json   pyperf BenchmarkSuite, seconds per message
        table.csv     one row per case (schema.COLUMNS; load() gives schema.PUBLIC)
        samples/      <case-id>.npz: lat_ns (per operation, ns), values_s_per_msg (one per
                      timed pyperf value), ops_per_value
        meta.json     both ends' metadata, suite, versions, schema version

Every file is written to a temporary name, fsynced and renamed, so a crash at any moment
leaves the last complete version of each file; files and folders get the umask's mode and,
under sudo, the sudo user as owner (files.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import textwrap
import warnings
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import schema
from .errors import ResultsError, UsageError
from .files import atomic_write as atomic_write
from .files import make_dirs
from .files import write_json as write_json
from .schema import BOOL_COLUMNS, NUMBER_COLUMNS, STRING_COLUMNS, WHOLE_COLUMNS
from .schema import CASE_COLUMNS as CASE_COLUMNS
from .schema import COLUMNS as COLUMNS
from .schema import METRIC_COLUMNS as METRIC_COLUMNS
from .schema import ResultRow as ResultRow
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

TABLE = "table.csv"
META = "meta.json"
PYPERF = "pyperf.json"
SAMPLES = "samples"


# The table's columns (COLUMNS, ResultRow …) are defined in schema.py beside their public
# view; atomic_write and write_json in files.py (modes, sudo). Both are imported from here.


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
            make_dirs(run_dir / SAMPLES)
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
        make_dirs(Path(run_dir) / SAMPLES)
        return cls(run_dir, meta, table.to_dict("records"))

    def note_resume(self, created: str, tls_ca_sha256: str | None = None) -> None:
        """Log a --resume in meta.json ("resumed": one entry each, with the fingerprint of
        the new throwaway CA a TLS run's resumed cases trusted; meta's own "tls_ca_sha256"
        stays the first part's)."""
        past = self.meta.get("resumed")
        entries = [e for e in past if isinstance(e, dict)] if isinstance(past, list) else []
        entries.append({"created": created,
                        **({"tls_ca_sha256": tls_ca_sha256} if tls_ca_sha256 else {})})
        self.meta["resumed"] = entries
        self.write_meta()

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


PathArg = str | os.PathLike[str]


def _latest(latest: bool | int) -> int | None:
    """How many runs ``latest`` keeps (None: all of them)."""
    if latest is True:
        return 1
    if latest is False or latest is None:
        return None
    if isinstance(latest, int) and latest >= 1:
        return latest
    raise UsageError(f"latest must be True, False or a whole number >= 1, got {latest!r}")


def _public(run_dir: Path, meta: Mapping[str, Any]) -> pd.DataFrame:
    frame = schema.to_public(read_table(run_dir, meta), meta, run_dir)
    frame[schema.RUN_DIR.name] = pd.Series([str(run_dir)] * len(frame), dtype="string")
    return frame


def load(paths: PathArg | Iterable[PathArg], latest: bool | int = False) -> pd.DataFrame:
    """The results of one run or many as one DataFrame, in the public schema
    (:mod:`flushbench.schema`; docs/api.md): one row per case and run, with ``run``,
    ``machine``, ``suite`` and ``created`` (UTC) columns, ``<NA>`` where an option was not set
    or a figure not measured, unit-explicit names (``throughput_bit_s``).

    ``paths``: run folders, machine folders or a results root, or a list of them; every run
    at or below them is read once. ``latest=True`` keeps only the newest run found (by
    meta.json's ``created``), ``latest=N`` the N newest: a checkout's ``results/`` holds
    many committed runs beside yours. A broken run inside a folder is skipped with a
    warning; one named directly raises :class:`~flushbench.errors.ResultsError`.
    """
    keep = _latest(latest)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[tuple[Path, dict[str, Any]]] = []
    named: set[Path] = set()
    seen: set[Path] = set()
    for given in map(Path, paths):
        named.add(given.resolve())
        for run_dir in find_runs(given):
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            with _skipping(run_dir, named):
                found.append((run_dir, read_meta(run_dir)))
    order = {run_dir: i for i, (run_dir, _) in enumerate(found)}
    if keep is not None:  # newest first; a run without a date counts as the oldest
        oldest = pd.Timestamp.min.tz_localize("UTC")
        found.sort(key=lambda r: (schema.created_at(r[1]) or oldest, str(r[0])), reverse=True)
    frames: list[tuple[Path, pd.DataFrame]] = []
    for run_dir, meta in found:
        if keep is not None and len(frames) == keep:
            break
        with _skipping(run_dir, named):
            frames.append((run_dir, _public(run_dir, meta)))
    if not frames:
        raise ResultsError("no runs to load: every run found was broken")
    frames.sort(key=lambda f: order[f[0]])  # in the order found
    return pd.concat([f for _, f in frames], ignore_index=True)


@contextlib.contextmanager
def _skipping(run_dir: Path, named: set[Path]) -> Iterator[None]:
    """A broken run's ResultsError as a warning, unless the run was named itself."""
    try:
        yield
    except ResultsError as exc:
        if run_dir.resolve() in named:
            raise
        warnings.warn(f"skipped {run_dir}: {exc}", stacklevel=4)


def load_run(path: PathArg) -> pd.DataFrame:
    """Exactly one run directory, as :func:`load` gives it (``run_dir`` included)."""
    run_dir = Path(path)
    if not (run_dir / META).is_file():
        raise ResultsError(f"{run_dir} is not a run directory ({META} is missing); "
                           "flushbench.load() reads a folder of runs")
    return _public(run_dir, read_meta(run_dir))


_TABLE_DOC = textwrap.indent(schema.markdown_table(), "    ")
load.__doc__ = f"{load.__doc__}\n    Columns:\n\n{_TABLE_DOC}"


def load_samples(run_dir: Path, case_id: str) -> dict[str, np.ndarray]:
    """A case's samples ({} without a file); the id and the resolved path are checked to
    stay inside the run's samples folder."""
    path = samples_file(Path(run_dir) / SAMPLES, case_id)
    if not path.is_file():
        return {}
    return load_npz(path)
