"""flushbench: how should a Python program write to a socket? Measure it.

Public API: :func:`load` (results as a pandas DataFrame), :class:`Strategy` and
:class:`AsyncStrategy` (the interfaces a send path implements), :func:`register_strategy`,
and :mod:`flushbench.testing` (the conformance check every strategy must pass).
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

try:
    __version__ = _metadata.version("flushbench")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["AsyncStrategy", "Strategy", "__version__", "load", "register_strategy"]

if TYPE_CHECKING:  # what users' type checkers see; at run time the names load lazily
    from .measure.strategies import AsyncStrategy, Strategy, register_strategy
    from .results import load


def __getattr__(name: str) -> Any:
    # Lazy: workers import flushbench without paying for pandas.
    if name == "load":
        from .results import load

        return load
    if name in ("Strategy", "AsyncStrategy", "register_strategy"):
        from .measure import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'flushbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
