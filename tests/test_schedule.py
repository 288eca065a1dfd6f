"""Cells, baselines, twins and the seeded interleaved schedule."""

from __future__ import annotations

import dataclasses
from collections import Counter

from flushbench.analysis.cells import AA, cells
from flushbench.case import Case
from flushbench.run.schedule import plan
from flushbench.suites import load_suite


def test_cells_pair_each_case_with_its_baselines() -> None:
    """A case is compared along every axis where it is off the default, within its cell."""
    cases = [Case("stream", s, 1024, nodelay=nd, sndbuf=sb)
             for s in ("sendall", "makefile") for nd in (False, True) for sb in (0, 4096)]
    cases.append(Case("stream", "sendall", 64))  # another size: another cell
    found = cells(cases)
    assert [c.name for c in found] == ["stream-s1K-p2-loopback", "stream-s64-p2-loopback"]
    comps = {(c.case, c.axis): c.baseline for c in found[0].comparisons}
    mk = Case("stream", "makefile", 1024, nodelay=True, sndbuf=4096)
    assert comps[(mk.id, "strategy")] == dataclasses.replace(mk, strategy="sendall").id
    assert comps[(mk.id, "nodelay")] == dataclasses.replace(mk, nodelay=False).id
    assert comps[(mk.id, "sndbuf")] == dataclasses.replace(mk, sndbuf=0).id
    root = Case("stream", "sendall", 1024)
    assert not any(c.case == root.id and c.axis != AA for c in found[0].comparisons)
    twins = [c for c in found[0].cases if c.twin]
    assert [t.id for t in twins] == [root.id + "-twin"]
    assert comps[(root.id + "-twin", AA)] == root.id
    assert len(found[1].cases) == 2  # the lone 64-byte case and its twin


def test_cells_without_sendall_pick_the_closest_root() -> None:
    """rr 64 B in quick has only nodelay on: the twin copies sendall with nodelay."""
    quick = cells(load_suite("quick").cases)
    rr64 = next(c for c in quick if c.name == "rr-s64-p2-loopback")
    twin = next(c for c in rr64.cases if c.twin)
    assert twin.strategy == "sendall" and twin.nodelay
    assert all(cmp.baseline != twin.id for cmp in rr64.comparisons)


def test_the_schedule_is_seeded_complete_and_interleaved() -> None:
    """Every round runs every case once, cell by cell; the same seed gives the same order;
    orders change between rounds."""
    groups = cells(load_suite("quick").cases)
    visits = plan(groups, rounds=10, seed=42)
    assert visits == plan(groups, rounds=10, seed=42)
    assert visits != plan(groups, rounds=10, seed=43)
    all_ids = sorted(c.id for g in groups for c in g.cases)
    for r in range(10):
        in_round = [v for v in visits if v.round == r]
        assert len(in_round) == len(groups)
        assert sorted(v.cell for v in in_round) == list(range(len(groups)))
        assert sorted(c.id for v in in_round for c in v.cases) == all_ids
    assert [v.round for v in visits] == sorted(v.round for v in visits)  # round after round
    cell_orders = {tuple(v.cell for v in visits if v.round == r) for r in range(10)}
    assert len(cell_orders) > 5
    first_cell = [tuple(c.id for c in v.cases) for v in visits if v.cell == 0]
    assert len(set(first_cell)) > 5  # the cases of a cell are shuffled afresh each round
    positions = Counter(v.cases[0].id for v in visits if v.cell == 0)
    assert len(positions) > 2  # no case always goes first
