"""Reading run files that may come from another machine: sizes checked before anything is
allocated, types and names checked before anything is used.

Run directories are copied between hosts for ``compare`` and ``report``, so each of their
files is hostile input until proven otherwise: a meta.json or table.csv may be huge, and a
samples file (a numpy ``.npz``, a zip of ``.npy`` arrays) may claim 2**40 values in a
246-byte header or inflate 130 KB into 128 MiB. A case id names a samples file, so it is held
to ``[A-Za-z0-9._-]``; meta.json's fields are checked against :data:`META` before any is read.
Every failure is a one-line ResultsError that names the file.
"""

from __future__ import annotations

import math
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd

from .errors import ResultsError

MAX_TEXT_BYTES = 64 << 20  # meta.json, table.csv, trials.csv, verdicts.csv
MAX_ARRAY_BYTES = 64 << 20  # one array of a samples file (a quick case holds under 1 MiB)
MAX_SAMPLES_BYTES = 256 << 20  # all arrays of one samples file
NPY_HEADER_SLACK = 64 << 10  # a .npy member's header, beyond its data
SAMPLE_KINDS = "biuf"  # bool, signed and unsigned integers, floats: what flushbench writes

CASE_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")
DAMAGED = "the file is damaged or not from flushbench"


def check_size(path: Path, cap: int = MAX_TEXT_BYTES) -> None:
    """Refuse a file over ``cap`` bytes before reading it."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ResultsError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if size > cap:
        raise ResultsError(f"{path} is {size} bytes, over the {cap}-byte limit for a run "
                           "file; it is not a flushbench run (or a damaged one)")


# -- case ids and the samples folder ------------------------------------------------------

def is_case_id(text: str) -> bool:
    """Letters, digits, '.', '_' and '-' (at most 200), and not '.' or '..'."""
    return bool(CASE_ID.fullmatch(text)) and text not in (".", "..")


def check_case_ids(values: Iterable[Any], path: Path, column: str = "case") -> None:
    """Every value of a file's case-id column is a case id (row numbers count data rows)."""
    for row, value in enumerate(values, 1):
        text = "" if value is None else str(value)
        if not is_case_id(text):
            raise ResultsError(f"{path}: row {row}: {column} {text[:60]!r} is not a case id "
                               f"(letters, digits, '.', '_' and '-' only); {DAMAGED}")


def samples_file(samples_dir: Path, case_id: str) -> Path:
    """``samples_dir/<case_id>.npz``, refused unless the id is a case id and the resolved
    file (symbolic links followed) lies inside the resolved ``samples_dir``."""
    path = samples_dir / f"{case_id}.npz"
    if not is_case_id(case_id):
        raise ResultsError(f"{samples_dir}: {case_id[:60]!r} is not a case id (letters, "
                           "digits, '.', '_' and '-' only); no samples file is read for it")
    try:
        inside = path.resolve().is_relative_to(samples_dir.resolve())
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ResultsError(f"{path} cannot be read ({exc})") from None
    if not inside:
        raise ResultsError(f"{path} leads outside {samples_dir} (a symbolic link); "
                           "samples are read only from the run's own samples folder")
    return path


def check_unique(values: pd.Series, path: Path, column: str = "case") -> None:
    """No value of ``column`` twice (a table has one row per case)."""
    twice = values[values.duplicated()]
    if len(twice):
        raise ResultsError(f"{path}: {column} {str(twice.iloc[0])[:60]!r} appears more than "
                           f"once; {DAMAGED}")


# -- numbers in CSV files -----------------------------------------------------------------

MAX_WHOLE = 1 << 53  # the largest whole number a float holds exactly


