"""The progress bar during a run: one step per visit, ETA from each visit's estimated time.

Each finished trial is printed above the bar (or, when output is not a terminal, as a plain
line): its round, cell and case and its headline figure. The ETA is the estimates of the
visits still to come, scaled by how long the finished ones took against their estimates, so
it reads from the first visit on (never ``-:--:--``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable, Sequence
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from ..case import Case
from ..report.terminal import progress_line
from ..suites import Suite
from .estimate import estimate_visit_s
from .schedule import Visit


def eta_s(total_est: float, done_est: float, elapsed: float) -> float:
    """Seconds left: the estimate of what is left, scaled by the pace so far (actual over
    estimated seconds of what is done; 1 until something is done, bounded to 0.25–4)."""
    left = max(0.0, total_est - done_est)
    pace = elapsed / done_est if done_est > 0 and elapsed > 0 else 1.0
    return left * min(4.0, max(0.25, pace))


def fmt_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class EtaColumn(ProgressColumn):
    """'ETA 2:41' from the estimates (the task's total and completed are estimated seconds)."""

    def __init__(self, started: float) -> None:
        super().__init__()
        self.started = started

    def render(self, task: Task) -> Text:
        left = eta_s(task.total or 0.0, task.completed, time.monotonic() - self.started)
        return Text(f"ETA {fmt_eta(left)}", style="progress.remaining")


class RunProgress:
    """A progress bar over a run's visits, weighted by their estimated time."""

    def __init__(self, suite: Suite, visits: list[Visit], quiet: bool = False,
                 console: Console | None = None) -> None:
        self.suite, self.visits, self.quiet = suite, visits, quiet
        self.console = console or Console(stderr=True)
        self.interactive = self.console.is_terminal and not quiet
        total = sum(estimate_visit_s(list(v.cases), suite) for v in visits)
        self.bar = Progress(TextColumn("[bold]{task.fields[what]}"), BarColumn(bar_width=20),
                            TimeElapsedColumn(),
                            EtaColumn(time.monotonic()), console=self.console,
                            disable=not self.interactive)
        self.task = self.bar.add_task("run", total=max(total, 1e-9), what="")
        self.index = 0
        self.rounds = max((v.round for v in visits), default=0) + 1

    def __enter__(self) -> RunProgress:
        if not self.quiet:  # cases the run's transport cannot measure, and why
            for case_id, why in self.suite.skipped:
                self.console.print(f"skipped {case_id}: {why}", markup=False, highlight=False,
                                   soft_wrap=True)
        self.bar.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.bar.__exit__(exc_type, exc, tb)

    def start_visit(self, visit: Visit, cases: Sequence[Case]) -> None:
        self.index += 1
        self.bar.update(self.task, what=f"round {visit.round + 1}/{self.rounds}, visit "
                                        f"{self.index}/{len(self.visits)}")

    def end_visit(self, visit: Visit, rows: Sequence[dict[str, Any]]) -> None:
        self.bar.advance(self.task, estimate_visit_s(list(visit.cases), self.suite))
        if self.quiet:
            return
        cases = {c.id: c for c in visit.cases}
        for row in rows:  # above the live bar on a terminal; plain lines otherwise
            case = cases.get(str(row.get("case")))
            fields: dict[Hashable, Any] = {}
            fields.update(dataclasses.asdict(case) if case else {})
            fields.update(row)
            self.console.print(progress_line(visit.round + 1, self.rounds, fields),
                               highlight=False, soft_wrap=not self.interactive, markup=False,
                               overflow="fold")
