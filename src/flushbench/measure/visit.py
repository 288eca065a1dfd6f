"""A worker process for one visit: the cases of one cell, in one round, in the given order.

    python -m flushbench.measure.visit --visit FILE --peer HOST:PORT --out DIR

The manager writes the visit (a JSON file: round, cases in order, loops per case, values,
warm-ups, value time) and starts one such process per cell and round, so a case and its
baseline run seconds apart in the same process, on the same CPU, while processes (and CPU
placement) change from round to round. Each case gets its own connection, warm-up and
values; what one case measured goes to ``DIR/<case id>.json`` (values, effective options,
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
import sys
import time
from pathlib import Path
from typing import Any

from ..case import Case
from ..errors import FlushbenchError
from . import strategies
from .protocol import parse_addr
from .session import Session


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


def run_case(case: Case, addr: tuple[str, int], spec: dict[str, Any], out: Path,
             epoch: float) -> None:
    """Measure one case of the visit and leave its counters and samples in ``out``."""
    io_timeout = float(spec["io_timeout"])
    record: dict[str, Any] = {"case": case.id, "round": spec["round"], "cpu": current_cpu(),
                              "pid": os.getpid(), "start_s": time.time() - epoch,
                              "values": [], "error": ""}
    session: Session | None = None
    try:
        session = Session.connect(case, addr, io_timeout)
        loops = int(spec["loops"].get(case.id) or 0)
        frozen = loops > 0
        n = min(loops, len(session.ts)) if frozen else \
            session.ops_for(case.op_count, float(spec["value_time"]))
        for _ in range(int(spec["warmups"])):
            session.run_value(n, record=False)
        for _ in range(int(spec["values"])):
            if not frozen:  # the calibration round: bound each value in time
                n = session.ops_for(case.op_count, float(spec["value_time"]))
            session.run_value(n)
        record.update(values=[dataclasses.asdict(v) for v in session.values],
                      effective=session.effective(), phases=session.phases, loops=n)
        _atomic_write(out / f"{case.id}.lat", session.latencies.tobytes())
    except Exception as exc:  # noqa: BLE001 - the reason goes to the table; the visit goes on
        record["error"] = describe(exc, io_timeout)
    finally:
        if session is not None:
            session.close()
    record["end_s"] = time.time() - epoch
    _atomic_write(out / f"{case.id}.json", json.dumps(record).encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flushbench.measure.visit")
    parser.add_argument("--visit", required=True, type=Path, help="the visit, as JSON")
    parser.add_argument("--peer", required=True, help="HOST:PORT of the peer")
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
    for plugin in spec.get("strategy_plugins", []):
        strategies.load_plugin(plugin)
    addr = parse_addr(args.peer)
    args.out.mkdir(parents=True, exist_ok=True)
    for data in spec["cases"]:
        run_case(Case.from_dict(data), addr, spec, args.out, float(spec["epoch"]))
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
