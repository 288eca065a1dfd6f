"""The interleaved schedule: a run is R rounds of visits to every cell, in seeded random order.

Each round visits the cells (``analysis/cells.py``) in a fresh random order and runs every case
of a cell once, in a fresh random order (randomized multiple interleaved trials, Abedi &
Brecht, ICPE 2017). One worker process serves one visit, so a case and its baseline run
seconds apart in one process, while processes (and CPU placement) change between rounds. A
seed makes the whole schedule reproducible; it is recorded in meta.json.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..analysis.cells import Cell
from ..case import Case


@dataclass(frozen=True, slots=True)
class Visit:
    """One worker process: the cases of one cell, in this round's order."""

    round: int
    cell: int
    cases: tuple[Case, ...]


def plan(all_cells: Sequence[Cell], rounds: int, seed: int) -> list[Visit]:
    """Every visit of a run, in the order they run: round by round, cells and cases shuffled
    afresh each round by one seeded generator."""
    rng = random.Random(seed)
    visits = []
    for r in range(rounds):
        order = list(range(len(all_cells)))
        rng.shuffle(order)
        for index in order:
            members = list(all_cells[index].cases)
            rng.shuffle(members)
            visits.append(Visit(r, index, tuple(members)))
    return visits
