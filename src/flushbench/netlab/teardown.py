"""Teardown that goes on past a failed step: every step is tried, each failure is one line.

A lab's teardown is a list of steps (stop a process, stop what runs in a namespace, delete
the namespace, drop the record). :class:`Steps` runs each one, catches any failure — a
``TimeoutExpired``, a SetupError from ``ip``, an OSError — and notes it as
``"fb-3: delete namespace fb-3-cli: <why>"``; the caller then raises :class:`TeardownError`
with all of them. The CLI prints it as one line per failure and exits 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from ..errors import SetupError
from .netns import remove_ns, stop_ns_pids


class TeardownError(SetupError):
    """Some teardown steps failed; the labs concerned keep their records."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = list(failures)
        labs = sorted({line.split(": ", 1)[0] for line in self.failures})
        name = labs[0] if len(labs) == 1 else "NAME"
        super().__init__(
            f"teardown of {', '.join(labs)} failed at {len(self.failures)} step(s); "
            f"{'its record is' if len(labs) == 1 else 'their records are'} kept, and "
            f"'flushbench netlab down {name}' tries again:\n"
            + "\n".join(f"  {line}" for line in self.failures))


def one_line(exc: BaseException) -> str:
    """An exception as one line of text (whitespace, newlines included, folded)."""
    if isinstance(exc, subprocess.TimeoutExpired):
        cmd = " ".join(map(str, exc.cmd)) if isinstance(exc.cmd, list) else str(exc.cmd)
        return f"'{cmd}' timed out after {exc.timeout:.2g} s"
    return " ".join(str(exc).split()) or type(exc).__name__


class Steps:
    """Runs teardown steps of lab *lab*, going on past failures; ``failures`` lists them."""

    def __init__(self, lab: str) -> None:
        self.lab = lab
        self.failures: list[str] = []

    def __call__(self, what: str, fn: Callable[..., object], *args: Any, **kw: Any) -> bool:
        try:
            fn(*args, **kw)
        except Exception as exc:  # every failure is reported, none stops the teardown
            self.failures.append(f"{self.lab}: {what}: {one_line(exc)}")
            return False
        return True


def remove_namespaces(steps: Steps, names: list[str]) -> None:
    """Stop what runs in each namespace, then delete it (its links go with it)."""
    for ns in names:
        steps(f"stop the processes in {ns}", stop_ns_pids, ns)
        steps(f"delete namespace {ns}", remove_ns, ns)


def program(proc: subprocess.Popen[Any]) -> str:
    """The program a lab process runs (without ``ip netns exec NS``)."""
    args = [str(a) for a in proc.args] if isinstance(proc.args, list) else [str(proc.args)]
    return os.path.basename(args[4] if len(args) > 4 and args[1:3] == ["netns", "exec"]
                            else args[0])


def report(exc: BaseException) -> None:
    """Print a teardown failure that cannot be raised (another exception is on its way out,
    or the interpreter is exiting)."""
    print(f"flushbench: warning: {exc}", file=sys.stderr, flush=True)
