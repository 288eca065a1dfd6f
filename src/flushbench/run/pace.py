"""Keeping a run inside its suite's time budget: fewer values per trial in later rounds.

A suite may set a wall time (``[suite] budget``, seconds of ``flushbench run``: the quick
suite's 170, to stay inside 3 minutes). Loop counts are frozen after the calibration
rounds, so a host that slows down afterwards (this VM: round trips at 0.7-1 ms instead of
~70 us for stretches, whole runs 10-30 % slower) stretches every later value: quick runs
of 144-161 s went to 182 s once. So after each round the manager asks
:meth:`Pace.next_values` how many values the cases may run in the next one. A round costs

    fixed + values x per_value

seconds, both from the rounds so far: ``per_value`` is their time in slotted values (summed
over the cases) over their values per case, ``fixed`` the rest of a round on average (worker
start-ups, connections, warm-ups, slow cases' values, writes). Averages, not the last round:
one slow round (25 s against 14) made the last-round rule cut the next to 9 values of 32 (a
quick run here). Shared evenly over the rounds left, what remains of the budget (less
``RESERVE_S`` for the end: verdicts.csv; and ``REPORT_S`` when ``--report`` builds the run's
report after it, so that the whole command keeps the promise) gives the values, never more
than the suite's and never fewer than ``MIN_VALUES``. On a host as fast as when the suite
was sized it changes nothing. It cannot make up for everything: warm-ups, connections and
the trap cases' 43 ms operations do not shrink with the values, and a run whose host was
slow in 4 of 10 rounds took about 182 s with five rounds at the floor
(results/epyc-2core-vm/20261203-time-budget/). Fewer values widen that run's intervals a
little; the verdicts stay paired by round and slot (a case and its baseline always run the
same values in a round). The budget is the suite's, as written: ``--rounds``, ``--values``,
``--fast``, ``--link``, ``--peer`` and ``--resume`` turn it off (``options.prepare_suite``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MIN_VALUES = 8  # never fewer values per trial than this (or than the suite's, if fewer)
RESERVE_S = 12.0  # kept for the end: the final writes and verdicts.csv took 6-13 s here
REPORT_S = 15.0  # kept too under --report: a quick run's report took 13-20 s here


@dataclass
class Pace:
    """The budget's bookkeeping for one run: its start, and what each round cost."""

    budget_s: float  # 0: no budget
    values: int  # the suite's values per trial (the most a round runs)
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=math.nan)  # on ``clock``; nan: now
    reserve_s: float = RESERVE_S  # kept for the end (plus REPORT_S when a report follows)
    by_round: dict[int, int] = field(default_factory=dict)  # round -> values it ran
    # over the rounds so far: rounds, wall seconds, seconds in slotted values, values per case
    _sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])

    def __post_init__(self) -> None:
        if math.isnan(self.started):
            self.started = self.clock()

    @property
    def floor(self) -> int:
        return min(MIN_VALUES, self.values)

    def ran(self, round_: int, seconds: float, slotted_s: float, values: int) -> None:
        """Round ``round_`` took ``seconds`` of wall time, ``slotted_s`` of them in the values
        of its slotted cases, ``values`` values per case."""
        self.by_round[round_] = values
        if values > 0 and seconds > 0:
            slotted_s = min(max(slotted_s, 0.0), seconds)
            for i, x in enumerate((1, seconds, slotted_s, values)):
                self._sums[i] += x

    def next_values(self, rounds_left: int) -> int:
        """Values per trial for the next round, so the rounds left fit the budget."""
        rounds, seconds, slotted_s, values = self._sums
        if self.budget_s <= 0 or rounds_left <= 0 or values <= 0 or slotted_s <= 0:
            return self.values
        fixed, per_value = (seconds - slotted_s) / rounds, slotted_s / values
        left = self.budget_s - self.reserve_s - (self.clock() - self.started)
        fit = math.floor((left / rounds_left - fixed) / per_value)
        return max(self.floor, min(self.values, fit))

    def summary(self) -> str:
        """One line for the end of the run when the budget shortened rounds ("" if not)."""
        short = {r: v for r, v in sorted(self.by_round.items()) if v < self.values}
        if not short:
            return ""
        rounds = [r + 1 for r in short]
        span = f"round {rounds[0]}" if len(rounds) == 1 else \
            f"{len(rounds)} rounds ({', '.join(map(str, rounds))})"
        low, high = min(short.values()), max(short.values())
        count = f"{low}" if low == high else f"{low}-{high}"
        return (f"the host ran slower than the suite was sized for: {span} measured "
                f"{count} values per case instead of "
                f"{self.values}, to keep the run inside its {self.budget_s:g} s budget "
                f"(trials.csv, column values)")
