"""Child processes: the peer started and waited for, and every child stopped and reaped."""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import subprocess
import sys
import time
from typing import Any

from .errors import SetupError
from .measure import sink as sinks
from .measure import unixsock
from .measure.peer import TLS_CERT_ENV
from .measure.protocol import new_ticket

MAX_POLL_MS = 2**31 - 1  # poll()'s limit: a longer timeout waits in steps
REAP_S = 5.0  # after SIGKILL a process ends within milliseconds unless something holds it


def wait(proc: subprocess.Popen[Any], timeout: float) -> int:
    """``proc.wait(timeout)`` that returns as the child exits: Popen's own sleeps between
    polls (doubling to 50 ms) left a visit's worker reaped 30-40 ms late, 110 times a
    quick run. On Linux a pidfd turns readable at the exit; elsewhere Popen's wait.
    TimeoutExpired when it has not exited in ``timeout`` seconds."""
    if proc.returncode is not None:
        return proc.returncode
    if not math.isfinite(timeout):
        return proc.wait(timeout=timeout)
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux 5.3+ / Python 3.9+ (or already reaped)
        return proc.wait(timeout=timeout)
    try:
        poller = select.poll()  # not select(): a descriptor past 1023 is fine here
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while not poller.poll(min(max(0, math.ceil((deadline - time.monotonic()) * 1000)),
                                  MAX_POLL_MS)):
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(fd)
    return proc.wait()


def stop(proc: subprocess.Popen[Any], grace: float = 5.0, reap: float = REAP_S) -> int:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL and wait at most ``reap`` more;
    return its exit code. Never an unbounded wait: SetupError if it is still not reaped
    (a stopped debugger tracing it can hold a killed process)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(timeout=reap)
            except subprocess.TimeoutExpired:
                raise SetupError(f"killed, but not reaped {reap:g} s after SIGKILL (pid "
                                 f"{proc.pid}): is a stopped debugger tracing it?") from None
    return proc.returncode


class PeerProcess:
    """A peer in a child process: started on port 0, ready when it says so, always reaped.

    ``ticket`` (a fresh one unless given) is what every data hello must present; the peer
    gets it as the first line on its stdin, never in its argv (any local user reads those).
    The stdin pipe then stays open: the peer exits when it closes.

    ``unix``: the peer also listens on an AF_UNIX socket (:attr:`unix_path`) in a private
    directory made here (mode 0700) and removed by :meth:`close`, also after a SIGKILL.
    ``tls_cert``: the peer serves TLS with this certificate and key (see run/tlsca.py).
    ``sink``: how it takes in one-way data, "discard" or "copy" (measure/sink.py).
    """

    def __init__(self, bind: str = "127.0.0.1", cpu: int | None = None,
                 prefix: list[str] | None = None, ready_timeout: float = 20.0, *,
                 max_seconds: float | None = None, max_bytes: int | None = None,
                 allow_from: str | None = None, ticket: str | None = None,
                 unix: bool = False, tls_cert: str | None = None,
                 sink: str = sinks.DEFAULT) -> None:
        argv = [*(prefix or []), sys.executable, "-m", "flushbench.measure.peer", "--bind", bind,
                "--sink", sink]
        self.unix_dir = unixsock.private_dir() if unix else None
        self.unix_path: str | None = None
        if self.unix_dir is not None:
            try:
                self.unix_path = unixsock.socket_path(self.unix_dir)
            except BaseException:
                unixsock.remove_dir(self.unix_dir)
                raise
            argv += ["--unix", self.unix_path]
        if cpu is not None:
            argv += ["--cpu", str(cpu)]
        if max_seconds is not None:
            argv += ["--max-seconds", repr(float(max_seconds))]
        if max_bytes is not None:
            argv += ["--max-bytes", str(int(max_bytes))]
        if allow_from is not None:
            argv += ["--allow-from", allow_from]
        self.ticket = ticket or new_ticket()
        try:
            env = child_env()
            if tls_cert:  # the path of its certificate and key: not in argv (see peer.py)
                env[TLS_CERT_ENV] = tls_cert
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         env=env)
        except BaseException:
            if self.unix_dir is not None:
                unixsock.remove_dir(self.unix_dir)
            raise
        try:
            assert self.proc.stdin is not None
            with contextlib.suppress(OSError):  # a peer that died at once: _read_ready says why
                self.proc.stdin.write(f"{self.ticket}\n".encode())
                self.proc.stdin.flush()
            ready = self._read_ready(ready_timeout)
        except BaseException:
            self.close()
            raise
        self.host: str = bind
        self.port: int = ready["port"]
        self.meta: dict[str, Any] = ready.get("meta", {})
        self.sink: str = ready.get("sink", sink)

    def _read_ready(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        readable, _, _ = select.select([fd], [], [], timeout)
        line = self.proc.stdout.readline() if readable else b""
        try:
            ready: dict[str, Any] = json.loads(line)
        except ValueError:
            ready = {}
        if not ready.get("ready"):
            why = ready.get("error") or (f"no readiness line within {timeout:.0f} s"
                                         if not line else f"unexpected output {line[:80]!r}")
            raise SetupError(f"the peer did not start: {why}")
        return ready

    @property
    def addr(self) -> tuple[str, int]:
        return self.host, self.port

    def close(self) -> None:
        proc = self.proc
        try:
            stop(proc)
        finally:
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    if stream:
                        stream.close()
            if self.unix_dir is not None:  # ours, not the peer's: it may have been killed
                unixsock.remove_dir(self.unix_dir)

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def child_env() -> dict[str, str]:
    """Children must import this very flushbench, installed or from a source tree."""
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = env.get("PYTHONPATH", "").split(os.pathsep) if env.get("PYTHONPATH") else []
    if src not in paths:
        env["PYTHONPATH"] = os.pathsep.join([src, *paths])
    return env
