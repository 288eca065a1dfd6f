"""flushbench: how should a Python program write to a TCP socket? Measure it.

Public API: :func:`load` (results as a pandas DataFrame), :class:`Strategy` (the interface
a send path implements) and :func:`register_strategy`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "Strategy", "AsyncStrategy", "register_strategy"]


def __getattr__(name: str):
    # Lazy: workers import flushbench without paying for pandas.
    if name == "load":
        from .results import load

        return load
    if name in ("Strategy", "AsyncStrategy", "register_strategy"):
        from . import strategies

        return getattr(strategies, name)
    raise AttributeError(name)
