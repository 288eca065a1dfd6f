"""Figures of a value measured on N connections at once: aggregate and per-connection
throughput and Jain's fairness index (the table's columns: run/merge.connection_figures).

Each connection's throughput is its bytes over its own time (from the value's start to the
end of its work); the aggregate is all bytes over the value's time (to the last connection's
end). Jain's index, ``(sum x)^2 / (n * sum x^2)``, is 1 when every connection got the same
throughput and 1/n when one got everything (R. Jain, D. Chiu, W. Hawe, DEC-TR-301, 1984).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ConnFigures:
    """What a value on N connections gives the table."""

    conns: int
    throughput_bps: float  # aggregate, bits per second
    conn_min_bps: float
    conn_max_bps: float
    jain_fairness: float


def jain(rates: Sequence[float] | npt.NDArray[np.float64]) -> float:
    """Jain's fairness index of non-negative rates; NaN for none or all zero."""
    x = np.asarray(rates, dtype=float)
    if x.size == 0 or not np.all(np.isfinite(x)) or np.any(x < 0):
        return float("nan")
    square_sum = float(np.sum(x * x))
    if square_sum == 0.0:
        return float("nan")
    return float(np.sum(x) ** 2 / (x.size * square_sum))


def stream_figures(bytes_per_conn: Sequence[int], elapsed_ns: Sequence[int]) -> ConnFigures:
    """One value: each connection's bytes and its time from the value's start (ns)."""
    if len(bytes_per_conn) != len(elapsed_ns) or not bytes_per_conn:
        raise ValueError("one byte count and one time per connection, at least one")
    b = np.asarray(bytes_per_conn, dtype=float)
    t = np.asarray(elapsed_ns, dtype=float) / 1e9
    if np.any(t <= 0):
        raise ValueError("every connection's time must be > 0")
    rates = 8 * b / t
    return ConnFigures(conns=len(b), throughput_bps=float(8 * b.sum() / t.max()),
                       conn_min_bps=float(rates.min()), conn_max_bps=float(rates.max()),
                       jain_fairness=jain(rates))
