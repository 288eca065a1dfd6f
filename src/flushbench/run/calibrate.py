"""``flushbench calibrate``: the harness ceiling, measured beside the C reference tools.

The calibration suite (flushbench's cases that iperf3 and sockperf also measure) runs as an
ordinary interleaved run of R rounds. At the first visit of each round, before any of that
round's trials, the tools run once (:class:`ToolRounds` wraps the run's progress): iperf3
(``-l`` at each stream size, JSON output; with ``--conns N`` also ``-P N``) and sockperf
ping-pong (full RTT, the rr size). Every ratio is paired by round, never a case against a
figure taken minutes apart (this host's speed drifts between 10-second blocks): per round r,
the best case's trial in round r against the tool's figure of round r; the table gives the
median ratio over the rounds, its min and max, and the median figures. Stored with the run
as ``calibration.csv`` (one row per metric), ``calibration-rounds.csv`` (one row per metric
and round) and under ``calibration`` in ``meta.json``.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..case import Case
from ..errors import SetupError, UsageError
from ..results import atomic_write, read_meta, write_json
from ..suites import Suite, parse_suite
from .manager import Progress, ProgressFactory, run
from .options import RunOptions
from .reftools import INSTALL_HINT, Place, Tools, whole_seconds
from .schedule import Visit
from .trials import TRIALS

if TYPE_CHECKING:
    from ..netlab import Netlab

STREAM_STRATEGIES = ("send", "sendall", "makefile", "sendmsg", "msg_more")
# N connections: a thread each (any blocking strategy) and one selectors loop
CONNS_STRATEGIES = {"threads": ("sendall", "sendmsg"), "selectors": ("sendall", "coalesce")}
CSV, ROUNDS_CSV = "calibration.csv", "calibration-rounds.csv"
COLUMNS = ["metric", "case", "flushbench", "reference", "tool", "ratio", "ratio_min",
           "ratio_max", "rounds"]
ROUND_COLUMNS = ["metric", "tool", "case", "round", "flushbench", "reference", "ratio"]


class ToolRounds(AbstractContextManager["ToolRounds"]):
    """The run's progress, with the reference tools run at the first visit of each round:
    each round's figures are taken seconds before that round's flushbench trials."""

    def __init__(self, inner: AbstractContextManager[Progress], tools: Tools,
                 rounds: int) -> None:
        self.inner_cm, self.tools, self.rounds = inner, tools, rounds
        self.inner: Progress | None = None
        self.round: int | None = None

    def __enter__(self) -> ToolRounds:
        self.inner = self.inner_cm.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        return self.inner_cm.__exit__(exc_type, exc, tb)

    def start_visit(self, visit: Visit, cases: Sequence[Case]) -> None:
        if visit.round != self.round:
            self.round = visit.round
            self.tools.run_round(visit.round, self.rounds)
        assert self.inner is not None
        self.inner.start_visit(visit, cases)

    def end_visit(self, visit: Visit, rows: Sequence[dict[str, Any]]) -> None:
        assert self.inner is not None
        self.inner.end_visit(visit, rows)


def suite_text(sizes: Sequence[int], rr_size: int, rounds: int = 5, conns: int = 1) -> str:
    """The calibration suite: each value about a quarter second (the op caps are far off),
    so that flushbench's figures are of the same kind as the tools' second-long runs."""
    def quoted(names: Sequence[str]) -> str:
        return ", ".join(f'"{s}"' for s in names)

    sizes_list = ", ".join(map(str, sizes))
    text = f"""[suite]
name = "calibration"
description = "flushbench's cases that the reference tools also measure, round by round"
rounds = {rounds}
values = 3
warmups = 1
value_time = 0.25
timeout = 90

[[matrix]]
workload = "stream"
strategy = [{quoted(STREAM_STRATEGIES)}]
msg_size = [{sizes_list}]
ops = 1000000
"""
    if conns > 1:
        for driver, strategies in CONNS_STRATEGIES.items():
            text += f"""
