"""A worker process for one visit: the cases of one cell, in one round, values interleaved.

    python -m flushbench.measure.visit --visit FILE --peer HOST:PORT [--peer unix:PATH] --out DIR

The manager writes the visit (a JSON file: round, cases in order, loops per case, values,
warm-ups, value time, seed) and starts one such process per cell and round. Each case gets
its own connection and warm-up; then the cases' values are interleaved in slots (see
:func:`run_visit`), so a case and its baseline are measured milliseconds apart in the same
process, while processes (and CPU placement) change from round to round. What one case
measured goes to ``DIR/<case id>.json`` (values, effective options,
phases, start time, CPU) and ``DIR/<case id>.lat`` (per-operation latencies, int64 ns). A
case that fails leaves its reason in the JSON's ``error`` and the visit goes on.

Standard library only (this module is on every visit's clock); it ends with ``os._exit``.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from ..case import Case
from ..errors import FlushbenchError, PeerError
from . import plugins
from .multisession import MultiSession
from .protocol import parse_addr, read_ticket
from .session import Session, calibrated_ops
from .unixsock import Addr, parse_unix


def describe(exc: BaseException, io_timeout: float) -> str:
    """One line, in plain words, for the table's error column."""
    if isinstance(exc, FlushbenchError):
        return str(exc)
    if isinstance(exc, ConnectionResetError):
        return "the peer reset the connection"
    if isinstance(exc, (BrokenPipeError, ConnectionAbortedError)):
        return "the peer closed the connection"
    if isinstance(exc, ConnectionRefusedError):
        return "the peer refused the connection (is it still running?)"
    if isinstance(exc, (BlockingIOError, TimeoutError)) or \
            getattr(exc, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK):
        return (f"no progress for {io_timeout:g} s: the peer stopped reading or answering "
                "(socket timeout)")
    if isinstance(exc, OSError):
        return f"socket error: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def current_cpu() -> int:
    """The CPU this process runs on now (field 39 of /proc/self/stat); -1 where unknown."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read().decode()
        return int(stat[stat.rindex(")") + 2:].split()[36])
    except (OSError, ValueError, IndexError):
        return -1


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


SLOW_OP = 0.5  # an op longer than this share of value_time: the case runs its values in a row
# ... and longer than this (s): a delayed ACK waits 40 ms, while the host's stalls of a few ms
# in the warm-up's last value would otherwise make a 2 ms value's case "slow" (its values in
# a row then do not pair slot by slot with its baseline's: 20 such trials in one run of
# results/epyc-2core-vm/20261203-value-length/before-slow-floor-*-bench-verdicts.json)
SLOW_FLOOR = 0.01


def slow_op_s(value_time: float) -> float:
    """The op time past which a case runs its values in a row instead of in slots."""
    return max(SLOW_OP * value_time, SLOW_FLOOR)


SLOW_VALUES = 2  # values of a slow case (each holds at least one whole operation)


class Trial:
    """One case of the visit: its connection, its values so far, and its record."""

    def __init__(self, case: Case, spec: dict[str, Any], epoch: float) -> None:
        self.case, self.spec, self.epoch = case, spec, epoch
        self.io_timeout = float(spec["io_timeout"])
        self.value_time = float(spec["value_time"])
        self.cc = str(spec.get("cc") or "")  # the run's congestion control ("": the host's)
        self.sink = str(spec.get("sink") or "")  # asked of the peer (sink.for_cases)
        self.loops = int(spec["loops"].get(case.id) or 0)  # 0: calibrate in this trial
        self.n = self.loops
        self.follows: Trial | None = None  # a calibrating twin: its original, value by value
        self.session: Session | MultiSession | None = None
        self.finished = False
        self.record: dict[str, Any] = {"case": case.id, "round": spec["round"],
                                       "cpu": current_cpu(), "pid": os.getpid(),
                                       "start_s": time.time() - epoch, "values": [],
                                       "slotted": False, "error": ""}

    def open(self, peers: dict[str, Addr]) -> None:
        """Connect (to the unix peer for a unix case), warm up (not timed), size the values."""
        try:
            kind = "unix" if self.case.transport == "unix" else "tcp"
            if kind not in peers:
                raise PeerError(f"no {kind} peer was given for this {self.case.transport} case")
            addr, ticket = peers[kind], self.spec.get("ticket")
            session: Session | MultiSession
            if self.case.driver:  # many connections (never unix: see Case)
                assert not isinstance(addr, str)
                session = MultiSession.connect(self.case, addr, self.io_timeout, ticket,
                                               cc=self.cc, sink=self.sink)
            else:
                session = Session.connect(self.case, addr, self.io_timeout, ticket,
                                          ca=self.spec.get("tls_ca"), cc=self.cc,
                                          sink=self.sink)
            self.session = session
            self.n = min(self.loops, self.case.op_count) if self.loops else \
                session.ops_for(self.case.op_count, self.value_time)
            for _ in range(int(self.spec["warmups"])):
                session.run_value(self.n, record=False)
        except Exception as exc:  # noqa: BLE001 - the reason goes to the table
            self.fail(exc)

    @property
    def live(self) -> bool:
        return self.session is not None and not self.record["error"]

    @property
    def slow(self) -> bool:
        """One operation takes most of a value (e.g. the 40 ms delayed-ACK trap)."""
        return self.session is not None and \
            self.session.est_op_s > slow_op_s(self.value_time)

    def value(self) -> None:
        """One timed value."""
        session = self.session
        if session is None or self.record["error"]:
            return
        try:
            if self.follows is not None:  # a twin: its original's latest count
                self.n = max(1, self.follows.n)
            elif not self.loops:  # a calibration trial: bound each value in time
                self.n = session.ops_for(self.case.op_count, self.value_time)
            session.run_value(self.n)
        except Exception as exc:  # noqa: BLE001 - the reason goes to the table
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        self.record["error"] = describe(exc, self.io_timeout)

    def finish(self, out: Path) -> None:
        """Leave the record and the latencies in ``out``; close the connection (once)."""
        if self.finished:
            return
        self.finished = True
        session, record = self.session, self.record
        try:
            if session is not None and not record["error"]:
                cap = session.ops_for(self.case.op_count, 0.0)  # the case's own cap
                loops = self.n if self.loops else calibrated_ops(
                    session.values, cap, self.value_time, self.case.conns)
                record.update(values=[dataclasses.asdict(v) for v in session.values],
                              effective=session.effective(), phases=session.phases,
                              loops=loops or self.n)
                _atomic_write(out / f"{self.case.id}.lat", session.latencies.tobytes())
        except Exception as exc:  # noqa: BLE001
            self.fail(exc)
        finally:
            if session is not None:
                session.close()
        record["end_s"] = time.time() - self.epoch
        _atomic_write(out / f"{self.case.id}.json", json.dumps(record).encode())


def run_visit(cases: list[Case], peers: dict[str, Addr], spec: dict[str, Any],
              out: Path) -> None:
    """Measure the visit's cases, their values interleaved.

    Every case connects and warms up first (in the visit's order). Then the values go in
    slots: in each slot every case runs one short value, in a fresh order, so a case and
    its baseline are measured milliseconds apart, over and over, and the host's drift in
    between is small. A slow case (one operation takes most of a value: the delayed-ACK
    trap) runs its values in a row right after its warm-up instead: interleaving would
    leave its connection idle long enough to fall back into quick-ACK mode. So does a driver
    case (many connections), which then closes them before the next case opens its own: the
    peer holds one case's connections at a time.
    """
    epoch = float(spec["epoch"])
    rng = random.Random(int(spec.get("seed", 0)))
    trials = [Trial(case, spec, epoch) for case in cases]
    try:
        fast = []
        for trial in trials:
            trial.open(peers)
            if trial.case.driver:
                for _ in range(int(spec["values"])):
                    trial.value()
                trial.finish(out)
            elif trial.slow:
                for _ in range(min(SLOW_VALUES, int(spec["values"]))):
                    trial.value()
            else:
                fast.append(trial)
                trial.record["slotted"] = True  # its values pair slot by slot
        by_id = {t.case.id: t for t in trials}
        for trial in fast:  # a twin does exactly its original's work (segments per value):
            # while calibrating, the count its original's last value set, value by value
            root = by_id.get(trial.case.id.removesuffix("-twin"))
            if trial.case.twin and root is not None and root.live and not trial.loops:
                trial.follows = root
        for _ in range(int(spec["values"])):
            order = [t for t in fast if t.live]
            rng.shuffle(order)
            for trial in order:
                trial.value()
    finally:
        for trial in trials:
            trial.finish(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flushbench.measure.visit")
    parser.add_argument("--visit", required=True, type=Path, help="the visit, as JSON")
    parser.add_argument("--peer", required=True, action="append",
                        help="HOST:PORT of the peer, or unix:PATH of its AF_UNIX socket "
                             "(one of each at most)")
    parser.add_argument("--out", required=True, type=Path, help="where to leave the results")
    parser.add_argument("--netns", help="network namespace to enter first")
    parser.add_argument("--cpu", type=int, help="pin this process to a CPU")
    args = parser.parse_args(argv)
    if args.netns:
        from .netns import enter_netns

        enter_netns(args.netns)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    spec = json.loads(args.visit.read_text())
    spec["ticket"] = read_ticket(0, 10.0)  # the peer's ticket: on stdin, never in argv or files
    for plugin in spec.get("strategy_plugins", []):
        plugins.load_plugin(plugin)
    peers: dict[str, Addr] = {}
    for text in args.peer:
        path = parse_unix(text)
        peers["unix" if path is not None else "tcp"] = path if path is not None else \
            parse_addr(text)
    args.out.mkdir(parents=True, exist_ok=True)
    run_visit([Case.from_dict(data) for data in spec["cases"]], peers, spec, args.out)
    return 0


if __name__ == "__main__":
    code = 2
    try:
        code = main()
    except Exception as exc:  # noqa: BLE001 - one line for the manager, then exit
        print(f"flushbench visit: {describe(exc, 0)}", file=sys.stderr)
    finally:
        # everything is on disk: skip the interpreter's tear-down (~55 ms per process)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
