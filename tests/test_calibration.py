"""Loop calibration: one stalled value, or one slow round, must not set a case's count.

A value times its operations and a fixed cost around them, so a count frozen too small
makes a case look slower for that alone. Before, the calibration trial froze its last
value's size (one stall before it: a handful of operations) and every case froze its own
count; now a trial reports the count at its values' median op time, a case keeps the larger
of two trials, and a cell's cases in slots share one count (run/loopcounts.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from flushbench import testing
from flushbench.case import Case
from flushbench.measure import strategies
from flushbench.measure.peer import _serve_connection
from flushbench.measure.session import ValueStats, calibrated_ops
from flushbench.measure.strategies import Buffer, SendallStrategy
from flushbench.measure.visit import slow_op_s
from flushbench.run.loopcounts import LoopCounts

STALL_S = 0.08  # one stalled value: about ten values' worth of time


class StallsOnRequest(SendallStrategy):
    """sendall that sleeps once, before the next message after ``stall`` is set."""

    name = "test_stalls_on_request"
    summary = "sendall with one stall (tests/test_calibration.py)"
    stall = False

    def send_message(self, parts: Sequence[Buffer]) -> None:
        if self.stall:
            self.stall = False
            time.sleep(STALL_S)
        super().send_message(parts)


@pytest.fixture
def stalls() -> Iterator[None]:
    strategies.register_strategy(StallsOnRequest)
    try:
        yield
    finally:
        strategies.REGISTRY.pop(StallsOnRequest.name, None)


def value(ops: int, per_op_s: float) -> ValueStats:
    return ValueStats(ops=ops, msgs=ops, bytes=ops * 64, reply_bytes=0,
                      elapsed_ns=int(ops * per_op_s * 1e9), cpu_client_ns=0, cpu_peer_ns=0,
                      calls=ops, segs=None, retrans=None)


def test_one_stalled_value_does_not_set_the_frozen_count(stalls: None) -> None:
    """A calibration trial over a real loopback connection, its values bounded by 10 ms as
    the visit bounds them; the last value but one stalls. Sized by the value before it, the
    last value runs a handful of operations; the count to freeze is the median's."""
    from flushbench.measure.session import Session

    case = Case(workload="stream", strategy=StallsOnRequest.name, msg_size=1024, ops=20000)
    a, b = testing.socket_pair("tcp")
    peer = threading.Thread(target=_serve_connection, args=(b,), daemon=True)
    peer.start()
    try:
        session = Session(case, a, io_timeout=10.0)  # says hello, warms up
        try:
            strategy = session.strategy
            assert isinstance(strategy, StallsOnRequest)
            for i in range(8):
                strategy.stall = i == 6
                session.run_value(session.ops_for(case.op_count, 0.01))
            sizes = [v.ops for v in session.values]
            assert sizes[-1] * 5 < sorted(sizes)[4], sizes  # what was frozen before
            frozen = calibrated_ops(session.values, case.op_count, 0.01)
            assert frozen > sizes[-1] * 5 and frozen > 10, (frozen, sizes)
        finally:
            session.close()
        peer.join(10.0)
        assert not peer.is_alive()
    finally:
        a.close()
        b.close()


def test_calibrated_ops_takes_the_median_op_time() -> None:
    fast = [value(1000, 10e-6) for _ in range(7)]
    assert calibrated_ops(fast, 20000, 0.01) == 1000
    # one stalled value (a hundred times slower per op) moves nothing
    assert calibrated_ops([*fast, value(5, 1e-3)], 20000, 0.01) == 1000
    # ... where the last value's size would have frozen 5 operations per value
    assert calibrated_ops([value(400, 20e-6), value(600, 30e-6)], 20000, 0.01) == 400


def test_calibrated_ops_counts_per_connection() -> None:
    """A driver case's value of n runs n operations on each of its connections and counts
    n * conns: 16 connections x 10 operations in 10 ms is 1 ms per n, so 10 fit 10 ms."""
    many = [value(160, 10e-3 / 160) for _ in range(3)]
    assert calibrated_ops(many, 20000, 0.01, conns=16) == 10
    assert calibrated_ops(many, 20000, 0.01) == 160  # read as one connection's operations


