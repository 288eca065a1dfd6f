"""Suites: TOML files that expand to a deterministic, sorted list of cases.

The named suites (``smoke``, ``quick``, ``tls``, ``concurrency``, ``full``, ``wan``) ship
inside this package, so an installed flushbench has them; a path to any ``.toml`` file works
too. A suite's ``[[matrix]]`` tables each expand to the product of their list-valued keys;
the union is de-duplicated and sorted, so a suite always gives the same ordered list of
cases.
"""

from __future__ import annotations

from .files import Suite, available_suites, load_suite, parse_suite, resolve_suite
from .matrix import expand, filter_cases, id_matches

__all__ = ["Suite", "available_suites", "expand", "filter_cases", "id_matches", "load_suite",
           "parse_suite", "resolve_suite"]
