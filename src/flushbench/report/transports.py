"""The report's "Unix sockets against loopback TCP" section: the ``transport`` verdicts.

A unix case sits in the cell of its loopback counterpart (same workload, size, parts and
options; ``analysis/cells.py``), so the two are measured side by side, round after round, and
their paired ratio is a verdict along the axis ``transport``. This section shows those
verdicts, their forest plot, and the cases the run left out as unavailable over unix.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analysis.runs import StoredRun
from . import charts, forest, verdicts
from .markup import Doc

AXIS = "transport"
TITLE = "Unix sockets against loopback TCP"
SEMANTICS = (
    "Each unix case against the same case over loopback TCP, in the same cell and paired by "
    "round: ratio = unix / loopback. An AF_UNIX socket has no TCP level: TCP_NODELAY, "
    "TCP_NOTSENT_LOWAT and TCP_CORK do not exist there (cases that need them are skipped, "
    "not failed), and the TCP_INFO figures (segments per message, retransmissions, RTT) are "
    "left empty. SO_SNDBUF is set and read back (Linux doubles it, as for TCP), but on "
    "AF_UNIX it bounds the bytes queued at the reader, not a queue of unacknowledged "
    "segments.")


def rows(run: StoredRun) -> pd.DataFrame:
    """The run's verdicts along the transport axis (the report's view of them)."""
    frame = verdicts.view(run)
    if frame.empty:
        return frame
    part: pd.DataFrame = frame[frame["axis"] == AXIS]
    return part


def skipped(run: StoredRun) -> list[tuple[str, str]]:
    """(case id, reason) of the cases the run left out as unavailable on their transport."""
    found = run.meta.get("skipped") or []
    return [(str(pair[0]), str(pair[1])) for pair in found
            if isinstance(pair, list) and len(pair) == 2]


def add_section(doc: Doc, run: StoredRun, charts_dir: Path, prefix: str) -> None:
    """The section, when the run compared unix with loopback (nothing otherwise)."""
    part = rows(run)
    if part.empty:
        return
    doc.heading(3, TITLE)
    doc.note(SEMANTICS)
    stem = f"{charts.slug(run.label)}-unix-vs-loopback"
    title = "Unix sockets against loopback TCP: each unix case / the same case over loopback"
    charts.show(doc, forest.forest, run, AXIS, out_dir=charts_dir, prefix=prefix, name=stem,
                alt=title, caption=f"{title} (headline metric, 95 % intervals over rounds)")
    for (workload, band), group in part.groupby(["workload", "band"], sort=False):
        doc.heading(4, f"{workload} · {band} · unix vs loopback")
        doc.table(verdicts.display(group), collapse_after=40,
                  summary=f"{len(group)} verdicts")
    left_out = [(c, why) for c, why in skipped(run) if "unix" in why]
    if left_out:
        doc.para(f"{len(left_out)} case(s) left out as unavailable over unix:")
        doc.bullets(f"`{case}`: {why}" for case, why in left_out)