def numbers(frame: pd.DataFrame, columns: Iterable[str], path: Path, whole: Iterable[str] = (),
            required: Iterable[str] = (),
            within: Mapping[str, tuple[float, float]] | None = None,
            inf_as_missing: bool = False) -> pd.DataFrame:
    """``frame`` with ``columns`` as numbers (NaN where empty, and where infinite with
    ``inf_as_missing``: no measured figure is). A cell that is not a number refuses the file,
    as does a ``whole`` cell that is not a whole number from 0 to :data:`MAX_WHOLE`, an empty
    ``required`` cell, or a finite cell of a column ``within`` outside its (low, high)."""
    out = frame.copy()
    whole, required, within = set(whole), set(required), dict(within or {})
    for col in columns:
        raw = frame[col]
        try:
            nums = pd.to_numeric(raw, errors="coerce")
        except OverflowError:  # pandas gives up on an integer past 64 bits: cell by cell
            nums = pd.Series([_as_float(v) for v in raw], index=raw.index, dtype="float64")
        if nums.dtype == bool:
            nums = nums.astype("float64")
        values = nums.to_numpy(dtype=float, na_value=np.nan)
        empty = np.isnan(values)
        text = empty & raw.notna().to_numpy()
        bad = [i for i in np.flatnonzero(text) if not _nan_text(raw.iloc[i])]
        if bad:
            raise ResultsError(f"{path}: row {bad[0] + 1}: {col} is {str(raw.iloc[bad[0]])[:40]!r}"
                               f", not a number; {DAMAGED}")
        if col in required and empty.any():
            raise ResultsError(f"{path}: row {np.flatnonzero(empty)[0] + 1}: {col} is empty; "
                               f"{DAMAGED}")
        if col in whole:
            with np.errstate(invalid="ignore"):
                wrong = ~empty & ~(np.isfinite(values) & (values == np.round(values))
                                   & (values >= 0) & (values <= MAX_WHOLE))
            if wrong.any():
                i = int(np.flatnonzero(wrong)[0])
                raise ResultsError(f"{path}: row {i + 1}: {col} is {values[i]:g}, not a whole "
                                   f"number from 0 to {MAX_WHOLE}; {DAMAGED}")
        if col in within:
            low, high = within[col]
            with np.errstate(invalid="ignore"):
                wrong = np.isfinite(values) & ((values < low) | (values > high))
            if wrong.any():
                i = int(np.flatnonzero(wrong)[0])
                raise ResultsError(f"{path}: row {i + 1}: {col} is {values[i]:g}, outside "
                                   f"{low:g} to {high:g}; {DAMAGED}")
        out[col] = nums.mask(np.isinf(values)) if inf_as_missing and np.isinf(values).any() \
            else nums
    return out


