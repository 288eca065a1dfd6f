"""What the bench scripts share: a work directory, the load line, and one ``flushbench run``
as a subprocess. Not a benchmark itself."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from flushbench.errors import FlushbenchError

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 3600.0  # one suite run, at most (the full quick suite takes minutes)


def cli(main: Callable[[], int], name: str) -> int:
    """``main()``, with flushbench's own errors (a stored run that does not load, say) as
    one line on stderr and exit code 2, as the flushbench command gives them."""
    try:
        return main()
    except FlushbenchError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2


def load_line() -> str:
    """The host's load averages: how busy the machine was around a measurement."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


@contextlib.contextmanager
def workdir(out: Path | None, prefix: str) -> Iterator[Path]:
    """``out`` (created, kept), or a temporary directory removed afterwards."""
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        yield Path(out)
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            yield Path(tmp)


def run_suite(suite: str, out: Path, extra: Sequence[str] = (),
              timeout: float = RUN_TIMEOUT_S, env: Mapping[str, str] | None = None
              ) -> tuple[float, int, Path]:
    """``flushbench run --suite S --out OUT [extra]``: wall seconds, exit code, log file.

    ``env``: the run's environment (default: this process's). A run that outlives
    ``timeout`` is killed (its process group: the peer and the visit workers too) and
    reported with exit code 124.
    """
    cmd = [sys.executable, "-m", "flushbench", "run", "--suite", suite, "--out", str(out),
           *extra]
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True, env=None if env is None else dict(env))
        # a timer, not wait(timeout): that polls, adding up to 50 ms to the wall time
        timer = threading.Timer(timeout, _kill_group, (proc.pid, signal.SIGKILL))
        timer.start()
        try:
            code = proc.wait()
        except BaseException:  # Ctrl-C: stop the run and its workers, then pass it on
            _kill_group(proc.pid, signal.SIGTERM)
            proc.wait()
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    if code == -signal.SIGKILL and wall >= timeout:
        code = 124
    return wall, code, log


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def log_tail(log: Path, chars: int = 2000) -> str:
    """The end of a run's log, for a failed run."""
    return log.read_text(errors="replace")[-chars:]
