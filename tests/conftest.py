"""Shared fixtures. Every test is checked for leaks: a child process, a listening socket, a
network namespace, a veth/TUN link or a temporary file it leaves behind fails it.

The test session gets a temporary directory of its own (TMPDIR and ``tempfile.tempdir``
point into it, and child processes inherit TMPDIR), and the leak check watches only that:
other programs on the machine may write to /tmp while the tests run."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest

LINUX = sys.platform == "linux"
LINK_PREFIXES = ("fbt", "fbv")  # netlab's TUN and veth devices
GRACE_S = 5.0


def _stat(pid: str) -> tuple[int, str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0]  # ppid, state


def descendants() -> set[int]:
    """Live (non-zombie) processes below this one."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(entry)
            if info and info[1] != "Z":
                parent_of[int(entry)] = info[0]
    me, out = os.getpid(), set()
    for pid in parent_of:
        p, seen = pid, 0
        while p in parent_of and seen < 64:
            p = parent_of[p]
            seen += 1
            if p == me:
                out.add(pid)
                break
    return out


def listening_sockets() -> set[int]:
    """Inodes of TCP and AF_UNIX sockets in LISTEN state held open by this process."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(int(target[8:-1]))
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and int(cols[9]) in mine:
                listening.add(int(cols[9]))
    try:  # AF_UNIX: Flags has __SO_ACCEPTCON (0x10000) on a listening socket
        lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        lines = []
    for line in lines:
        cols = line.split()
        if len(cols) >= 7 and int(cols[3], 16) & 0x10000 and int(cols[6]) in mine:
            listening.add(int(cols[6]))
    return listening


def namespaces() -> set[str]:
    try:
        return {n for n in os.listdir("/run/netns") if n.startswith("fb-")}
    except OSError:
        return set()


def links() -> set[str]:
    try:
        return {n for n in os.listdir("/sys/class/net") if n.startswith(LINK_PREFIXES)}
    except OSError:
        return set()


def pytest_configure(config: pytest.Config) -> None:
    """Point the session's (and its children's) temporary files at a private folder."""
    if os.environ.get("FLUSHBENCH_TEST_TMP"):  # a nested pytest: keep the outer folder
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        if worker:  # an xdist worker: a folder of its own in it, so that the leak check
            mine = os.path.join(os.environ["FLUSHBENCH_TEST_TMP"], worker)  # sees only its own
            os.makedirs(mine, exist_ok=True)
            os.environ["TMPDIR"] = tempfile.tempdir = mine
        return
    private = tempfile.mkdtemp(prefix="flushbench-tests-")
    os.environ["FLUSHBENCH_TEST_TMP"] = os.environ["TMPDIR"] = private
    tempfile.tempdir = private
    MADE.append(private)


MADE: list[str] = []  # the folder this process made (not an xdist worker's inherited one)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the folder, in the process that made it only: pytest-xdist workers inherit it,
    and the first worker to finish must not pull it from under the others."""
    for private in MADE:
        import shutil

        shutil.rmtree(private, ignore_errors=True)


def temp_entries() -> set[str]:
    """What is in the session's own temporary folder (pytest's tmp_path lives elsewhere)."""
    return {n for n in os.listdir(tempfile.gettempdir()) if not n.startswith("pytest-of-")}


def snapshot() -> dict[str, set]:
    return {"child processes": descendants(), "listening sockets": listening_sockets(),
            "network namespaces": namespaces(), "links": links(),
            "temporary files": temp_entries()}


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Fail a test that leaves processes, listeners, namespaces, links or temp files."""
    if not LINUX:
        yield
        return
    before = snapshot()
    yield
    deadline = time.monotonic() + GRACE_S
    while True:
        after = snapshot()
        leaked = {k: after[k] - before[k] for k in after if after[k] - before[k]}
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for pid in leaked.get("child processes", ()):  # do not let one leak fail later tests
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if leaked:
        pytest.fail(f"{request.node.nodeid} left behind: " + "; ".join(
            f"{k}: {sorted(v)[:5]}" for k, v in leaked.items()), pytrace=False)
