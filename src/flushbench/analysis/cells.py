"""What is compared with what: cells, their baselines and A/A twins.

A *cell* holds the cases that differ only along the compared axes (strategy with the makefile
buffer, nodelay, sndbuf, notsent_lowat, and transport between loopback TCP and unix): same
workload, size, parts, reply, batch, rcvbuf and transport family. Within a cell, each case is
compared with its *baseline* along each axis where it differs from the default: ``sendall``
for the strategy axis, off / auto for an option, ``loopback`` for a unix case, ``threads``
for the driver axis (a driver case's cell also holds its connection count).
A TLS case (``tls`` axis, baseline off) sits in the cell of the same case in the clear.

Each cell also gets a *twin* of its root baseline (the case closest to sendall with every
option at its default): the same code under a second label, measured in the same rounds.
The twin's verdict against the baseline is an A/A test: the run's own false-positive rate.

The manager measures the cases of a cell side by side, round after round
(``run/schedule.py``); the verdicts (``analysis/verdicts.py``) pair each comparison by round.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..case import Case, size_id

AXES = ("strategy", "nodelay", "sndbuf", "notsent_lowat", "transport", "tls", "driver")
BASE_DRIVER = "threads"  # the driver axis's baseline: a blocking strategy per thread
# A transport compared with another sits in the cell of its baseline transport.
BASE_TRANSPORT = {"unix": "loopback"}
AA = "A/A"  # the axis name of a twin's comparison


@dataclass(frozen=True, slots=True)
class Comparison:
    """``case`` against ``baseline`` along ``axis`` (both case ids of one cell)."""

    case: str
    baseline: str
    axis: str


@dataclass(frozen=True, slots=True)
class Cell:
    """Cases measured side by side, the comparisons between them and the twin."""

    name: str
    cases: tuple[Case, ...]
    comparisons: tuple[Comparison, ...]


def cell_name(case: Case, transport: str | None = None) -> str:
    """What the cases of a cell share, as a short id: 'stream-s64-p2-loopback' (a unix case
    is in its loopback counterpart's cell; the name lists the transports present)."""
    bits = [case.workload, "s" + size_id(case.msg_size)]
    if case.workload != "file":
        bits.append(f"p{case.parts}")
    if case.rcvbuf:
        bits.append("rb" + size_id(case.rcvbuf))
    if case.reply:
        bits.append("r" + size_id(case.reply))
    if case.workload == "pipeline":
        bits.append(f"k{case.batch}")
    if case.driver:  # a driver case: its connection count is part of what the cell holds
        bits.append(f"c{case.conns}")
    bits.append(transport or BASE_TRANSPORT.get(case.transport, case.transport))
    return "-".join(bits)


def _baseline(case: Case, axis: str) -> Case | None:
    """The case's partner at the default of ``axis``; None where it is the default."""
    if axis == "strategy":
        if case.strategy == "sendall" and not case.buffer:
            return None
        return dataclasses.replace(case, strategy="sendall", buffer=0, twin=False)
    if axis == "nodelay":
        return dataclasses.replace(case, nodelay=False, twin=False) if case.nodelay else None
    if axis == "sndbuf":
        return dataclasses.replace(case, sndbuf=0, twin=False) if case.sndbuf else None
    if axis == "notsent_lowat":
        return dataclasses.replace(case, notsent_lowat=0, twin=False) \
            if case.notsent_lowat else None
    if axis == "transport":
        base = BASE_TRANSPORT.get(case.transport)
        return dataclasses.replace(case, transport=base, twin=False) if base else None
    if axis == "tls":  # a TLS case against the same case in the clear (same cell)
        return dataclasses.replace(case, tls=False, twin=False) if case.tls else None
    if axis == "driver":  # the same connections driven by a thread each
        return dataclasses.replace(case, driver=BASE_DRIVER, twin=False) \
            if case.driver and case.driver != BASE_DRIVER else None
    raise ValueError(f"unknown axis {axis!r}; expected one of {', '.join(AXES)}")


def _root(cases: Sequence[Case]) -> Case:
    """The case every other one is closest to comparing with: sendall, options at defaults."""
    return min(cases, key=lambda c: (c.strategy != "sendall", c.buffer != 0, c.sndbuf != 0,
                                     c.notsent_lowat != 0, c.nodelay,
                                     c.transport in BASE_TRANSPORT, c.tls,
                                     c.driver not in ("", BASE_DRIVER), c.sort_key()))


def cells(cases: Iterable[Case], twins: bool = True) -> list[Cell]:
    """Group ``cases`` into cells (in the suite's order), add twins and comparisons."""
    groups: dict[str, list[Case]] = {}
    for case in cases:
        if not case.twin:
            groups.setdefault(cell_name(case), []).append(case)
    out = []
    for key, members in groups.items():
        ids = {c.id for c in members}
        name = _named(members) or key
        comps = [Comparison(c.id, b.id, axis) for c in members for axis in AXES
                 if (b := _baseline(c, axis)) is not None and b.id in ids]
        if twins:
            root = _root(members)
            twin = dataclasses.replace(root, twin=True)
            members = [*members, twin]
            comps.append(Comparison(twin.id, root.id, AA))
        out.append(Cell(name, tuple(members), tuple(comps)))
    return out


def _named(members: Sequence[Case]) -> str:
    """A cell with unix cases is named for the transports present ('…-loopback-unix' mixed,
    '…-unix' alone); '' for any other cell (its key is its name)."""
    kinds = sorted({c.transport for c in members}, key=lambda t: (t in BASE_TRANSPORT, t))
    if not any(t in BASE_TRANSPORT for t in kinds):
        return ""
    return cell_name(members[0], "-".join(kinds))