def test_calibrated_ops_bounds() -> None:
    assert calibrated_ops([], 20000, 0.01) == 0  # nothing measured: the caller keeps its n
    assert calibrated_ops([value(10, 1e-6)], 500, 0.01) == 500  # the case's op count caps it
    assert calibrated_ops([value(1, 0.05)], 500, 0.01) == 1  # a 50 ms op: one per value
    assert calibrated_ops([value(0, 0.0), value(10, 1e-3)], 500, 0.01) == 10  # empty skipped


# -- one count per cell, frozen after the calibration trials (run/loopcounts.py) ------------

def stream(strategy: str, twin: bool = False, nodelay: bool = False) -> Case:
    return Case(workload="stream", strategy=strategy, msg_size=1024, nodelay=nodelay,
                twin=twin)


def record(loops: int, slotted: bool = True, error: str = "") -> dict[str, object]:
    return {"loops": loops, "slotted": slotted, "error": error}


def test_the_cell_shares_one_count_after_two_trials() -> None:
    cell = [stream("sendall"), stream("makefile"), stream("send"), stream("sendall", twin=True)]
    counts = LoopCounts({}, rounds=10)
    counts.add(cell, [record(500), record(480), record(20), record(500)])
    assert counts.frozen == {}  # one trial is not enough: the round may have been slow
    counts.add(cell, [record(600), record(30), record(700), record(600)])
    # each case's best of two (600, 480, 700), then the cell's median for all of them
    assert set(counts.frozen.values()) == {600} and len(counts.frozen) == 4
    counts.add(cell, [record(5), record(5), record(5), record(5)])  # frozen: stays
    assert set(counts.frozen.values()) == {600}


def test_a_slow_case_keeps_its_own_count_and_a_late_one_joins_the_cell() -> None:
    trap, fast, late = stream("sendall"), stream("makefile"), stream("send")
    counts = LoopCounts({}, rounds=10)
    for _ in range(2):
        counts.add([trap, fast, late], [record(1, slotted=False), record(400),
                                        record(0, error="the peer reset the connection")])
    assert counts.frozen == {trap.id: 1, fast.id: 400}
    for n in (900, 950):  # calibrates later, after its failures: it joins the cell's 400
        counts.add([trap, fast, late], [record(1, slotted=False), record(410), record(n)])
    assert counts.frozen[late.id] == 400


def test_a_case_far_slower_than_its_cell_keeps_its_own_count() -> None:
    """A trap case that passed one warm-up as fast (its first operations are) and ran in
    slots: at the cell's 30 operations of 43 ms each, a value would take 1.3 s."""
    rr = [stream(s) for s in ("sendall", "makefile", "send")]
    counts = LoopCounts({}, rounds=10)
    counts.add(rr, [record(30), record(28), record(1, slotted=True)])
    counts.add(rr, [record(31), record(29), record(1, slotted=False)])
    assert [counts.frozen[c.id] for c in rr] == [29, 29, 1]  # median_low(31, 29, 1)


def test_given_counts_stay_and_one_round_calibrates_once() -> None:
    a, b = stream("sendall"), stream("makefile")
    counts = LoopCounts({a.id: 77}, rounds=1)
    counts.add([a, b], [record(500), record(300)])
    assert counts.frozen == {a.id: 77, b.id: 300}


def test_slow_means_a_timer_not_a_stall() -> None:
    """At the quick suite's 2 ms values a few-ms stall does not make a case slow (its values
    would run in a row and stop pairing with its baseline's); the 40 ms delayed-ACK trap
    does, and so does an op of most of a long value (an emulated 20 ms round trip at 10 ms)."""
    assert 0.003 < slow_op_s(0.002) < 0.040
    assert slow_op_s(0.01) < 0.020 and slow_op_s(0.002) == slow_op_s(0.01)
    assert slow_op_s(0.1) == pytest.approx(0.05)
