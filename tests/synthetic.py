"""Synthetic runs for the report and comparison tests, written through ``RunWriter``.

The figures follow a small, deterministic model of what real runs show (per-call cost,
a link rate, the Nagle × delayed-ACK stall, the SO_SNDBUF floor) so charts, recommendations
and myths have something true-to-life to find. Nothing here touches a socket.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from flushbench.case import Case
from flushbench.results import COLUMNS, RunWriter

SINGLE_CALL = {"makefile", "sendmsg", "coalesce", "cork", "msg_more", "sendfile"}
CALL_COST_S = {"send": 1.3e-6, "sendall": 1.0e-6, "makefile": 0.7e-6, "sendmsg": 0.9e-6,
               "coalesce": 0.8e-6, "cork": 1.4e-6, "msg_more": 1.1e-6, "sendfile": 0.5e-6}
LINK_BPS = 20e9
RTT_S = 30e-6
SNDBUF_FLOOR = 4608
DELACK_S = 0.040


def host(hostname: str = "alpha", *, kernel: str = "6.1.0-test", python: str = "3.11.7",
         mtu: int = 65536, cpu: str = "Synthetic CPU @ 3.0GHz") -> dict[str, Any]:
    """A fixed host-metadata dict shaped like ``metadata.collect_host()``."""
    return {
        "hostname": hostname, "platform": "linux", "kernel": kernel, "os": "Linux-test",
        "machine": "x86_64", "cpu_model": cpu, "cpu_count": 2, "cpu_affinity": [0, 1],
        "mem_total": 24 << 30, "python": python, "python_impl": "CPython",
        "python_executable": "/usr/bin/python3", "io_default_buffer_size": 8192,
        "has_tcp_cork": True, "has_msg_more": True,
        "sysctls": {"net.ipv4.tcp_wmem": "4096 16384 4194304", "net.core.wmem_max": "212992",
                    "net.ipv4.tcp_autocorking": "1",
                    "net.ipv4.tcp_congestion_control": "cubic"},
        "interfaces": {"lo": {"mtu": mtu, "speed": None, "operstate": "unknown"}},
        "versions": {"flushbench": "0.1.0", "pyperf": "2.10.0", "numpy": "2.4.6",
                     "pandas": "3.0.0"},
    }


def make_meta(machine: str, run_id: str, *, transport: str = "loopback",
              client: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    client = dict(client or host(machine))
    meta = {
        "run_id": run_id, "machine_id": machine, "created": "2024-06-01T12:00:00+00:00",
        "suite": {"name": "synthetic", "description": "test suite", "source": ""},
        "client": client, "peer": copy.deepcopy(client), "transport": transport,
        "link": None, "pyperf": {"processes": 2, "values": 3, "warmups": 1, "timeout": 60},
        "flushbench_version": "0.1.0", "argv": ["flushbench", "run"],
    }
    meta.update(extra)
    return meta


def default_cases() -> list[Case]:
    """A small matrix with every workload, both nodelay settings and an SO_SNDBUF sweep."""
    cases: list[Case] = []
    for strategy in ("send", "sendall", "makefile", "sendmsg", "coalesce"):
        for size in (64, 1024, 65536):
            for nodelay in (False, True):
                cases.append(Case("stream", strategy, size, nodelay=nodelay))
    for sndbuf in (1, 65536):
        for size in (64, 1024, 65536):
            cases.append(Case("stream", "sendall", size, sndbuf=sndbuf))
    for strategy in ("sendall", "makefile", "coalesce"):
        for nodelay in (False, True):
            cases.append(Case("rr", strategy, 64, nodelay=nodelay))
    for strategy in ("sendall", "makefile", "sendmsg", "coalesce"):
        for nodelay in (False, True):
            cases.append(Case("wwr", strategy, 64, nodelay=nodelay))
    cases.append(Case("wwr", "sendall", 64, sndbuf=1))
    for strategy in ("sendall", "coalesce"):
        for nodelay in (False, True):
            cases.append(Case("pipeline", strategy, 64, batch=16, nodelay=nodelay))
    for strategy in ("sendall", "sendfile"):
        cases.append(Case("file", strategy, 1 << 20))
    return sorted(cases, key=Case.sort_key)


def _sndbuf_eff(case: Case) -> int:
    return max(2 * case.sndbuf, SNDBUF_FLOOR) if case.sndbuf else 2626560


HOST_SPEED = 18.0  # the host-speed probe on the synthetic reference machine (M loops/s)


def _seconds_per_msg(case: Case, speed: float) -> float:
    calls = 1 if case.strategy in SINGLE_CALL else case.parts
    cost = CALL_COST_S.get(case.strategy, 1e-6) * calls
    if case.workload in ("stream", "file"):
        rate = LINK_BPS
        if case.sndbuf:
            rate = min(rate, _sndbuf_eff(case) * 8 / RTT_S)
        extra = 0.4e-6 if case.nodelay and case.msg_size < 1500 else 0.0
        return (cost + extra + case.msg_size * 8 / rate) / speed
    stall = case.workload == "wwr" and not case.nodelay and calls > 1
    base = DELACK_S + 4e-3 if stall else RTT_S + cost
    if case.workload == "pipeline":
        base = (RTT_S + case.batch * cost * (1.0 if case.nodelay else 0.6)) / case.batch
    return base / speed


def case_data(case: Case, rng: np.random.Generator, speed: float = 1.0, values: int = 6,
              lat_samples: int = 1500, ops_per_value: bool = True,
              ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One finished row and its samples (``ops_per_value`` as the real collector writes)."""
    spm = _seconds_per_msg(case, speed)
    vals = spm * rng.lognormal(0.0, 0.03, values)
    samples: dict[str, np.ndarray] = {"values_s_per_msg": vals}
    row: dict[str, Any] = {k: v for k, v in case.to_dict().items() if k in COLUMNS}
    row["case"] = case.id
    msgs_per_s = 1.0 / float(vals.mean())
    row.update(msgs_per_s=msgs_per_s, throughput_bps=msgs_per_s * case.msg_size * 8,
               rate_rsd=float(np.std(1 / vals) / np.mean(1 / vals)), values=values, loops=1,
               msgs=values * 1000, bytes=values * 1000 * case.msg_size, duration_s=1.0,
               host_speed=HOST_SPEED * speed, error="", opt_mismatch="")
    if case.workload in ("rr", "wwr", "pipeline"):
        ops = np.full(values, lat_samples // values)
        ops[: lat_samples % values] += 1
        per_op = np.repeat(vals * case.msgs_per_op, ops)  # each value's own pace
        lat = per_op * rng.lognormal(0.0, 0.15, lat_samples)
        if ops_per_value:
            samples["ops_per_value"] = ops.astype(np.int64)
        lat[rng.random(lat_samples) < 0.01] *= 4  # a tail
        lat_ns = np.round(lat * 1e9).astype(np.int64)
        samples["lat_ns"] = lat_ns
        us = lat_ns / 1000.0
        row.update(lat_mean_us=us.mean(), lat_p50_us=np.percentile(us, 50),
                   lat_p90_us=np.percentile(us, 90), lat_p99_us=np.percentile(us, 99),
                   lat_p999_us=np.percentile(us, 99.9), lat_max_us=us.max(),
                   lat_samples=lat_samples)
    calls = 1 if case.strategy in SINGLE_CALL else case.parts
    small = case.msg_size < 1500
    segs = (calls if case.nodelay else 0.1) if small else np.ceil(case.msg_size / 65483)
    row.update(send_calls_per_msg=float(calls), segs_per_msg=float(segs), retrans=0,
               rtt_us=RTT_S * 1e6, cpu_s_per_gb_client=0.4 + 50.0 / case.msg_size * calls,
               cpu_s_per_gb_peer=0.3 + 20.0 / case.msg_size, nodelay_eff=case.nodelay,
               sndbuf_eff=_sndbuf_eff(case), rcvbuf_eff=131072, notsent_lowat_eff=0)
    return row, samples


def write_run(root: Path, machine: str = "alpha", run_id: str = "run1",
              cases: Iterable[Case] | None = None, *, speed: float = 1.0, seed: int = 1,
              failed: Iterable[str] = (), no_samples: Iterable[str] = (),
              meta: Mapping[str, Any] | None = None, ops_per_value: bool = True,
              slower: Mapping[str, float] | None = None) -> Path:
    """Write a complete run under ``root/machine/run_id`` and return its directory.

    ``slower``: case id -> factor on its time per message (1.2 = 20 % slower) in this run.
    """
    run_dir = Path(root) / machine / run_id
    writer = RunWriter.create(run_dir, meta or make_meta(machine, run_id))
    rng = np.random.default_rng(seed)
    failed, no_samples = set(failed), set(no_samples)
    for case in default_cases() if cases is None else cases:
        factor = (slower or {}).get(case.id, 1.0)
        row, samples = case_data(case, rng, speed / factor, ops_per_value=ops_per_value)
        if case.id in failed:
            row = {**case.to_dict(), "case": case.id, "error": "PeerError: peer reset the "
                   "connection"}
            samples = {}
        writer.add_case(row, None if case.id in no_samples else samples)
    return run_dir


def small_cases() -> list[Case]:
    """Fewer cases that still feed every chart, recommendation and myth (fast tests)."""
    cases = [Case("stream", s, size, nodelay=nd) for s in ("sendall", "makefile")
             for size in (64, 65536) for nd in (False, True)]
    cases += [Case("stream", "sendall", 65536, sndbuf=1)]
    cases += [Case(w, s, 64, nodelay=nd) for w in ("rr", "wwr") for s in ("sendall", "makefile")
              for nd in (False, True)]
    cases += [Case("wwr", "sendall", 64, sndbuf=1)]
    cases += [Case("pipeline", "sendall", 64, batch=16, nodelay=nd) for nd in (False, True)]
    cases += [Case("file", s, 1 << 20) for s in ("sendall", "sendfile")]
    return sorted(cases, key=Case.sort_key)


def _segments(case: Case) -> float:
    calls = 1 if case.strategy in SINGLE_CALL else case.parts
    if case.msg_size < 1500:
        return float(calls if case.nodelay else 0.1)
    return float(np.ceil(case.msg_size / 65483))


def trial_rows(cases: Iterable[Case], rounds: int, rng: np.random.Generator,
               speed: float = 1.0, slower: Mapping[str, float] | None = None,
               drift: float = 0.10, jitter: float = 0.01) -> list[dict[str, Any]]:
    """trials.csv rows of interleaved rounds: each round's host speed (``speed`` times a
    drift of ``drift``, log-normal) is shared by every case of the round; each trial adds
    ``jitter``. ``slower`` as in :func:`write_run`."""
    cases = list(cases)
    rows = []
    for round_ in range(rounds):
        host_now = speed * float(rng.lognormal(0.0, drift))
        for position, index in enumerate(rng.permutation(len(cases))):
            c = cases[int(index)]
            h = host_now * float(rng.lognormal(0.0, jitter))
            spm = _seconds_per_msg(c, h) * (slower or {}).get(c.id, 1.0)
            row: dict[str, Any] = {
                "case": c.id, "workload": c.workload, "round": round_, "cell": "synthetic",
                "position": position, "start_s": round_ + position / 100,
                "end_s": round_ + (position + 1) / 100, "cpu": 0, "pid": 1000 + round_,
                "loops": 1, "values": 2, "throughput_bps": c.msg_size * 8 / spm,
                "msgs_per_s": 1 / spm, "segs_per_msg": _segments(c),
                "send_calls_per_msg": 1.0, "cpu_s_per_gb_client": 1.0,
                "cpu_s_per_gb_peer": 1.0, "host_speed": HOST_SPEED * h, "error": ""}
            if c.workload not in ("stream", "file"):
                p50 = spm * c.msgs_per_op * 1e6
                row.update(lat_p50_us=p50, lat_p99_us=1.4 * p50)
            rows.append(row)
    return rows


def write_rounds_run(root: Path, machine: str = "alpha", run_id: str = "run1",
                     cases: Iterable[Case] | None = None, *, rounds: int = 8,
                     speed: float = 1.0, seed: int = 1,
                     slower: Mapping[str, float] | None = None, drift: float = 0.10,
                     transport: str = "loopback") -> Path:
    """A run of interleaved rounds (schema 2): cells with A/A twins, the schedule's
    comparisons in meta.json, trials.csv and verdicts.csv, and the table as
    :func:`write_run` writes it (the host ``speed`` times 1 / ``slower``)."""
    import pandas as pd

    from flushbench.analysis import verdicts
    from flushbench.analysis.cells import cells as make_cells
    from flushbench.run.trials import TRIAL_COLUMNS, TRIALS

    chosen = small_cases() if cases is None else list(cases)
    made = make_cells(chosen)
    members = [c for cell in made for c in cell.cases]
    comparisons = [c for cell in made for c in cell.comparisons]
    meta = make_meta(machine, run_id, transport=transport, schedule={
        "comparisons": [[c.case, c.baseline, c.axis] for c in comparisons],
        "rounds": rounds, "seed": seed, "min_effect": verdicts.MIN_EFFECT})
    run_dir = write_run(root, machine, run_id, members, speed=speed, seed=seed, meta=meta,
                        slower=slower)
    trials = pd.DataFrame(trial_rows(members, rounds, np.random.default_rng(seed + 1000),
                                     speed, slower, drift), columns=TRIAL_COLUMNS)
    trials.to_csv(run_dir / TRIALS, index=False)
    judged = verdicts.build(trials, comparisons, {c.id: c.workload for c in members})
    judged.to_csv(run_dir / verdicts.VERDICTS, index=False, float_format="%.6g")
    return run_dir


def write_paired_run(root: Path, machine: str = "alpha", run_id: str = "run1",
                     cases: Iterable[Case] | None = None, *, rounds: int = 6, seed: int = 1,
                     effects: Mapping[str, float] | None = None,
                     meta: Mapping[str, Any] | None = None) -> Path:
    """A run of schema 2, as interleaved rounds write it: table.csv with A/A twins, trials.csv
    (a row per case and round: the model's figures x a drift shared by the round x 1 % noise)
    and verdicts.csv (built by ``analysis.verdicts.build`` from those trials).

    ``effects`` multiplies a case's speed in every round (case id -> factor; 0.8 = 20 %
    slower): a twin given one comes out "worse" than its identical baseline.
    """
    import pandas as pd

    from flushbench.analysis import verdicts
    from flushbench.analysis.cells import cell_name, cells
    from flushbench.run.trials import TRIAL_COLUMNS, TRIALS

    groups = cells(sorted(default_cases() if cases is None else cases, key=Case.sort_key))
    every = [c for cell in groups for c in cell.cases]
    base = dict(meta or make_meta(machine, run_id))
    base.pop("pyperf", None)
    base["schedule"] = {"rounds": rounds, "values": 2, "warmups": 0, "value_time": 0.05,
                        "seed": seed, "min_effect": verdicts.MIN_EFFECT, "fast": False,
                        "comparisons": [[c.case, c.baseline, c.axis] for cell in groups
                                        for c in cell.comparisons]}
    run_dir = Path(root) / machine / run_id
    writer = RunWriter.create(run_dir, base)
    rng = np.random.default_rng(seed)
    trials: list[dict[str, Any]] = []
    drift = np.exp(rng.normal(0.0, 0.12, rounds))  # the host's speed, round by round
    model: dict[str, dict[str, Any]] = {}  # a twin's figures are its baseline's
    for case in every:
        row, samples = case_data(case, rng)
        twin_of = dataclasses.replace(case, twin=False).id
        figures = model.setdefault(twin_of, row)
        writer.add_case({**figures, "case": case.id, "twin": case.twin}, samples)
        row = figures
        factor = (effects or {}).get(case.id, 1.0)
        for r in range(rounds):
            speed = drift[r] * factor * rng.lognormal(0.0, 0.01)
            trials.append({
                "case": case.id, "workload": case.workload, "round": r, "cell": cell_name(case),
                "position": 0, "start_s": float(r), "end_s": r + 0.5, "cpu": "0", "pid": 1,
                "loops": 1, "values": 2, "throughput_bps": row["throughput_bps"] * speed,
                "msgs_per_s": row["msgs_per_s"] * speed,
                "lat_p50_us": row.get("lat_p50_us", np.nan) / speed,
                "lat_p99_us": row.get("lat_p99_us", np.nan) / speed,
                "segs_per_msg": row["segs_per_msg"],
                "send_calls_per_msg": row["send_calls_per_msg"],
                "cpu_s_per_gb_client": row["cpu_s_per_gb_client"],
                "cpu_s_per_gb_peer": row["cpu_s_per_gb_peer"],
                "host_speed": HOST_SPEED * drift[r], "error": ""})
    frame = pd.DataFrame(trials, columns=TRIAL_COLUMNS)
    frame.to_csv(run_dir / TRIALS, index=False)
    comparisons = [c for cell in groups for c in cell.comparisons]
    table = verdicts.build(frame, comparisons, {c.id: c.workload for c in every})
    table.to_csv(run_dir / verdicts.VERDICTS, index=False, float_format="%.6g")
    return run_dir
