"""Rough time estimates per case: the dry run's total and the progress bar's ETA."""

from __future__ import annotations

from ..case import Case
from ..suites import Suite

WORKER_START_S = 0.3  # a worker process's start-up, connect and warm-up (estimate)


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


def estimate_case_s(case: Case, suite: Suite, rtt: float = 0.0) -> float:
    value_s = min(suite.value_time, case.op_count * estimate_op_s(case, rtt)) + 2 * rtt
    warm_up = min(0.2, 64 * estimate_op_s(case, rtt)) + 3 * rtt
    return suite.processes * (WORKER_START_S + warm_up + (suite.warmups + suite.values) * value_s)
