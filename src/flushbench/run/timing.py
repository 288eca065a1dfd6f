"""A public timing hook: where a run's wall time goes, without patching anything.

The manager reports the spans of its own work (a visit, its worker process, the merge and
writes, the host probe, pyperf.json, the verdicts) to a :class:`Timeline`; every trial
records its own phases (connect and hello, warm-up, values) in the record it leaves for the
manager, which hands them to :meth:`Timeline.worker`. ``bench/bench_breakdown.py`` uses it;
a normal run passes none and pays nothing but a few clock reads per visit.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any


class Timeline:
    """Sums of named spans (seconds), span counts, and the workers' own phases.

    A span opened inside another is counted in both totals and in :attr:`inside`, so a
    reader can tell, say, the host probe inside a case from the one before the first case.
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.workers: list[dict[str, Any]] = []
        # (outer, inner): seconds of span ``inner`` opened directly inside span ``outer``
        self.inside: dict[tuple[str, str], float] = defaultdict(float)
        self._open: list[str] = []

    @contextlib.contextmanager
    def span(self, name: str) -> Iterator[None]:
        outer = self._open[-1] if self._open else None
        self._open.append(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self._open.pop()
            self.totals[name] += elapsed
            self.counts[name] += 1
            if outer is not None:
                self.inside[outer, name] += elapsed

    def own(self, name: str) -> float:
        """Seconds in span ``name`` outside the spans opened directly inside it."""
        return self.totals.get(name, 0.0) - sum(
            secs for (outer, _), secs in self.inside.items() if outer == name)

    def worker(self, case_id: str, phases: dict[str, Any]) -> None:
        """One trial's phases (seconds; see ``Session.phases``)."""
        self.workers.append({"case": case_id, **phases})


@contextlib.contextmanager
def span(timeline: Timeline | None, name: str) -> Iterator[None]:
    """``timeline.span(name)``, or nothing when there is no timeline."""
    if timeline is None:
        yield
        return
    with timeline.span(name):
        yield
