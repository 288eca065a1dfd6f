"""Stored runs as records for programs: ``flushbench show --format csv|json|md``.

The verdicts (``report.verdicts.view``: case, baseline, axis, metric, ratio, interval,
q value, rounds, verdict …), or with ``--all`` the whole table in the public schema of
``flushbench.load()`` (:mod:`flushbench.schema`: unit-explicit names, empty where an option
was not set, ``suite`` and ``created``), one record per row, each naming its run and
machine. Text from a run is hostile: JSON and CSV escape it by their own rules; Markdown
cells get control characters shown escaped and pipes escaped. Times are ISO 8601, UTC.
"""

from __future__ import annotations

import datetime
import io
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..analysis.runs import StoredRun
from ..errors import UsageError
from ..files import open_output
from ..schema import to_public
from ..suites import id_matches
from . import verdicts
from .markup import printable


def run_records(runs: Sequence[StoredRun], filters: Sequence[str] | None,
                table: bool) -> pd.DataFrame:
    """Each run's verdicts (its table in the public schema where ``table`` or where it has
    no verdicts), with ``run`` and ``machine`` first; only cases matching ``filters``."""
    frames = []
    for run in runs:
        if table or not verdicts.has_verdicts(run):
            frame = to_public(run.table, run.meta, run.path)
        else:
            frame = verdicts.view(run)
        if filters:
            frame = frame[frame["case"].map(lambda cid: id_matches(str(cid), filters))]
        frame = frame.drop(columns=[c for c in ("run", "machine") if c in frame.columns])
        frame.insert(0, "machine", pd.Series([run.machine] * len(frame), index=frame.index,
                                             dtype="string"))
        frame.insert(0, "run", pd.Series([run.run_id] * len(frame), index=frame.index,
                                         dtype="string"))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _plain(value: Any) -> Any:
    """A cell as JSON takes it: NaN, NA and NaT as null, numpy numbers as Python ones,
    times as ISO 8601 text."""
    if value is None or value is pd.NA or value is pd.NaT \
            or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, datetime.datetime):  # pd.Timestamp too
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def render(frame: pd.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        buf = io.StringIO()
        times = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
        if times:  # the same ISO 8601 text as JSON's
            frame = frame.assign(**{str(c): frame[c].map(_plain) for c in times})
        frame.to_csv(buf, index=False)
        return buf.getvalue()
    if fmt == "json":
        records = [{str(k): _plain(v) for k, v in row.items()}
                   for row in frame.to_dict("records")]
        return json.dumps(records, indent=1, allow_nan=False) + "\n"
    if fmt == "md":
        def cell(value: Any) -> str:
            value = _plain(value)
            return "" if value is None else printable(value).replace("|", "\\|")

        lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |",
                 "|" + "---|" * len(frame.columns)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |"
                  for row in frame.itertuples(index=False)]
        return "\n".join(lines) + "\n"
    raise UsageError(f"unknown format {fmt!r}; expected csv, json or md")


def write_records(frame: pd.DataFrame, fmt: str, path: Path | None) -> None:
    """``frame`` in ``fmt`` to ``path``, or to standard output."""
    body = render(frame, fmt)
    if path is None:
        sys.stdout.write(body)
        return
    try:
        with open_output(path) as fh:
            fh.write(body)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
