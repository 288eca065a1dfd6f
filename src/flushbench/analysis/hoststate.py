"""Rounds the host spent in a slow state: its wake-ups many times slower than usual.

Before every value the worker sends GO and waits for the peer's READY (untimed): one round
trip through the peer process, so one wake-up on each side. Its median per trial is
trials.csv's ``ready_us``. A round's figure is the median over its trials; since every round
runs the same cases, rounds compare like with like.

On a shared VM the host sometimes sleeps its idle virtual CPUs deeper for a while: round
trips then take 3-13 times as long (64 B requests at 200-830 µs instead of about 60-76, in
4 and 3 rounds of two quick runs, results/epyc-2core-vm/20261203-repeat-pairs/ p4). Paired
ratios do not cancel that: paths that wait for the peer in different ways slow down by
different factors (``sendmsg`` against ``sendall`` on rr 64 B: 0.38 in such a round, 0.95
in the others). A run with such rounds mixes two hosts; this module finds them, and the
terminal and report say so. It changes no verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

SLOW_FACTOR = 3.0  # a round this many times the quickest round's wake-up time is "slow"
# Against the quickest round, so that a run with most of its rounds slow still measures
# against the ones that were not (in the 30 stored quick runs without slow rounds, judged on
# rr 64 B, the slowest round came to 1.24-1.76x the quickest; 3x leaves room).
MIN_ROUNDS = 3  # fewer rounds with the figure: too few to tell a slow one


@dataclass(frozen=True)
class HostState:
    """The rounds with a wake-up figure, the slow ones and how slow."""

    rounds: int = 0  # rounds with a figure
    slow: tuple[int, ...] = ()  # the slow rounds, in order
    quickest_us: float = math.nan  # the quickest round's GO/READY round trip
    slow_us: float = math.nan  # the median over the slow rounds

    @property
    def factor(self) -> float:
        """How many times the quickest round's round trip the slow rounds took (NaN: none
        slow)."""
        if not self.slow or not self.quickest_us > 0:
            return math.nan
        return self.slow_us / self.quickest_us


def ready_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The finished trials with a GO/READY figure: columns ``round`` and ``ready_us`` (µs,
    finite and positive); empty before the column."""
    if trials.empty or "ready_us" not in trials.columns or "round" not in trials.columns:
        return pd.DataFrame({"round": pd.Series(dtype=int), "ready_us": pd.Series(dtype=float)})
    ready = pd.to_numeric(trials["ready_us"], errors="coerce")
    ok = trials.assign(ready_us=ready)[np.isfinite(ready) & (ready > 0)]
    if "error" in ok.columns:
        ok = ok[ok["error"].fillna("").astype(str) == ""]
    kept: pd.DataFrame = ok[["round", "ready_us"]]
    return kept


def host_state(trials: pd.DataFrame) -> HostState:
    """The host's state round by round, from trials.csv (empty before the column)."""
    by_round = ready_trials(trials).groupby("round")["ready_us"].median()
    if len(by_round) < MIN_ROUNDS:
        return HostState(rounds=len(by_round))
    quickest = float(by_round.min())
    slow = by_round[by_round > SLOW_FACTOR * quickest]
    return HostState(rounds=len(by_round), slow=tuple(int(r) for r in slow.index),
                     quickest_us=quickest,
                     slow_us=float(slow.median()) if len(slow) else math.nan)
