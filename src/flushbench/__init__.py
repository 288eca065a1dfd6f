"""flushbench: how should a Python program write to a socket? Measure it.

Public API: :func:`load` (results as a pandas DataFrame), :class:`Strategy` and
:class:`AsyncStrategy` (the interfaces a send path implements), :func:`register_strategy`,
and :mod:`flushbench.testing` (the conformance check every strategy must pass).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["AsyncStrategy", "Strategy", "__version__", "load", "register_strategy"]

if TYPE_CHECKING:  # what users' type checkers see; at run time the names load lazily
    from .measure.strategies import AsyncStrategy, Strategy, register_strategy
    from .results import load

    __version__: str


def __getattr__(name: str) -> Any:
    # Lazy: workers import flushbench without paying for pandas.
    if name == "__version__":  # lazy too: importlib.metadata costs a worker 90 ms
        from importlib import metadata

        try:
            return metadata.version("flushbench")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    if name == "load":
        from .results import load

        return load
    if name in ("Strategy", "AsyncStrategy", "register_strategy"):
        from .measure import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'flushbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
