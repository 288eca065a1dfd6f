"""``[[matrix]]`` tables to cases, and the filters that pick cases (:mod:`.selection`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from ..case import CASE_KEYS, Case
from ..errors import UsageError
from . import selection


def id_matches(case_id: str, patterns: Sequence[str]) -> bool:
    """True if ``case_id`` matches every pattern: ``key=value`` fields, globs or substrings,
    commas separating alternatives (:mod:`.selection`)."""
    return selection.matches(case_id, patterns)


def filter_cases(cases: Iterable[Case], patterns: Sequence[str] | None) -> list[Case]:
    """Keep the cases whose id matches all of ``patterns`` (every case when there are none)."""
    if not patterns:
        return list(cases)
    return [c for c in cases if id_matches(c.id, patterns)]


def expand(matrices: Sequence[Any], where: str = "suite") -> list[Case]:
    """Expand ``[[matrix]]`` tables to a sorted list of unique cases."""
    seen: dict[str, Case] = {}
    for index, table in enumerate(matrices, 1):
        if not isinstance(table, dict):
            raise UsageError(f"{where}: [[matrix]] #{index} must be a table")
        unknown = sorted(set(table) - set(CASE_KEYS))
        if unknown:
            raise UsageError(f"{where}: [[matrix]] #{index} has unknown key {unknown[0]!r}; "
                             f"expected some of {', '.join(CASE_KEYS)}")
        for required in ("workload", "strategy", "msg_size"):
            if required not in table:
                raise UsageError(f"{where}: [[matrix]] #{index} needs {required!r}")
        keys = [k for k in CASE_KEYS if k in table]
        axes = [v if isinstance(v, list) else [v] for v in (table[k] for k in keys)]
        for key, axis in zip(keys, axes):
            if not axis:
                raise UsageError(f"{where}: [[matrix]] #{index} key {key!r} is an empty list")
        for combo in itertools.product(*axes):
            try:
                case = Case(**dict(zip(keys, combo)))
            except (UsageError, TypeError) as exc:
                raise UsageError(f"{where}: [[matrix]] #{index}: {exc}") from None
            seen.setdefault(case.id, case)
    return sorted(seen.values(), key=Case.sort_key)
