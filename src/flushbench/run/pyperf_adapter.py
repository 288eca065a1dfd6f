"""pyperf as flushbench drives it: one Runner per process, one benchmark per case.

Everything here is pyperf's public API but two attributes that no public API reaches, set
only in this module:

* ``Runner._worker_task``: which benchmark of the plan the next worker process runs. pyperf
  counts finished benchmarks; a failed case does not count, so the manager says the index.
* ``Runner._bench_names``: pyperf refuses a benchmark name twice per Runner, and allows one
  Runner per process; a run against several peers measures the same cases once per peer.

:func:`check` fails with a clear message on a pyperf without them; the supported range is
pinned in pyproject.toml (``SUPPORTED``) and held by ``tests/test_pyperf_adapter.py``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import pyperf

from ..errors import SetupError

SUPPORTED = "pyperf>=2.6,<3"
WORKER_MODULE = "flushbench.measure.worker"
PRIVATE = ("_worker_task", "_bench_names")

CmdlineHook = Callable[[list[str], argparse.Namespace], None]

_runner: pyperf.Runner | None = None
_hook: CmdlineHook | None = None


def _add_cmdline_args(cmd: list[str], args: argparse.Namespace) -> None:
    """pyperf calls this for every worker it spawns; it forwards to the current manager."""
    if _hook is not None:
        _hook(cmd, args)


def check(runner: object) -> None:
    """Raise SetupError when this pyperf lacks what flushbench relies on."""
    missing = [name for name in PRIVATE if not hasattr(runner, name)]
    if missing or not hasattr(runner, "bench_time_func"):
        raise SetupError(f"pyperf {getattr(pyperf, '__version__', '?')} is not supported: "
                         f"it lacks {', '.join(missing) or 'bench_time_func'}; install "
                         f"{SUPPORTED} (pip install '{SUPPORTED}')")


def _not_in_manager(loops: int) -> float:
    raise RuntimeError("the timed function runs only in pyperf workers")


class CaseRunner:
    """The process's pyperf Runner, pointed at one manager: ``run_case`` per case."""

    def __init__(self, argv: Sequence[str], cmdline: CmdlineHook) -> None:
        global _runner, _hook
        if _runner is None:  # pyperf refuses a second Runner in one process
            runner = pyperf.Runner(program_args=("-m", WORKER_MODULE),
                                   add_cmdline_args=_add_cmdline_args)
            check(runner)
            runner.parse_args(list(argv))
            _runner = runner
        _hook = cmdline
        _runner._bench_names = set()  # a new run: the same case names may come again
        self.runner = _runner

    @property
    def args(self) -> argparse.Namespace:
        args: argparse.Namespace = self.runner.args  # pyperf has no type information
        return args

    def run_case(self, name: str, index: int, loops: int, inner_loops: int,
                 metadata: dict[str, str]) -> pyperf.Benchmark | None:
        """Spawn the case's worker processes and gather their values (pyperf's manager)."""
        self.runner.args.loops = loops
        self.runner._worker_task = index
        return self.runner.bench_time_func(name, _not_in_manager, inner_loops=inner_loops,
                                           metadata=metadata)
