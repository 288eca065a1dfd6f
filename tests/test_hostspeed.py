"""hostspeed: the CPU probe between cases pins itself per CPU and leaves affinity as it was."""

from __future__ import annotations

import math
import os

import pytest

from flushbench.run import hostspeed

needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"),
                                    reason="no sched_setaffinity on this platform")


def test_probe_here_is_a_positive_rate() -> None:
    rate = hostspeed.probe_here(0.005)
    assert math.isfinite(rate) and rate > 0


@needs_affinity
def test_probe_visits_each_cpu_and_restores_affinity() -> None:
    before = os.sched_getaffinity(0)
    cpus = hostspeed.probe_cpus()
    assert cpus and set(cpus) <= before
    assert hostspeed.probe(cpus, 0.003) > 0
    assert os.sched_getaffinity(0) == before


@needs_affinity
def test_pinned_cpus_are_the_ones_probed_and_bad_ones_are_skipped() -> None:
    before = os.sched_getaffinity(0)
    assert hostspeed.probe_cpus([1, 0, 1]) == [0, 1]
    assert hostspeed.probe([10_000], 0.003) is None  # no such CPU: nothing measured
    assert os.sched_getaffinity(0) == before


def test_tracker_gives_a_case_the_mean_of_the_probes_around_it(monkeypatch) -> None:
    readings = iter([10.0, 14.0, 20.0])
    monkeypatch.setattr(hostspeed, "probe", lambda cpus, slice_s: next(readings))
    tracker = hostspeed.Tracker()
    tracker.start()
    assert tracker.around_case() == pytest.approx(12.0)  # (10 + 14) / 2
    assert tracker.around_case() == pytest.approx(17.0)  # (14 + 20) / 2
    assert hostspeed.describe([1])["cpus"] == [1]
    assert hostspeed.describe()["unit"] == "million loops/s"


def test_geomean_ignores_what_is_not_a_rate() -> None:
    assert hostspeed.geomean([4.0, 9.0, 0.0, float("nan")]) == pytest.approx(6.0)
    assert math.isnan(hostspeed.geomean([]))
