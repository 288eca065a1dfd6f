"""netlab ownership and teardown (issue 12, finding 10), with real failures, no mocks:

- a lab made by ``netlab up`` is persistent: no clean-up removes it, only ``netlab down``;
- clean-up touches only labs with a record: a foreign ``fb-`` namespace survives;
- teardown goes on past a failed step — a child that a stopped debugger keeps from being
  reaped (the wait times out), a namespace whose file is busy — tries every step, reports one
  line per failure (exit 2 from the CLI) and keeps the record so a later clean-up retries.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import test_netlab
from flushbench import netlab
from flushbench.errors import SetupError, UsageError
from flushbench.netlab import Netlab, TeardownError, netns
from flushbench.netlab.teardown import Steps
from flushbench.procs import stop
from test_netlab import _assert_gone, _net_inode
from test_run import flushbench_cli

root, owner = test_netlab.root, test_netlab.owner  # fixtures
TAG = os.getpid() % 100000  # lab and namespace names of this test session

# ------------------------------------------------------------------------ helpers

_TRACER = r"""
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
if libc.ptrace(0x4206, int(sys.argv[1]), None, None) != 0:  # PTRACE_SEIZE
    print("cannot trace:", os.strerror(ctypes.get_errno()), flush=True)
    sys.exit(1)
print("attached", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)  # a debugger stopped by Ctrl-Z: it reaps nothing
"""


@contextlib.contextmanager
def stopped_tracer(pid: int) -> Iterator[subprocess.Popen[str]]:
    """A process that ptrace-attaches to *pid* and then stops: once *pid* is killed, only the
    tracer may reap it, so its parent's wait() blocks. Killing the tracer releases it."""
    tracer = subprocess.Popen([sys.executable, "-c", _TRACER, str(pid)],
                              stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, tracer.kill)  # an unbounded wait must not hang the suite
    try:
        assert tracer.stdout is not None
        line = tracer.stdout.readline().strip()
        if line != "attached":
            pytest.skip(f"ptrace is not permitted here ({line or 'no answer'})")
        deadline = time.monotonic() + 10
        while Path(f"/proc/{tracer.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
            assert time.monotonic() < deadline, "the tracer did not stop"
            time.sleep(0.01)
        watchdog.start()
        yield tracer
    finally:
        watchdog.cancel()
        tracer.kill()
        tracer.wait(10)
        if tracer.stdout:
            tracer.stdout.close()


def _mounts(path: Path) -> int:
    return sum(line.split()[4] == str(path)
               for line in Path("/proc/self/mountinfo").read_text().splitlines())


@contextlib.contextmanager
def busy(ns: str) -> Iterator[None]:
    """Bind-mount a namespace file onto itself: 'ip netns del' then unmounts the top mount
    but cannot unlink the file (EBUSY); a second attempt succeeds."""
    path = netns.NETNS_DIR / ns
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True, timeout=30)
    try:
        yield
    finally:
        while _mounts(path) > 1:
            subprocess.run(["umount", "-l", str(path)], check=True, timeout=30)


@pytest.fixture
def foreign() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A namespace named like a lab's, made by someone else, with a process inside."""
    name = f"fb-f{TAG}-cli"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    proc = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "120"])
    try:
        yield name, proc
    finally:
        proc.kill()
        proc.wait(10)
        subprocess.run(["ip", "netns", "del", name], timeout=30)


def _record(name: str) -> dict:
    return next(s for s in netlab.list_labs() if s["name"] == name)


def _up(name: str, link: str) -> dict:
    """`flushbench netlab up` in its own (short-lived) process; the lab's record."""
    out = flushbench_cli("netlab", "up", "--link", link, "--name", name, timeout=60)
    assert out.returncode == 0, out.stderr
    return _record(f"fb-{name}")


# ------------------------------------------------------------- anywhere (no root)


def test_steps_go_on_past_failures() -> None:
    """A step that times out (a real TimeoutExpired) or fails does not stop the next ones;
    each failure is one line, and TeardownError prints them one per line."""
    steps, done = Steps("fb-x"), []
    steps("wait for sleep", subprocess.run, ["sleep", "5"], timeout=0.2)
    steps("close a file", os.close, 10**6)
    steps("last step", done.append, 1)
    assert done == [1] and len(steps.failures) == 2
    timeout, bad_fd = steps.failures
    assert timeout == "fb-x: wait for sleep: 'sleep 5' timed out after 0.2 s"
    assert bad_fd == "fb-x: close a file: [Errno 9] Bad file descriptor"
    lines = str(TeardownError(steps.failures)).splitlines()
    assert len(lines) == 3 and "fb-x" in lines[0] and "netlab down fb-x" in lines[0]
    assert lines[1:] == [f"  {f}" for f in steps.failures]