[[matrix]]
workload = "stream"
strategy = [{quoted(strategies)}]
msg_size = [{sizes_list}]
conns = {conns}
driver = "{driver}"
ops = 1000000
"""
    return text + f"""
[[matrix]]
workload = "rr"
strategy = ["send", "sendall"]
nodelay = true
parts = 1
msg_size = {rr_size}
ops = 100000
"""


def calibration_suite(sizes: Sequence[int], rr_size: int, rounds: int, conns: int) -> Suite:
    """The suite, checked: a size no case takes fails here, before any tool runs."""
    try:
        return parse_suite(suite_text(sizes, rr_size, rounds, conns), where="calibration suite")
    except UsageError as exc:
        raise UsageError(f"{exc} (from --sizes/--rr-size/--rounds/--conns)") from None


@dataclass
class Calibration:
    run_dir: Path
    table: pd.DataFrame  # one row per metric (calibration.csv)
    by_round: pd.DataFrame  # one row per metric and round (calibration-rounds.csv)
    tools: list[dict[str, Any]]  # every tool run: round, figures, error
    interrupted: bool = False


def calibrate(opts: RunOptions, sizes: list[int], rr_size: int, seconds: float,
              progress_factory: ProgressFactory, rounds: int = 5, conns: int = 1,
              say: Callable[[str], None] | None = None) -> Calibration:
    """The calibration suite's rounds, the tools run at the start of each; store and return
    the ratios paired by round (also of an interrupted run: the rounds it finished)."""
    if opts.peers:
        raise UsageError("calibrate runs the reference tools itself, on loopback or --link; "
                         "against a remote host run iperf3/sockperf there by hand")
    suite = calibration_suite(sizes, rr_size, rounds, conns)
    lab_ctx: AbstractContextManager[Netlab | None] = contextlib.nullcontext(None)
    if opts.link:
        from ..netlab import Netlab

        lab_ctx = Netlab(opts.link)
    with tempfile.TemporaryDirectory() as tmp, lab_ctx as lab:
        place = Place.of(lab, opts.pin)
        tools = Tools(place, sizes, rr_size, seconds, conns, cc=opts.cc or "", say=say)
        path = Path(tmp) / "calibration.toml"
        path.write_text(suite.source)
        opts.suite = str(path)
        outcomes = run(opts, lambda s, visits: ToolRounds(progress_factory(s, visits), tools,
                                                          rounds))
    run_dir = outcomes[0].run_dir
    if run_dir is None or not (Path(run_dir) / TRIALS).exists():
        if outcomes[0].interrupted:
            raise KeyboardInterrupt  # stopped before any trial was written: nothing to pair
        raise SetupError(f"the calibration run left no {TRIALS} in {run_dir}")
    trials = pd.read_csv(Path(run_dir) / TRIALS, keep_default_na=False, na_values=[""])
    table, by_round = paired_ratios(trials, pd.DataFrame(tools.rows), suite.cases, sizes,
                                    rr_size, conns)
    with atomic_write(Path(run_dir) / CSV) as fh:
        table.to_csv(fh, index=False)
    with atomic_write(Path(run_dir) / ROUNDS_CSV) as fh:
        by_round.to_csv(fh, index=False)
    records = table.to_dict("records")
    for rec in records:
        rec["per_round"] = by_round[by_round["metric"] == rec["metric"]].drop(
            columns=["metric", "tool", "case"]).to_dict("records")
    meta = read_meta(run_dir)
    meta["calibration"] = {"tools": {k: bool(v) for k, v in tools.have.items()},
                           "raw": tools.rows, "ratios": records, "paired_by_round": True,
                           "seconds": whole_seconds(seconds), "rounds": rounds,
                           "conns": conns, "tools_pinned": tools.place.pinned,
                           "cc": tools.cc,
                           "install_hint": INSTALL_HINT}
    write_json(Path(run_dir) / "meta.json", meta)
    return Calibration(Path(run_dir), table, by_round, tools.rows, outcomes[0].interrupted)


def _per_round(frame: pd.DataFrame, column: str) -> pd.Series:
    """``column`` by round (a trial's or a tool run's), rows with an error or no figure out."""
    if frame.empty or column not in frame:
        return pd.Series(dtype=float)
    ok = frame[frame["error"].isna() | (frame["error"].astype(str) == "")]
    series = pd.to_numeric(ok.set_index("round")[column], errors="coerce").dropna()
    series.index = series.index.astype(int)
    return series.groupby(level=0).first()


def paired_ratios(trials: pd.DataFrame, tools: pd.DataFrame, cases: Sequence[Case],
                  sizes: Sequence[int], rr_size: int, conns: int = 1
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """flushbench's best case against the tool, round by round.

    ``trials``: trials.csv (case, round, throughput_bps, lat_p50_us, lat_p99_us, error);
    ``tools``: :attr:`Tools.rows`. Best = the highest median throughput over rounds (stream,
    per size and connection count) or the lowest median p50 (rr); twins never count. Per
    round r both measured: ratio_r = the case's figure in r / the tool's in r. Returns one
    row per metric (median figures and ratio over the paired rounds, min and max ratio,
    ``rounds`` paired) and one row per metric and round.
    """
    out: list[dict[str, Any]] = []
    per_round: list[dict[str, Any]] = []
    frames = {str(cid): group for cid, group in trials.groupby("case")}

    def tool_rows(**match: Any) -> pd.DataFrame:
        if tools.empty:
            return tools
        keep = np.ones(len(tools), dtype=bool)
        for key, value in match.items():
            keep &= (tools[key] == value).to_numpy()
        return tools[keep]

    def best(candidates: list[Case], column: str, higher: bool) -> tuple[Case, pd.Series] | None:
        scored = [(float(s.median()), c, s) for c in candidates
                  if len(s := _per_round(frames.get(c.id, pd.DataFrame()), column))]
        if not scored:
            return None
        _, case, series = (max if higher else min)(scored, key=lambda t: t[0])
        return case, series

    def add(metric: str, tool: str, case: Case, mine: pd.Series, ref: pd.Series,
            scale: float) -> None:
        paired = sorted(set(mine.index) & set(ref.index))
        ratios = [float(mine[r] / ref[r]) for r in paired]
        for r, ratio in zip(paired, ratios):
            per_round.append({"metric": metric, "tool": tool, "case": case.id, "round": r,
                              "flushbench": float(mine[r]) / scale,
                              "reference": float(ref[r]) / scale, "ratio": ratio})
        nan = float("nan")
        out.append({"metric": metric, "case": case.id, "tool": tool,
                    "flushbench": float((mine[paired] if paired else mine).median()) / scale,
                    "reference": float(ref[paired].median()) / scale if paired else nan,
                    "ratio": float(np.median(ratios)) if ratios else nan,
                    "ratio_min": min(ratios, default=nan), "ratio_max": max(ratios, default=nan),
                    "rounds": len(paired)})

    plain = [c for c in cases if not c.twin]
    for size in sizes:
        for n in sorted({1, conns}):
            found = best([c for c in plain if c.workload == "stream" and c.msg_size == size
                          and c.conns == n], "throughput_bps", higher=True)
            if found is None:
                continue
            label = f" x {n} conns" if n > 1 else ""
            add(f"stream {size} B{label} throughput (Gbit/s)",
                "iperf3" + (f" -P {n}" if n > 1 else ""), *found,
                _per_round(tool_rows(tool="iperf3", msg_size=size, conns=n), "throughput_bps"),
                1e9)
    found = best([c for c in plain if c.workload == "rr" and c.msg_size == rr_size],
                 "lat_p50_us", higher=False)
    if found is not None:
        ref = tool_rows(tool="sockperf", msg_size=rr_size)
        for q in ("p50", "p99"):
            case = found[0]
            add(f"rr {rr_size} B RTT {q} (us)", "sockperf", case,
                _per_round(frames.get(case.id, pd.DataFrame()), f"lat_{q}_us"),
                _per_round(ref, f"rtt_{q}_us"), 1.0)
    return (pd.DataFrame(out, columns=COLUMNS),
            pd.DataFrame(per_round, columns=ROUND_COLUMNS))
