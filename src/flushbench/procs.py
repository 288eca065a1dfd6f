"""Child processes: stopped politely, then firmly, and always reaped."""

from __future__ import annotations

import subprocess


def stop(proc: subprocess.Popen, grace: float = 5.0) -> int:  # type: ignore[type-arg]
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; reap it and return its code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
