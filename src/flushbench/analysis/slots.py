"""Figures paired slot by slot: the per-round log ratio of throughput and p50 verdicts.

Within a round a worker runs its cell's cases in *slots*: every case one short value per
slot, in a fresh order (``run/schedule.py``), so the k-th value of a case and the k-th value
of its baseline were measured milliseconds apart. A short value swings on its own, and a
swing hits one side of a slot, not both: in the verdict bench's runs (docs/design.md) a
16 or 128 KiB stream value holding a retransmission (on loopback: packets reordered between
the two CPUs' queues) ran 16-22 % slower than the others (medians; 2-5 % of the values);
a 1 MiB connection now and then runs at a third of its speed for a stretch of slots; and
now and then a stretch of a round runs 16 KiB round trips ten times slower, which catches
some cases' trials and not others'. So a throughput verdict and a p50 latency
verdict take, per round r,

    d_r = median over slots k of ln(figure of the case in slot k / figure of the baseline in slot k)

where the figure is a value's rate (bytes over its elapsed time) or the p50 of its
operations. The median keeps a swing in one slot from moving the round; the rounds then
enter the paired t interval as any metric's do (``verdicts.py``). What it does not see: a
case that is slower in fewer than half of a round's slots and as fast in the rest. Its
pooled figures in table.csv and trials.csv still do, and p99 stays a trial's own (a tail
is not to be voted away).

Where the two sides of a round ran different numbers of values (a case slow enough to run
two values in a row instead of in slots, say), their values do not line up, and the
comparison pairs the trials' pooled figures instead, in every round alike. A driver case
(many connections) runs its values in a row too; against a driver baseline of the same
values the k-th values still pair within the round, seconds rather than milliseconds apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

SlotFigures = Mapping[int, np.ndarray]
"""round -> a figure of each of the case's values in that round, in slot order"""

THROUGHPUT, P50 = "throughput_bps", "lat_p50_us"
SLOTTED = (THROUGHPUT, P50)
"""the trial columns (verdict metrics) paired slot by slot"""


def by_round(rounds: np.ndarray, figures: np.ndarray) -> dict[int, np.ndarray] | None:
    """``figures`` (one per value) grouped by round, in the order measured; None when the
    two do not line up or the rounds are not whole numbers."""
    if not (rounds.ndim == figures.ndim == 1 and rounds.size == figures.size) or \
            rounds.size == 0 or not np.issubdtype(rounds.dtype, np.integer):
        return None
    return {int(k): figures[rounds == k] for k in np.unique(rounds)}


def _array(values: Iterable[float] | np.ndarray, dtype: type | None = None) -> np.ndarray:
    out: np.ndarray = np.asarray(values if isinstance(values, np.ndarray) else list(values),
                                 dtype=dtype)
    return out


def slot_rates(rounds: Iterable[int] | np.ndarray, nbytes: Iterable[float] | np.ndarray,
               elapsed_ns: Iterable[float] | np.ndarray) -> dict[int, np.ndarray] | None:
    """Each value's rate (bytes per ns; NaN where not positive) grouped by round, in the
    order the values were measured; None when the three columns do not line up."""
    try:  # a samples file may come from anywhere: anything but numbers is "not known"
        r, b, t = _array(rounds), _array(nbytes, float), _array(elapsed_ns, float)
    except (TypeError, ValueError):
        return None
    if b.shape != t.shape:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where((b > 0) & (t > 0) & np.isfinite(b) & np.isfinite(t), b / t, np.nan)
    return by_round(r, rate)


def value_p50s(rounds: Iterable[int] | np.ndarray, lat_ns: Iterable[float] | np.ndarray,
               ops: Iterable[int] | np.ndarray) -> dict[int, np.ndarray] | None:
    """The p50 of each value's operations (``ops`` of them each, in ``lat_ns`` one after the
    other) grouped by round; None when the counts do not add up to the samples."""
    try:
        r, lat, n = _array(rounds), _array(lat_ns, float), _array(ops)
    except (TypeError, ValueError):
        return None
    if n.ndim != 1 or n.size == 0 or not np.issubdtype(n.dtype, np.integer) or \
            (n <= 0).any() or lat.ndim != 1 or int(n.sum()) != lat.size:
        return None
    bounds = np.cumsum(n)[:-1]
    with np.errstate(invalid="ignore"):
        p50 = np.array([float(np.median(c)) for c in np.split(lat, bounds)])
    return by_round(r, np.where(np.isfinite(p50) & (p50 > 0), p50, np.nan))


def from_samples(samples: Mapping[str, np.ndarray], column: str) -> dict[int, np.ndarray] | None:
    """A samples file's slot figures for ``column`` (throughput from ``v_bytes`` and
    ``v_elapsed_ns``, p50 from ``lat_ns`` and ``ops_per_value``, by ``round_of_value``);
    None when it lacks them (older runs), they do not line up (a hostile file), or the
    column is not paired slot by slot."""
    rounds = samples.get("round_of_value")
    if rounds is None:
        return None
    if column == THROUGHPUT:
        nbytes, elapsed = samples.get("v_bytes"), samples.get("v_elapsed_ns")
        if nbytes is None or elapsed is None:
            return None
        return slot_rates(rounds, nbytes, elapsed)
    if column == P50:
        lat, ops = samples.get("lat_ns"), samples.get("ops_per_value")
        if lat is None or ops is None:
            return None
        return value_p50s(rounds, lat, ops)
    return None


def round_log_ratio(case: np.ndarray, baseline: np.ndarray) -> float:
    """The median over slots of ln(case / baseline), slot k against slot k; NaN when no slot
    has both figures, or when the two sides ran different numbers of values (a slow case runs
    two values in a row, not in slots: its values do not line up with its baseline's)."""
    if case.size != baseline.size:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(case) - np.log(baseline)
    d = d[np.isfinite(d)]
    return float(np.median(d)) if d.size else float("nan")


def log_ratios(case: SlotFigures, baseline: SlotFigures, rounds: Iterable[int]
               ) -> np.ndarray | None:
    """d_r for each of ``rounds``; None when a round lacks a slot pair on either side (the
    caller then pairs the trials' own figures instead, for every round alike)."""
    out = []
    for r in rounds:
        a, b = case.get(int(r)), baseline.get(int(r))
        if a is None or b is None:
            return None
        d = round_log_ratio(a, b)
        if not np.isfinite(d):
            return None
        out.append(d)
    return np.asarray(out, dtype=float)
