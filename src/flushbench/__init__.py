"""flushbench: how should a Python program write to a socket? Measure it.

Public API:

* :func:`load` (runs at or below a path as one pandas DataFrame; ``latest=True`` for the
  newest run only) and :func:`load_run` (exactly one run folder); their columns, units and
  dtypes are :mod:`flushbench.schema` (docs/api.md);
* :class:`Strategy` and :class:`AsyncStrategy` (the interfaces a send path implements) and
  :func:`register_strategy`; :mod:`flushbench.testing` is the conformance check every
  strategy must pass;
* :class:`FlushbenchError` and its :class:`ResultsError` (a run that cannot be read) and
  :class:`UsageError` (a bad argument): one-line messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["AsyncStrategy", "FlushbenchError", "ResultsError", "Strategy", "UsageError",
           "__version__", "load", "load_run", "register_strategy"]

if TYPE_CHECKING:  # what users' type checkers see; at run time the names load lazily
    from .errors import FlushbenchError, ResultsError, UsageError
    from .measure.strategies import AsyncStrategy, Strategy, register_strategy
    from .results import load, load_run

    __version__: str

# Lazy: workers import flushbench without paying for pandas.
_HOMES = {"load": "results", "load_run": "results", "Strategy": "measure.strategies",
          "AsyncStrategy": "measure.strategies", "register_strategy": "measure.strategies",
          "FlushbenchError": "errors", "ResultsError": "errors", "UsageError": "errors"}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # lazy too: importlib.metadata costs a worker 90 ms
        from importlib import metadata

        try:
            return metadata.version("flushbench")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module 'flushbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, the module's own dunders and the submodules imported so far (not
    the helpers this file imports for itself)."""
    import types

    own = {n for n, v in globals().items() if n.startswith("__") or isinstance(v, types.ModuleType)}
    return sorted(own | set(__all__))
