"""The progress bar during a run, with an ETA from each case's estimated time."""

from __future__ import annotations

from types import TracebackType

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
from ..results import ResultRow
from ..suites import Suite
from .estimate import estimate_case_s


class RunProgress:
    """A progress bar whose ETA comes from each case's estimated time, not from averages."""

    def __init__(self, suite: Suite, plan: list[Case], quiet: bool = False,
                 console: Console | None = None) -> None:
        self.suite, self.plan, self.quiet = suite, plan, quiet
        self.console = console or Console(stderr=True)
        self.estimates = {c.id: estimate_case_s(c, suite) for c in plan}
        self.interactive = self.console.is_terminal and not quiet
        self.bar = Progress(TextColumn("[bold]{task.fields[case]}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=self.console,
                            disable=not self.interactive)
        self.task = self.bar.add_task("run", total=len(plan), case="")
        self.index = 0

    def __enter__(self) -> RunProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.bar.__exit__(exc_type, exc, tb)

    def start_case(self, case: Case) -> None:
        self.index += 1
        self.bar.update(self.task, case=case.id)

    def end_case(self, case: Case, row: ResultRow) -> None:
        self.bar.advance(self.task)
        if not self.interactive and not self.quiet:
            self.console.print(progress_line(self.index, len(self.plan), case.id, row),
                          highlight=False, soft_wrap=True, markup=False)
