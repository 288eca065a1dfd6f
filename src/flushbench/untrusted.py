"""Reading run files that may come from another machine: sizes checked before anything is
allocated.

Run directories are copied between hosts for ``compare`` and ``report``, so each of their
files is hostile input until proven otherwise: a meta.json or table.csv may be huge, and a
samples file (a numpy ``.npz``, a zip of ``.npy`` arrays) may claim 2**40 values in a
246-byte header or inflate 130 KB into 128 MiB. Every failure is a one-line ResultsError
that names the file.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from .errors import ResultsError

MAX_TEXT_BYTES = 64 << 20  # meta.json, table.csv, trials.csv, verdicts.csv
MAX_ARRAY_BYTES = 64 << 20  # one array of a samples file (a quick case holds under 1 MiB)
MAX_SAMPLES_BYTES = 256 << 20  # all arrays of one samples file


def check_size(path: Path, cap: int = MAX_TEXT_BYTES) -> None:
    """Refuse a file over ``cap`` bytes before reading it."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ResultsError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if size > cap:
        raise ResultsError(f"{path} is {size} bytes, over the {cap}-byte limit for a run "
                           "file; it is not a flushbench run (or a damaged one)")


def load_npz(path: Path, array_cap: int = MAX_ARRAY_BYTES,
             total_cap: int = MAX_SAMPLES_BYTES) -> dict[str, np.ndarray]:
    """The arrays of a samples file: plain ``.npy`` members only, no pickles, each header's
    size checked against the caps and against the size the zip records for it."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ResultsError(f"{path} is not a samples file ({exc})") from None
    out: dict[str, np.ndarray] = {}
    total = 0
    with archive:
        for info in archive.infolist():
            name = info.filename
            if not name.endswith(".npy") or "/" in name or "\\" in name:
                raise ResultsError(f"{path} holds {name[:60]!r}, not a .npy array")
            try:
                with archive.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                    header = fh.tell()
                if dtype.hasobject:
                    raise ResultsError(f"{path}: {name} holds Python objects; only plain "
                                       "numbers are read")
                nbytes = math.prod(shape) * dtype.itemsize
                total += nbytes
                if nbytes > array_cap or total > total_cap:
                    raise ResultsError(f"{path}: {name} claims {nbytes} bytes, over the "
                                       f"{array_cap}-byte limit per array")
                if header + nbytes > info.file_size:
                    raise ResultsError(f"{path}: {name} claims {nbytes} bytes but holds "
                                       f"{info.file_size}: truncated or forged")
                with archive.open(info) as fh:
                    out[name[:-4]] = np.lib.format.read_array(fh, allow_pickle=False)
            except ResultsError:
                raise
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise ResultsError(f"{path} is corrupt or truncated "
                                   f"({str(exc)[:120]})") from None
    return out
