"""One run's cases in the terminal, in 80 columns: a table per workload.

A table has a section per setting (size, parts …) and a row per case, named as the verdict
table names it: its strategy and the options not at their default ("makefile nodelay").
Each workload shows its headline figures with their units scaled ("21.3 Gbit/s",
"44.0 ms"), and notes (errors, options the kernel did not take, noisy
cases) become numbered footnotes under the table. Numbers are never cut: their columns do
not wrap and are as wide as their widest cell; only the case column folds, at a space
where it can. The full ids are in ``show --all --format csv``.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import pandas as pd
from rich import box
from rich.console import Group, JustifyMethod, RenderableType
from rich.table import Table
from rich.text import Text

from ..case import THROUGHPUT_WORKLOADS
from .format import finite, fmt_bps, fmt_num, fmt_us, numeric
from .markup import printable
from .verdicts import case_label, setting

Row = Mapping[Hashable, Any]
Cell = Callable[[Row], str]


def fmt_rate(x: Any) -> str:
    """A count per second, scaled: 950, 12.3 k, 1.23 M."""
    value = numeric(x)
    if not finite(value):
        return "–"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g}"


def id_row(case_id: str) -> dict[Hashable, Any]:
    """A case's fields read back from its id, as the labels (``case_label``, ``setting``)
    take them: for comparisons, whose tables hold only ids."""
    from ..suites.selection import id_fields

    fields: dict[Hashable, Any] = {}
    fields.update(id_fields(case_id))
    fields["tls_version"] = fields["tls"] or "1.3"
    fields["tls"] = bool(fields["tls"])
    return fields


def fmt_rsd(row: Row) -> str:
    """The spread of the per-value rates (relative standard deviation)."""
    rsd = numeric(row.get("rate_rsd"))
    return "–" if pd.isna(rsd) else f"{rsd:.0%}"


# The figures per kind of workload: (header, cell) pairs.
THROUGHPUT_COLUMNS: tuple[tuple[str, Cell], ...] = (
    ("throughput", lambda r: fmt_bps(numeric(r.get("throughput_bps")))),
    ("±", fmt_rsd),
    ("msg/s", lambda r: fmt_rate(r.get("msgs_per_s"))),
    ("segs/msg", lambda r: fmt_num(numeric(r.get("segs_per_msg")))),
    ("calls/msg", lambda r: fmt_num(numeric(r.get("send_calls_per_msg")))),
)
LATENCY_COLUMNS: tuple[tuple[str, Cell], ...] = (
    ("p50", lambda r: fmt_us(numeric(r.get("lat_p50_us")))),
    ("±", fmt_rsd),
    ("p99", lambda r: fmt_us(numeric(r.get("lat_p99_us")))),
    ("msg/s", lambda r: fmt_rate(r.get("msgs_per_s"))),
    ("segs/msg", lambda r: fmt_num(numeric(r.get("segs_per_msg")))),
)
FAIRNESS_COLUMN: tuple[str, Cell] = (
    "fairness", lambda r: fmt_num(numeric(r.get("jain_fairness")), 2))


def row_note(row: Row) -> str:
    """What a row's reader must know: its error, or the options the kernel did not take."""
    note = str(row.get("error") or row.get("opt_mismatch") or "")
    return "" if note in ("nan", "<NA>", "None") else note


def _columns(rows: Sequence[Row], workload: str) -> list[tuple[str, Cell]]:
    cols = list(THROUGHPUT_COLUMNS if workload in THROUGHPUT_WORKLOADS else LATENCY_COLUMNS)
    if any(pd.notna(numeric(r.get("jain_fairness"))) and int(numeric(r.get("conns")) or 1) > 1
           for r in rows):
        cols.append(FAIRNESS_COLUMN)
    return cols


def fit_width(widths: Sequence[int], total: int, sep: int = 2) -> int:
    """How wide the first (folding) column may be so that all columns fit ``total``: its
    own width where they fit, else what is left after the others (at least 12). ``sep``:
    the characters after each column (a padding of 1 and the space that divides them)."""
    rest = sum(widths[1:]) + sep * len(widths)
    return max(12, min(widths[0], total - rest))


