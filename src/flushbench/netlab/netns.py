"""Network-namespace and process primitives for netlab: run ip/tc, enter a namespace,
make a socket inside one, stop processes and delete namespaces (each failure a SetupError).

Network namespaces are per *thread*: :func:`enter_netns` moves the calling thread, and
:func:`in_netns` runs a function in a short-lived thread inside a namespace, so one process can
hold sockets in several namespaces (a socket stays in the namespace it was created in).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import SetupError
from ..measure.netns import NETNS_DIR as NETNS_DIR  # "as": re-exported for the rest of netlab
from ..measure.netns import ROOT_MSG
from ..measure.netns import enter_netns as enter_netns  # re-exported too

T = TypeVar("T")

def tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for d in ("/usr/sbin", "/sbin", "/usr/bin") if os.access(p := f"{d}/{name}", os.X_OK)),
        None)


def run(*argv: str, ns: str | None = None, check: bool = True, stdin: str | None = None) -> str:
    """Run ip/tc (``-n NS`` for a namespace); failures become one-line SetupErrors."""
    cmd = [tool(argv[0]) or argv[0], *(("-n", ns) if ns else ()), *argv[1:]]
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=30)
    if check and p.returncode:
        detail = (p.stderr.strip().splitlines() or ["no message"])[-1]
        raise SetupError(f"{' '.join(argv)}{' in ' + ns if ns else ''} failed: {detail}")
    return p.stdout


def check_support(tun: bool = False) -> None:
    """Raise SetupError with a one-line reason when this machine cannot host a lab."""
    if os.geteuid() != 0:
        raise SetupError(ROOT_MSG)
    if tool("ip") is None:
        raise SetupError("the emulated transport needs iproute2 ('ip' not found): "
                         "install iproute2 or use --peer")
    if not os.path.exists("/proc/self/ns/net"):
        raise SetupError("this kernel has no network namespaces: use --peer")
    if tun and not os.path.exists("/dev/net/tun"):
        raise SetupError("delay/jitter/loss without netem need /dev/net/tun: "
                         "run 'modprobe tun' or drop delay, jitter and loss from --link")


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """Call *fn* in a short-lived thread inside namespace *name*; the caller stays put."""
    value: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            enter_netns(name)
            value.append(fn())
        except BaseException as exc:  # handed to the caller
            error.append(exc)

    t = threading.Thread(target=target, name=f"netns-{name}", daemon=True)
    t.start()
    t.join()
    if error:
        raise error[0]
    return value[0]


def netns_socket(name: str, family: int = socket.AF_INET,
                 type: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket that lives in namespace *name*, usable from any thread."""
    return in_netns(name, lambda: socket.socket(family, type))


def start_time(pid: int) -> int | None:
    """Process start time (clock ticks since boot), None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] in "ZX" else int(fields[19])


def alive(pid: int | None, start: int | None) -> bool:
    return pid is not None and pid != 0 and start_time(pid) == start


def stop_pids(pids: list[int], grace: float = 2.0) -> list[int]:
    """SIGTERM, then SIGKILL after *grace* s; reap those that are our children. Returns the
    processes still running *grace* s after SIGKILL (a zombie counts as gone)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            pids = [p for p in pids if start_time(p) is not None]
            if not pids:
                return []
            time.sleep(0.01)
    return pids


def kill_pids(pids: list[int]) -> None:
    """:func:`stop_pids`, with a SetupError naming the processes that outlived SIGKILL."""
    if left := stop_pids(pids):
        raise SetupError(f"process(es) {', '.join(map(str, left))} still running after SIGKILL")


def ns_pids(ns: str) -> list[int]:
    """The processes inside namespace *ns* (none when it is gone)."""
    try:
        out = run("ip", "netns", "pids", ns)
    except SetupError:
        if (NETNS_DIR / ns).exists():
            raise
        return []  # deleted meanwhile: nothing runs in it
    return [int(p) for p in out.split() if p.isdigit() and int(p) != os.getpid()]


def stop_ns_pids(ns: str) -> None:
    """Stop every process inside namespace *ns*; SetupError if some outlive SIGKILL."""
    if (NETNS_DIR / ns).exists():
        kill_pids(ns_pids(ns))


def remove_ns(ns: str) -> None:
    """Delete namespace *ns* (its links go with it); fine if it is already gone."""
    if not (NETNS_DIR / ns).exists():
        return
    try:
        run("ip", "netns", "del", ns)
    except SetupError:
        if (NETNS_DIR / ns).exists():  # not a race with another remover: a real failure
            raise