def test_stop_is_bounded() -> None:
    """A killed child that a stopped debugger keeps from being reaped: procs.stop gives up
    within seconds with a SetupError, where an unbounded wait() would hang."""
    victim = subprocess.Popen(["sleep", "60"])
    try:
        with stopped_tracer(victim.pid):
            t0 = time.monotonic()
            with pytest.raises(SetupError, match="not reaped .* after SIGKILL"):
                stop(victim, grace=0.5, reap=1.0)
            assert time.monotonic() - t0 < 10
    finally:
        victim.kill()
        assert victim.wait(10) == -9


# ----------------------------------------------------------------- real labs (root)


@pytest.mark.root
def test_up_lab_without_relay_is_never_stale(root: None) -> None:
    """A veth + tbf lab from `netlab up` (no relay, its maker has exited) survives
    cleanup_stale() and the start of another lab; `netlab down --all` removes it."""
    name = f"u{TAG}"
    state = _up(name, "rate=100mbit")
    try:
        names = [state["client_ns"], state["server_ns"]]
        inodes = [_net_inode(n) for n in names]
        assert netns.start_time(state["owner_pid"]) is None  # `netlab up` has exited
        assert f"fb-{name}" not in Netlab.cleanup_stale()
        assert [_net_inode(n) for n in names] == inodes
        with Netlab("none") as other:  # starting a lab cleans up stale ones first
            assert other.name != f"fb-{name}"
        assert [_net_inode(n) for n in names] == inodes
        state = _record(f"fb-{name}")
        assert state["persistent"] and not state["stale"] and state["relay_pid"] is None
        status = flushbench_cli("netlab", "status", timeout=60).stdout
        assert f"fb-{name} " in status and "persistent" in status
        down = flushbench_cli("netlab", "down", "--all", timeout=60)
        assert down.returncode == 0, down.stderr
        assert f"removed fb-{name}" in down.stdout
        _assert_gone(names, inodes, [])
    finally:
        netlab.destroy(name)


@pytest.mark.root
def test_cleanup_never_touches_a_namespace_without_a_record(
        root: None, foreign: tuple[str, subprocess.Popen[bytes]]) -> None:
    """An fb- namespace made by someone else, and the process in it, survive cleanup_stale(),
    a lab's start and `netlab down --all`; a lab may not take its name."""
    ns, proc = foreign
    inode = _net_inode(ns)
    Netlab.cleanup_stale()
    assert _net_inode(ns) == inode and proc.poll() is None
    with Netlab("none"):
        pass
    down = flushbench_cli("netlab", "down", "--all", timeout=60)
    assert down.returncode == 0, down.stderr
    assert _net_inode(ns) == inode and proc.poll() is None
    with pytest.raises(UsageError, match=f"namespace {ns} exists but is no flushbench lab"):
        Netlab("none", ns.removeprefix("fb-").removesuffix("-cli")).start()
    assert _net_inode(ns) == inode and proc.poll() is None
    status = flushbench_cli("netlab", "status", timeout=60).stdout
    assert f"not flushbench labs (no record, never touched): {ns}" in status


@pytest.mark.root
def test_down_all_leaves_labs_in_use(root: None, owner: tuple) -> None:
    """`netlab down --all` removes persistent labs but leaves a lab whose owner is running
    and says so; `netlab down NAME` removes even that one."""
    proc, info = owner
    name = f"a{TAG}"
    state = _up(name, "none")
    try:
        lab = info["ns"][0].rsplit("-", 1)[0]
        down = flushbench_cli("netlab", "down", "--all", timeout=60)
        assert down.returncode == 0, down.stderr
        assert f"removed fb-{name}" in down.stdout
        assert f"left {lab}: in use" in down.stdout
        assert [_net_inode(n) for n in info["ns"]] == info["inodes"] and proc.poll() is None
        assert not (netns.NETNS_DIR / state["client_ns"]).exists()
        assert flushbench_cli("netlab", "down", lab, timeout=60).returncode == 0
        _assert_gone(info["ns"], info["inodes"], [info["relay"]])
    finally:
        netlab.destroy(name)