def indented(label: str, width: int) -> Text:
    """A row's label in ``width`` columns: one space in, lines past the first three spaces
    in, broken at spaces (a word longer than a line is folded)."""
    label = re.sub(r"(\d) (?=[KMG]?i?B\b)", "\\1\u00a0", label)  # "64 KiB" stays whole
    lines = textwrap.wrap(label, width=max(4, width), initial_indent=" ",
                          subsequent_indent="   ", break_on_hyphens=False) or [" "]
    return Text("\n".join(lines).replace("\u00a0", " "))


# A row of a sectioned table: its label (folded, indented), its cells, and a style.
SectionRow = tuple[str, Sequence["str | Text"], "str | None"]


def sectioned_table(title: Text, headers: Sequence[tuple[str, JustifyMethod]],
                    sections: Mapping[str, Sequence[SectionRow]], width: int) -> Group:
    """A table that fits ``width``: its title, then a block per section under a bold line of
    its own (a table per section with the same column widths, so they line up). The first
    column (the case) is the only one that folds, at spaces, continuation lines indented;
    every other column is as wide as its widest cell and never wraps, so no number is ever
    cut."""
    rows = [r for members in sections.values() for r in members]
    plain = [[c.plain if isinstance(c, Text) else c for c in r[1]] for r in rows]
    widths = [max([len(headers[0][0]), *(len(r[0]) + 1 for r in rows)])]
    widths += [max([len(name), *(len(cells[k]) for cells in plain)])
               for k, (name, _) in enumerate(headers[1:])]
    case_width = fit_width(widths, width)
    blocks: list[RenderableType] = [title]
    for n, (name, members) in enumerate(sections.items()):
        table = Table(title=Text(printable(name), style="bold"), title_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
                      header_style="bold", padding=(0, 1, 0, 0), show_header=n == 0)
        table.add_column(headers[0][0], overflow="fold", width=case_width)
        for k, (head, justify) in enumerate(headers[1:]):
            table.add_column(head, justify=justify, no_wrap=True, width=widths[k + 1])
        for label, cells, style in members:
            table.add_row(indented(label, case_width) if label else Text(""),
                          *(c if isinstance(c, Text) else Text(c) for c in cells), style=style)
        blocks += [Text("")] * (n > 0) + [table]
    return Group(*blocks)


def workload_table(rows: Sequence[Row], workload: str, notes: dict[str, int],
                   width: int = 80) -> Group:
    """One workload's cases, a section per setting (size, parts …), each row its strategy
    and the options not at their default; ``notes`` numbers the footnotes across the run's
    tables; ``width``: the columns the table may take."""
    cols = _columns(rows, workload)
    sections: dict[str, list[SectionRow]] = {}
    has_notes = any(row_note(r) for r in rows)
    for r in rows:
        note = row_note(r)
        if note:
            notes.setdefault(note, len(notes) + 1)
        cells = [cell(r) for _, cell in cols] + ([f"[{notes[note]}]" if note else ""]
                                                  if has_notes else [])
        sections.setdefault(setting(r), []).append(
            (printable(case_label(r)), cells, "red" if r.get("error") else None))
    headers: list[tuple[str, JustifyMethod]] = [("case", "left")]
    headers += [(name, "right") for name, _ in cols] + ([("note", "left")] if has_notes else [])
    return sectioned_table(Text(workload, style="bold"), headers, sections, width)


def footnotes(notes: dict[str, int]) -> Text:
    lines = [f"[{k}] {printable(note)}" for note, k in notes.items()]
    lines.append("±: the spread of a case's per-value rates (relative standard deviation); "
                 "what holds between cases: the verdicts (flushbench show RUN)")
    return Text("\n".join(lines), style="dim")


def summary_tables(frame: pd.DataFrame, title: str = "", width: int = 80) -> RenderableType:
    """The run's cases as a table per workload (in the order they first appear), then the
    footnotes; ``width``: the terminal's columns."""
    rows = frame.to_dict("records")
    workloads: list[str] = list(dict.fromkeys(str(r.get("workload")) for r in rows))
    notes: dict[str, int] = {}
    parts: list[RenderableType] = [Text(printable(title), style="bold")] if title else []
    for workload in workloads:
        parts.append(workload_table([r for r in rows if str(r.get("workload")) == workload],
                                    workload, notes, width))
    parts.append(footnotes(notes))
    return Group(*parts)

