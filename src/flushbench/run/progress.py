"""The progress bar during a run: one step per visit, ETA from each visit's estimated time."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..case import Case
from ..report.terminal import progress_line
from ..suites import Suite
from .estimate import estimate_visit_s
from .schedule import Visit


class RunProgress:
    """A progress bar over a run's visits, weighted by their estimated time."""

    def __init__(self, suite: Suite, visits: list[Visit], quiet: bool = False,
                 console: Console | None = None) -> None:
        self.suite, self.visits, self.quiet = suite, visits, quiet
        self.console = console or Console(stderr=True)
        self.interactive = self.console.is_terminal and not quiet
        total = sum(estimate_visit_s(list(v.cases), suite) for v in visits)
        self.bar = Progress(TextColumn("[bold]{task.fields[what]}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=self.console,
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
        self.bar.update(self.task, what=f"round {visit.round + 1}/{self.rounds}")

    def end_visit(self, visit: Visit, rows: Sequence[dict[str, Any]]) -> None:
        self.bar.advance(self.task, estimate_visit_s(list(visit.cases), self.suite))
        if not self.interactive and not self.quiet:
            for row in rows:
                self.console.print(progress_line(visit.round + 1, self.rounds,
                                                 str(row["case"]), row),
                                   highlight=False, soft_wrap=True, markup=False)
