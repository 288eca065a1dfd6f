"""pyperf is driven through its public API but for two attributes, all in one adapter module;
an incompatible pyperf fails with a clear message, not an AttributeError deep in a run."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from flushbench.errors import SetupError
from flushbench.run import pyperf_adapter


def test_installed_pyperf_is_in_the_supported_range() -> None:
    """pyproject pins pyperf to the range the adapter was written for."""
    major, minor = (int(x) for x in metadata.version("pyperf").split(".")[:2])
    assert major == 2 and minor >= 6, metadata.version("pyperf")
    name, _, spec = pyperf_adapter.SUPPORTED.partition(">")
    wanted = set((">" + spec).split(","))
    pins = [set(r[len(name):].replace(" ", "").split(";")[0].split(","))
            for r in metadata.requires("flushbench") or [] if r.startswith(name)]
    assert wanted in pins, (wanted, pins)


def test_a_pyperf_without_the_attributes_is_refused_clearly() -> None:
    """A Runner lacking what the adapter sets gives a one-line SetupError naming the fix."""

    class OldRunner:
        def bench_time_func(self) -> None: ...

    with pytest.raises(SetupError, match=r"lacks _worker_task, _bench_names; install "
                                         r"pyperf>=2\.6,<3"):
        pyperf_adapter.check(OldRunner())


def test_the_real_runner_passes_the_check() -> None:
    """This pyperf's Runner has what the adapter needs (in a fresh process: one per process)."""
    code = ("import pyperf; from flushbench.run.pyperf_adapter import check; "
            "check(pyperf.Runner()); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