@pytest.mark.root
def test_teardown_goes_on_past_a_process_that_is_not_reaped(root: None) -> None:
    """A lab process held by a stopped debugger cannot be reaped: teardown gives up on it
    in seconds (no hang), still stops the relay and deletes both namespaces, raises one line
    for the failure and keeps the record, stale; after the debugger goes, a clean-up
    removes the record."""
    with contextlib.ExitStack() as stack:
        lab = stack.enter_context(Netlab("delay=1ms"))
        names, relay = [lab.client_ns, lab.server_ns], lab.relay_pid
        inodes = [_net_inode(n) for n in names]
        sleeper = lab.popen("server", ["sleep", "60"])
        time.sleep(0.05)  # let `ip netns exec` switch namespace and exec
        stack.enter_context(stopped_tracer(sleeper.pid))
        t0 = time.monotonic()
        with pytest.raises(TeardownError) as info:
            lab.close()
        elapsed = time.monotonic() - t0
        assert elapsed < 30, elapsed
        lines = str(info.value).splitlines()
        assert len(lines) == 2 and lines[0].startswith(f"teardown of {lab.name} failed")
        assert lines[1].startswith(f"  {lab.name}: stop process {sleeper.pid} (sleep): killed,")
        assert "not reaped" in lines[1]
        assert not [n for n in names if (netns.NETNS_DIR / n).exists()]
        assert relay and netns.start_time(relay) is None
        record = _record(lab.name)
        assert record["stale"] and record["failed"] == info.value.failures
    assert sleeper.wait(10) == -9  # the debugger is gone: the sleeper is reaped
    assert lab.name in Netlab.cleanup_stale()
    _assert_gone(names, inodes, [relay, sleeper.pid])


@pytest.mark.root
def test_teardown_goes_on_past_a_busy_namespace(root: None) -> None:
    """When the client namespace cannot be deleted, teardown still stops every process,
    the relay and the server namespace, raises one line naming the namespace and the cause,
    and keeps the record; the next clean-up retries and removes the rest."""
    with contextlib.ExitStack() as stack:
        lab = stack.enter_context(Netlab("delay=1ms"))
        names, relay = [lab.client_ns, lab.server_ns], lab.relay_pid
        inodes = [_net_inode(n) for n in names]
        sleeper = lab.popen("client", ["sleep", "60"])
        stack.enter_context(busy(lab.client_ns))
        with pytest.raises(TeardownError) as info:
            lab.close()
        assert info.value.failures == [
            f"{lab.name}: delete namespace {lab.client_ns}: ip netns del {lab.client_ns} "
            f'failed: Cannot remove namespace file "/run/netns/{lab.client_ns}": '
            "Device or resource busy"]
        assert sleeper.poll() is not None and relay and netns.start_time(relay) is None
        assert not (netns.NETNS_DIR / lab.server_ns).exists()
        assert _record(lab.name)["stale"]
        status = flushbench_cli("netlab", "status", timeout=60).stdout
        assert f"  teardown failed: {info.value.failures[0]}" in status
        assert lab.name in Netlab.cleanup_stale()
    _assert_gone(names, inodes, [relay])


@pytest.mark.root
def test_cli_down_reports_each_failure(root: None) -> None:
    """`netlab down NAME` with both namespaces busy: exit 2, one line per failure, no
    traceback, the lab still listed with its failures; a second `down` removes it."""
    name = f"d{TAG}"
    state = _up(name, "none")
    names = [state["client_ns"], state["server_ns"]]
    inodes = [_net_inode(n) for n in names]
    try:
        with busy(names[0]), busy(names[1]):
            down = flushbench_cli("netlab", "down", f"fb-{name}", timeout=60)
            assert down.returncode == 2, down.stderr
            lines = down.stderr.splitlines()
            assert lines[0].startswith(f"flushbench: error: teardown of fb-{name} failed at "
                                       "2 step(s)"), down.stderr
            assert [line.split(": Cannot")[0] for line in lines[1:]] == [
                f"  fb-{name}: delete namespace {ns}: ip netns del {ns} failed" for ns in names]
            assert "Traceback" not in down.stderr
            status = flushbench_cli("netlab", "status", timeout=60).stdout
            assert status.count(f"  teardown failed: fb-{name}: delete namespace") == 2
            again = flushbench_cli("netlab", "down", f"fb-{name}", timeout=60)
            assert again.returncode == 0, again.stderr
        _assert_gone(names, inodes, [])
    finally:
        netlab.destroy(name)


@pytest.mark.root
def test_namespace_deleted_behind_the_labs_back(root: None) -> None:
    """A namespace someone else deleted is not a failure: teardown removes the rest."""
    with Netlab("delay=1ms") as lab:
        names, relay = [lab.client_ns, lab.server_ns], lab.relay_pid
        inodes = [_net_inode(n) for n in names]
        subprocess.run(["ip", "netns", "del", lab.client_ns], check=True, timeout=30)
    _assert_gone(names, inodes, [relay])
