"""How fast is the host's CPU right now? A pure-Python probe, run between cases.

On shared and virtual machines the CPU itself changes speed by tens of percent within
seconds (a busy sibling hyper-thread, another tenant, frequency boost). Every figure of a
case moves with it, and no harness can average that away inside one case. The manager
therefore times a fixed pure-Python loop on each CPU the benchmark uses, before the first
case and after every case, and stores the speed next to the case (column ``host_speed``).
A comparison can then tell "the socket path changed" from "the host was slower".

The probe runs while no worker runs, so it never competes with a timed value.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from ..analysis.stats import geomean

SLICE_S = 0.008  # per CPU and probe: 94 cases x 2 CPUs x 8 ms ~ 1.5 s per quick run
CHUNK = 500  # loop iterations between clock reads
MAX_CPUS = 8


def _spin(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x * 31 + i) & 0xFFFF
    return x


def probe_here(slice_s: float = SLICE_S) -> float:
    """Million loop iterations per second of :func:`_spin` on the CPU this thread is on."""
    _spin(CHUNK)  # warm the code path
    done, t0 = 0, time.perf_counter()
    deadline = t0 + slice_s
    while True:
        _spin(CHUNK)
        done += CHUNK
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - t0) / 1e6


def probe_cpus(pinned: Iterable[int] = ()) -> list[int]:
    """The CPUs to probe: the pinned ones, else the ones this process may use (at most 8)."""
    cpus = sorted(set(pinned))
    if cpus:
        return cpus
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))[:MAX_CPUS]
    return []


def probe(cpus: Iterable[int], slice_s: float = SLICE_S) -> float | None:
    """Geometric mean of the probe over ``cpus`` (each in turn); None where it cannot pin."""
    cpus = list(cpus)
    if not cpus:  # a platform without CPU affinity: wherever we run
        return probe_here(slice_s)
    if not hasattr(os, "sched_setaffinity"):
        return None
    before = os.sched_getaffinity(0)
    rates = []
    try:
        for cpu in cpus:
            try:
                os.sched_setaffinity(0, {cpu})
            except OSError:
                continue  # offline or outside our cpuset: skip it
            rates.append(probe_here(slice_s))
    finally:
        os.sched_setaffinity(0, before)
    return geomean(rates) if rates else None


def describe(pinned: Iterable[int] = (), slice_s: float = SLICE_S) -> dict[str, object]:
    """What ``meta.json`` says about the probe of a run."""
    return {"cpus": probe_cpus(pinned), "slice_s": slice_s, "unit": "million loops/s",
            "what": "pure-Python loop timed on each CPU before and after every case; "
                    "a case's host_speed is the mean of the two (geometric mean over CPUs)"}


class Tracker:
    """Probe at case boundaries; a case's speed is the mean of the probes around it."""

    def __init__(self, pinned: Iterable[int] = (), slice_s: float = SLICE_S) -> None:
        self.cpus = probe_cpus(pinned)
        self.slice_s = slice_s
        self.last: float | None = None

    def start(self) -> None:
        self.last = probe(self.cpus, self.slice_s)

    def around_case(self) -> float | None:
        """Call after a case: the host speed for it (and the start of the next one)."""
        before, after = self.last, probe(self.cpus, self.slice_s)
        self.last = after
        known = [v for v in (before, after) if v is not None]
        return sum(known) / len(known) if known else None
