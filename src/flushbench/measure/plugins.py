"""Strategies from outside the package: ``--strategy-plugin module:Class`` and the
``flushbench.strategies`` entry-point group. Both register into :mod:`.strategies`."""

from __future__ import annotations

import importlib

from ..errors import UsageError
from .strategies import StrategyBase, register_strategy


def load_plugin(spec: str) -> type[StrategyBase]:
    """Import ``module:Class`` and register it."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"--strategy-plugin {spec!r}: expected module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--strategy-plugin {spec!r}: cannot import {module_name} ({exc})") \
            from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise UsageError(f"--strategy-plugin {spec!r}: {module_name} has no {attr}")
    return register_strategy(cls)


def load_entry_points() -> None:
    """Register strategies published under the ``flushbench.strategies`` entry-point group."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="flushbench.strategies"):
        register_strategy(ep.load())