def _as_float(value: Any) -> float:
    """A cell as a float; NaN where it is not one (text, or an integer past a float's range,
    which then refuses the file as "not a number")."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _nan_text(value: Any) -> bool:
    """'nan' and the like: text that float() reads as not-a-number."""
    try:
        return math.isnan(float(str(value)))
    except ValueError:
        return False


# -- samples files ------------------------------------------------------------------------

def load_npz(path: Path, array_cap: int = MAX_ARRAY_BYTES,
             total_cap: int = MAX_SAMPLES_BYTES) -> dict[str, np.ndarray]:
    """The arrays of a samples file: plain 1-dimensional ``.npy`` arrays of numbers only, no
    pickles, each header's size checked against the caps and against the size the zip
    records for it (which bounds what is inflated)."""
    check_size(path, total_cap)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, struct.error) as exc:
        raise ResultsError(f"{path} is not a samples file ({str(exc)[:120]})") from None
    out: dict[str, np.ndarray] = {}
    total = 0
    with archive:
        for info in archive.infolist():
            name = info.filename
            if not name.endswith(".npy") or "/" in name or "\\" in name:
                raise ResultsError(f"{path} holds {name[:60]!r}, not a .npy array")
            if info.file_size > array_cap + NPY_HEADER_SLACK:
                raise ResultsError(f"{path}: {name[:60]!r} inflates to {info.file_size} "
                                   f"bytes, over the {array_cap}-byte limit per array")
            try:
                out[name[:-4]], nbytes = _read_member(archive, info, path, array_cap)
            except ResultsError:
                raise
            except (OSError, ValueError, EOFError, RuntimeError, NotImplementedError,
                    zipfile.BadZipFile, zlib.error, struct.error) as exc:
                raise ResultsError(f"{path} is corrupt or truncated "
                                   f"({str(exc)[:120]})") from None
            total += nbytes
            if total > total_cap:
                raise ResultsError(f"{path}: its arrays hold {total} bytes, over the "
                                   f"{total_cap}-byte limit per samples file")
    return out


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path,
                 array_cap: int) -> tuple[np.ndarray, int]:
    name = info.filename[:60]
    with archive.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        header = fh.tell()
    if dtype.hasobject:
        raise ResultsError(f"{path}: {name} holds Python objects; only plain numbers are read")
    if dtype.kind not in SAMPLE_KINDS or len(shape) != 1:
        raise ResultsError(f"{path}: {name} is a {len(shape)}-dimensional array of {dtype}; "
                           "samples are 1-dimensional arrays of numbers")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > array_cap:
        raise ResultsError(f"{path}: {name} claims {nbytes} bytes, over the {array_cap}-byte "
                           "limit per array")
    if header + nbytes > info.file_size:
        raise ResultsError(f"{path}: {name} claims {nbytes} bytes but holds "
                           f"{info.file_size}: truncated or forged")
    with archive.open(info) as fh:
        array = np.lib.format.read_array(fh, allow_pickle=False)
    return array, nbytes


# -- meta.json ----------------------------------------------------------------------------

NONE = type(None)
TEXT = (str, NONE)
NUMBER = (int, float, NONE)  # never bool: checked apart
SCALAR = (str, int, float, bool, NONE)


@dataclass(frozen=True)
class Obj:
    """A JSON object (or null): known ``fields`` checked, ``each`` for every value when
    given (sysctls, interfaces); ``required`` fields must be there."""

    fields: Mapping[str, Spec] = field(default_factory=dict)
    each: Spec | None = None
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class Arr:
    """A JSON array (or null) of ``item``, of exactly ``length`` items when given."""

    item: Spec
    length: int | None = None


Spec = Union[tuple[type, ...], Obj, Arr]  # noqa: UP007  (a runtime alias: 3.10 has no |)

HOST = Obj({"hostname": TEXT, "cpu_model": SCALAR, "cpu_count": SCALAR, "kernel": SCALAR,
            "os": SCALAR, "mem_total": SCALAR, "python": SCALAR, "python_impl": SCALAR,
            "io_default_buffer_size": SCALAR, "has_tcp_cork": SCALAR,
            "has_msg_more": SCALAR, "sysctls": Obj(each=SCALAR),
            "interfaces": Obj(each=Obj({"mtu": SCALAR}))})
CALIBRATION_ROW = ("metric", "flushbench", "reference", "tool", "ratio", "case")
META = Obj({
    "schema_version": (int,), "run_id": TEXT, "machine_id": TEXT, "created": TEXT,
    "transport": TEXT, "link": TEXT, "peer_addr": TEXT, "flushbench_version": TEXT,
    "filters": Arr((str,)), "skipped": Arr(Arr((str,), 2)),
    "suite": Obj({"name": TEXT, "description": TEXT, "source": TEXT}),
    "client": HOST, "peer": HOST, "pin": Obj(each=NUMBER),
    "pyperf": Obj({"processes": SCALAR, "values": SCALAR, "warmups": SCALAR}),
    "schedule": Obj({"rounds": NUMBER, "values": NUMBER, "warmups": NUMBER,
                     "value_time": NUMBER, "seed": NUMBER, "min_effect": NUMBER,
                     "timeout": NUMBER, "comparisons": Arr(Arr((str,), 3))}),
    "calibration": Obj({"install_hint": TEXT, "seconds": SCALAR, "ratios": Arr(Obj(
        {"metric": TEXT, "tool": TEXT, "case": TEXT, "flushbench": (int, float),
         "reference": (int, float), "ratio": (int, float)}, required=CALIBRATION_ROW))}),
}, required=("schema_version",))

_KINDS = {str: "text", int: "a whole number", float: "a number", bool: "true/false",
          NONE: "null", dict: "an object", list: "an array"}


def check_meta(meta: Any, path: Path) -> None:
    """Refuse a meta.json whose fields flushbench reads have the wrong type."""
    _check(meta, META, path, "")


def _what(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _refuse(path: Path, where: str, wanted: str, value: Any) -> ResultsError:
    return ResultsError(f"{path}: {where or 'the top level'} must be {wanted}, got "
                        f"{_what(value)}; {DAMAGED}")


def _wanted(spec: tuple[type, ...]) -> str:
    """'text, a number, true or false or null'."""
    words = [_KINDS[t] for t in spec if not (t is int and float in spec)]
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


def _check(value: Any, spec: Spec, path: Path, where: str, item: bool = False) -> None:
    """``item``: an array's item, which is never null unless its spec says so."""
    if isinstance(spec, tuple):
        if isinstance(value, bool) and bool not in spec or not isinstance(value, spec):
            raise _refuse(path, where, _wanted(spec), value)
        return
    if value is None and not item and not (isinstance(spec, Obj) and spec.required):
        return
    if isinstance(spec, Arr):
        if not isinstance(value, list) or spec.length not in (None, len(value)):
            wanted = "an array" + (f" of {spec.length} items" if spec.length else "")
            raise _refuse(path, where, wanted, value)
        for i, each in enumerate(value):
            _check(each, spec.item, path, f"{where}[{i}]", item=True)
        return
    if not isinstance(value, dict):
        raise _refuse(path, where, "an object", value)
    for name in spec.required:
        if name not in value:
            raise ResultsError(f"{path}: {where + '.' if where else ''}{name} is missing; "
                               f"{DAMAGED}")
    for name, item in value.items():
        sub = spec.fields.get(name, spec.each)
        if sub is not None:
            _check(item, sub, path, f"{where}.{name[:40]}" if where else name[:40])
