"""Operations per value: calibrated in a case's first trials, then frozen for the run.

A value times ``n`` operations and a fixed cost around them (the peer confirming the last
byte, a few system calls), so a value's figure leans on ``n``: the fewer operations, the
more the fixed cost weighs. Two cases compared slot by slot must therefore run the same
``n``, or the one with the smaller count looks slower for that reason alone. In the verdict
bench (``results/epyc-2core-vm/20261203-value-length/``) one stalled calibration value froze
``sendall`` 1 KiB at 10 operations per value against its aliases' 121-571, and every alias
came out 2.3-3.1x "faster"; a calibration round caught in one of the host's slow stretches
froze 2 operations per 16 KiB round-trip value where the next round would have found 30.

So, per cell:

* a case calibrates in its first ``CALIBRATION_TRIALS`` trials (each trial sizes its
  values to the value time and reports the count that fits at its values' median op time,
  ``measure/session.calibrated_ops``), and keeps the largest: one slow round does not set it;
* the cases that run in slots (``slotted`` in the trial's record: not the slow ones, whose
  values run in a row) then share one count, the median of theirs;
* a slow case (the 40 ms delayed-ACK trap), or one whose own count is under a quarter of
  that median (a trap that ran in slots once), keeps its own; a twin its original's.

Counts given from outside (``--loops-file``, a resumed run's loops.json) are frozen as they are.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..case import Case

CALIBRATION_TRIALS = 2
SPREAD = 4  # a case whose own count is under a quarter of its cell's keeps its own


class LoopCounts:
    """The frozen counts (``frozen``: case id -> operations per value) and the trials that
    are still calibrating."""

    def __init__(self, frozen: Mapping[str, int], rounds: int) -> None:
        self.frozen: dict[str, int] = dict(frozen)
        self.calibration_trials = max(1, min(CALIBRATION_TRIALS, rounds))
        self.seen: dict[str, list[int]] = {}  # case id -> the counts its trials reported
        self.slotted: dict[str, bool] = {}
        self.shared: dict[str, bool] = {}  # froze at its cell's count

    def add(self, cases: Sequence[Case], records: Iterable[Mapping[str, Any]]) -> None:
        """Take one visit's trials (its cell's cases, in the same order as ``records``);
        freeze the cell's counts once its calibrating cases have had their trials."""
        fresh = []
        for case, record in zip(cases, records):
            if case.id in self.frozen:
                continue
            loops = record.get("loops")
            if record.get("error") or not isinstance(loops, int) or loops < 1:
                continue  # failed or measured nothing: calibrate again next time
            self.seen.setdefault(case.id, []).append(loops)
            # in slots in any of its calibration trials (a stall can make one trial slow)
            self.slotted[case.id] = self.slotted.get(case.id, False) or bool(record.get("slotted"))
            fresh.append(case)
        ready = [c for c in fresh if len(self.seen[c.id]) >= self.calibration_trials and not c.twin]
        own = {c.id: max(self.seen[c.id]) for c in ready}
        # a case that calibrates late (it failed before) joins the count its cell froze
        before = [self.frozen[c.id] for c in cases if c.id in self.frozen and not c.twin
                  and c.id not in own and self.shared.get(c.id)]
        cell = int(statistics.median_low(before or [n for cid, n in own.items()
                                                   if self.slotted[cid]] or [0]))
        for cid, n in own.items():
            # in slots, and within SPREAD of the cell: a case whose operations take far
            # longer (a Nagle trap that passed a warm-up) would run far longer values
            joins = self.slotted[cid] and cell > 0 and n * SPREAD >= cell
            self.shared[cid] = joins
            self.frozen[cid] = cell if joins else n
        for case in cases:  # a twin does exactly its original's work
            root = case.id.removesuffix("-twin")
            if case.twin and root in self.frozen:
                self.frozen[case.id] = self.frozen[root]
