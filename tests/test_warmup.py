"""A trial's warm-up and the wait for its worker: no time spent that measures nothing.

The warm-up runs untimed values of 1, 2, 4 ... operations for at most WARMUP_TIME; an
operation as long as a delayed ACK with no room for another ends it: a trap case (each
operation waits about 40 ms for the peer's ACK) stops after its first operation instead of
waiting a second time, while a fast case whose first operation stalled goes on.
``procs.wait`` returns a worker's exit code as it exits (a pidfd on Linux), not at Popen's
next poll.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from flushbench import procs
from flushbench.case import Case
from flushbench.measure.session import WARMUP_OPS, WARMUP_TIME, Session, warm_up
from flushbench.measure.visit import slow_op_s
from flushbench.procs import PeerProcess


class Sleeper:
    """Operations that take ``op_s`` each, in real time (the warm-up reads the clock)."""

    def __init__(self, op_s: float) -> None:
        self.op_s, self.est_op_s, self.values = op_s, 0.0, []  # type: list[int]

    def run_value(self, n: int, record: bool = True) -> int:
        assert not record
        time.sleep(self.op_s * n)
        self.values.append(n)
        self.est_op_s = self.op_s
        return int(self.op_s * n * 1e9)


def test_a_slow_operation_ends_the_warm_up_when_the_next_would_not_fit() -> None:
    """42 ms per operation with 50 ms to spend: one operation, not a second past the time."""
    slow = Sleeper(0.042)
    warm_up(slow, 1000)
    assert slow.values == [1]


class StallFirst(Sleeper):
    """A fast case whose first operation stalls (a busy host), shorter than a delayed ACK."""

    def run_value(self, n: int, record: bool = True) -> int:
        self.op_s = 0.030 if not self.values else 0.0001
        return super().run_value(n, record)


def test_one_stalled_operation_does_not_end_the_warm_up() -> None:
    """30 ms, then 0.1 ms operations: the warm-up goes on and leaves the fast op time, so the
    case is not taken for a slow (trap) one."""
    stalled = StallFirst(0.0)
    warm_up(stalled, 1000)
    assert len(stalled.values) > 2 and stalled.est_op_s < 0.001


def test_fast_operations_warm_up_in_doubling_values_up_to_the_count() -> None:
    """Values of 1, 2, 4 ... up to WARMUP_OPS operations, none of them past ``max_ops``, and
    never a last value shorter than the one before it."""
    fast = Sleeper(0.0)
    warm_up(fast, 1000)
    assert fast.values == [1, 2, 4, 8, 16, 32]  # 63: the 64th alone would be a value of 1
    few = Sleeper(0.0)
    warm_up(few, 3)
    assert max(few.values) <= 3 and few.values[-1] == 3
    assert WARMUP_OPS - 3 < sum(few.values) <= WARMUP_OPS


class StallAlone(Sleeper):
    """Fast operations, except that one run alone in its value stalls 15 ms (what a busy
    host does to whichever operation it catches, told apart here by the value's size)."""

    def run_value(self, n: int, record: bool = True) -> int:
        self.op_s = 0.015 if n == 1 and self.values else 0.00002
        return super().run_value(n, record)


def test_a_stalled_lone_last_operation_cannot_make_a_fast_case_slow() -> None:
    """The warm-up's last value sets the op time a case is judged slow by: it must hold
    many operations, not one that a host stall may catch."""
    stalled = StallAlone(0.0)
    warm_up(stalled, 1000)
    assert stalled.values[-1] >= 16
    assert stalled.est_op_s < slow_op_s(0.002)


def test_the_warm_up_stops_by_time_as_well() -> None:
    """Operations of 5 ms: the values stop within the time (plus the value that crossed it)."""
    mid = Sleeper(0.005)
    spent = warm_up(mid, 1000)
    assert sum(mid.values) < WARMUP_OPS and mid.values[:2] == [1, 2]
    assert spent >= WARMUP_TIME * 0.5


class CountingSession(Session):
    """A real session that also counts the operations its warm-up ran."""

    warm_ops = 0

    def run_value(self, n: int, record: bool = True) -> int:
        if not record:
            self.warm_ops += n
        return super().run_value(n, record)


@pytest.mark.parametrize("case", [Case("wwr", "sendall", 64), Case("rr", "sendall", 16384)],
                         ids=lambda c: c.id)
def test_a_trap_case_warms_up_with_one_operation(case: Case) -> None:
    """Against a real peer: write-write-read and a 16 KiB request wait for a delayed ACK from
    their first operation; one is enough to know the case as slow."""
    with PeerProcess() as peer:
        session = CountingSession.connect(case, peer.addr, 10.0, peer.ticket, cc="cubic")
        try:
            assert session.est_op_s > slow_op_s(0.002)
            assert session.warm_ops == 1
            session.run_value(1)  # and the connection still measures
        finally:
            session.close()


def test_a_fast_case_still_warms_up_with_its_operations() -> None:
    """rr 64 B with TCP_NODELAY: dozens of operations fit the time, so the warm-up leaves
    quick-ACK mode as before (all 64 unless the host stalls for most of the 50 ms)."""
    with PeerProcess() as peer:
        session = CountingSession.connect(Case("rr", "sendall", 64, nodelay=True), peer.addr,
                                          10.0, peer.ticket)
        try:
            assert session.warm_ops > 8
        finally:
            session.close()


def test_wait_returns_the_exit_code() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    try:
        assert procs.wait(proc, 30.0) == 3
        assert procs.wait(proc, 0.0) == 3  # reaped already: the code again
    finally:
        procs.stop(proc)


@pytest.mark.parametrize("timeout", [1e10, float("inf")])
def test_wait_takes_any_timeout(timeout: float) -> None:
    """A timeout past poll()'s 2^31 ms (a suite's timeout has no upper bound) or none."""
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    try:
        assert procs.wait(proc, timeout) == 4
    finally:
        procs.stop(proc)


def test_wait_raises_timeout_and_leaves_the_child_to_stop() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            procs.wait(proc, 0.2)
        assert proc.poll() is None
    finally:
        assert procs.stop(proc) != 0
