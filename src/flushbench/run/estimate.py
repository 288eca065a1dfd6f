"""Rough time estimates: the dry run's total and the progress bar's ETA."""

from __future__ import annotations

from ..case import Case
from ..measure.visit import SLOW_VALUES, slow_op_s
from ..suites import Suite

# Measured with bench/bench_breakdown.py on the quick suite (2026-12-02, 2-core VM): a
# visit's worker start-up, exit and accounting ~175 ms, the manager's merge and probe ~140 ms
VISIT_START_S = 0.32
CONNECT_S = 0.005  # connect, HELLO, options and strategy of one trial (5.6 s over 1,160)
VALUE_OVERHEAD_S = 0.001  # GO/READY, TCP_INFO and the accounting around each value
CONN_S = 0.0015  # a driver case: each further connection's connect and HELLO
WARMUP_S = 0.05  # measure.session.WARMUP_TIME


def estimate_op_s(case: Case, rtt: float = 0.0) -> float:
    """A rough time per operation (loopback, plus ``rtt`` seconds per round trip)."""
    if case.workload == "stream":
        return 2e-6 + case.msg_size / 2e9
    if case.workload == "file":
        return case.msg_size / 3e9 + 2e-5
    separate = case.strategy in ("send", "sendall", "asyncio") or (
        case.strategy == "makefile" and case.buffer and case.buffer < case.msg_size)
    if case.workload == "wwr" and not case.nodelay and separate:
        return 0.042 + 2 * rtt  # one delayed-ACK timeout per request
    return rtt + 8e-5 + case.batch * (3e-6 + case.msg_size / 2e9) + case.reply_size / 2e9


def estimate_trial_s(case: Case, suite: Suite, rtt: float = 0.0) -> float:
    """One trial of ``case``: connect, warm-up, and the suite's values (at least one op each)."""
    op = estimate_op_s(case, rtt) * case.conns  # a driver case: every connection, one CPU
    value_s = max(op, min(suite.value_time, case.op_count * op)) + 2 * rtt + VALUE_OVERHEAD_S
    warm_up = min(WARMUP_S, 64 * op) + 3 * rtt
    values = suite.values
    if op > slow_op_s(suite.value_time) and not case.driver:  # a slow case: fewer values
        values = min(values, SLOW_VALUES)
    connect = CONNECT_S + CONN_S * (case.conns - 1)
    return connect + warm_up + (suite.warmups + values) * value_s


def estimate_case_s(case: Case, suite: Suite, rtt: float = 0.0) -> float:
    """All of one case's trials over the suite's rounds (its share of the visits' start-up
    not included)."""
    return suite.rounds * estimate_trial_s(case, suite, rtt)


def estimate_visit_s(cases: list[Case], suite: Suite, rtt: float = 0.0) -> float:
    """One visit: a worker process and one trial of each of its cases."""
    return VISIT_START_S + sum(estimate_trial_s(c, suite, rtt) for c in cases)
