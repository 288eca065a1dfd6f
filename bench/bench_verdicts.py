"""Can flushbench's verdicts be trusted? A/A false positives, power and ratio repeatability.

    python bench/bench_verdicts.py -o verdicts.json        # the whole measurement (~15 min)
    python bench/bench_verdicts.py --fast                  # a small version (~2 min)
    python bench/bench_verdicts.py --only-repeat --from RUN_A RUN_B
    nox -s perf -- verdicts [ARGS]

Every run is a real ``flushbench run`` (a subprocess) at the quick suite's budget: its
rounds, values, warm-ups, value time and op caps, read from the quick suite. The cells are
stream 64 B, 1 KiB, 16 KiB, 128 KiB, 1 MiB and rr 64 B and 16 KiB (TCP_NODELAY on), in a
generated suite. The strategies come from ``bench/_verdicts_plugin.py`` through
``--strategy-plugin``, with bench/ on PYTHONPATH (the visit workers keep it).

1. ``--runs`` runs (default 3) of a suite holding, per cell, ``sendall``, ``--aliases``
   copies of it under other names (``alias_a`` ...), ``sendall`` slowed by 3 %, 5 % and 10 %
   (``--factors``) and the built-in twin: the quick suite's conditions (about ten cases per
   cell), true effects beside null ones under one Benjamini-Hochberg correction per run.
   * A/A false positives: verdicts.csv rows of each alias against sendall (axis
     "strategy") and of the twins (axis "A/A") called "better" or "worse", on every metric;
     also the headline metric alone, the same rows judged without BH, and how many 95 %
     intervals exclude 1 at all.
   * The same runs' verdicts rebuilt from the trials' pooled figures alone (pairing by
     round, not by slot: ``analysis/slots.py``), for contrast: A/A, power and per-cell noise.
   * The old way, for contrast: Welch's t on log per-value rates (samples'
     values_s_per_msg; ``flushbench.analysis.stats.compare_rates``), pairing ignored, on the
     same runs; and on one more run with ``--rounds 1 --values R x V`` (each case one
     contiguous block of the same measuring time, as the old design measured; ``--no-blocks``
     skips it).
   * Power: each slowed strategy against sendall on its cell's headline metric (throughput,
     or p50 latency), one try per cell and run: the share called "worse". A slowed
     strategy keeps a per-message time budget (``_verdicts_plugin.SlowSendall``): it times
     its own messages as it goes and busy-waits f times that before the next one (the mean
     time on streams, ``slow5``; the median on rr, ``slow5_p50``), so the slowdown follows
     the machine's drift. Beside it, the slowdown each try measured: a wait can partly hide
     behind the peer's work (big streams), the strategy's countdown costs a few ns per
     message (measured here and printed) and its clock reads some more.
2. Ratio repeatability: two back-to-back ``flushbench run --suite quick`` (or ``--from A B``):
   the share of verdicts.csv ratios (throughput_bps, lat_p50_us) within ±5 % of each other.

By default: 126 A/A comparisons on the headline metrics (5 aliases and the twin, 7 cells,
3 runs), 288 over every metric, 3 x 42 for the old test on the same runs and 42 in blocks;
21 tries per slowdown. ``--fast``: one run, two aliases, stream 64 B and 128 KiB and rr
64 B, and quick's rr 64 B cell (``flushbench run --fast``) for repeatability. Runs are kept
with ``--keep DIR``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import _verdicts_stats as vs
import pandas as pd
from _common import cli, load_line, log_tail, run_suite, workdir
from _verdicts_plugin import ALIASES, SLOWED, countdown_overhead_ns
from _verdicts_stats import pct

from flushbench.analysis import verdicts as verdict_rules
from flushbench.analysis.ratios import run_comparisons
from flushbench.analysis.runs import StoredRun, open_runs
from flushbench.case import parse_size, size_label
from flushbench.suites import Suite, load_suite

BENCH = Path(__file__).resolve().parent
STREAM_SIZES = (64, 1024, 16384, 131072, 1048576)
RR_SIZES = (64, 16384)
FACTORS = (0.03, 0.05, 0.10)


class Bench:
    """The settings, the work directory, and the command lines run so far."""

    def __init__(self, args: argparse.Namespace, work: Path, budget: Suite) -> None:
        self.args, self.work, self.budget = args, work, budget
        self.rounds = args.rounds or budget.rounds
        self.values = args.values or budget.values
        self.value_time = args.value_time or budget.value_time
        self.commands: list[str] = []
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(BENCH), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.seed = args.seed if args.seed is not None else random.SystemRandom().randrange(
            1 << 30)
        aliases = ALIASES[:args.aliases]
        self.aliases = [cls.name for cls in aliases]
        slowed = [SLOWED[f] for f in args.factors]  # (for streams, for rr)
        self.slow = {"stream": [m.name for m, _ in slowed], "rr": [p.name for _, p in slowed]}
        self.factors = {c.name: c.factor for pair in slowed for c in pair}
        self.alias_plugins = [f"--strategy-plugin=_verdicts_plugin:{c.__name__}"
                              for c in aliases]
        self.slow_plugins = [f"--strategy-plugin=_verdicts_plugin:{c.__name__}"
                             for pair in slowed for c in pair]
        self.cells = [("stream", s) for s in args.stream_sizes] + [("rr", s)
                                                                    for s in args.rr_sizes]

    def settings(self) -> dict[str, int | float | str]:
        b = self.budget
        return {"rounds": self.rounds, "values": self.values, "warmups": b.warmups,
                "value_time": self.value_time, "timeout": b.timeout, "cc": b.cc}

    def write_suite(self, name: str, slowed: bool) -> Path:
        """The cells with sendall, the aliases and (``slowed``) the slowed strategies."""
        groups = [vs.Group(w, s, (vs.BASELINE, *self.aliases, *(self.slow[w] if slowed
                                                                 else ())),
                           vs.ops_of(self.budget, w, s)) for w, s in self.cells]
        path = self.work / f"{name}.toml"
        path.write_text(vs.suite_toml(name, f"bench_verdicts: {name}", self.settings(),
                                      groups))
        return path

    def run(self, suite: Path | str, label: str, extra: Sequence[str]) -> StoredRun | None:
        """One ``flushbench run``; its stored run, or None (the log shown) without one."""
        out = self.work / label
        before = load_line()
        wall, code, log = run_suite(str(suite), out, list(extra), env=self.env)
        cmd = ["python", "-m", "flushbench", "run", "--suite", str(suite), "--out", str(out),
               *extra]
        self.commands.append(f"PYTHONPATH={shlex.quote(self.env['PYTHONPATH'])} "
                             + shlex.join(cmd))
        print(f"{label}: {wall:.0f} s, exit {code} ({before}; after: {load_line()})",
              flush=True)
        runs = open_runs([out]) if (out / "table.csv").exists() else []
        if not runs or (code and not (out / "verdicts.csv").exists()):
            print(log_tail(log), file=sys.stderr)
            return None
        return runs[0]


def measure_verdicts(b: Bench) -> list[StoredRun]:
    """The runs holding aliases, slowed strategies and twins side by side."""
    suite = b.write_suite("verdicts", slowed=True)
    runs = []
    for i in range(b.args.runs):
        extra = ["--seed", str(b.seed + i), "--min-effect", str(b.args.min_effect),
                 *b.alias_plugins, *b.slow_plugins]
        run = b.run(suite, f"verdicts-{i + 1}", extra)
        if run is not None:
            runs.append(run)
    return runs


def countdown_share(runs: Sequence[StoredRun], overhead_ns: float) -> float:
    """The countdown's cost as a share of sendall's time per message, at its fastest cell."""
    shares = [overhead_ns * float(r["msgs_per_s"]) / 1e9 for run in runs
              for r in run.ok.to_dict("records") if r["strategy"] == vs.BASELINE]
    return max(shares, default=math.nan)


def welch(run: StoredRun, aliases: Sequence[str]) -> dict[str, Any]:
    """The old test on one run's A/A pairs (per-value rates, pairing ignored)."""
    rows = {str(r["case"]): r for r in run.table.to_dict("records")}

    def rates(cid: str) -> Any:
        row = rows.get(cid)
        return None if row is None or row["error"] else run.value_rates(row)

    pairs = vs.aa_pairs(run.meta.get("schedule", {}).get("comparisons", []), aliases)
    return vs.welch_counts(pairs, rates)


def by_trial(run: StoredRun, min_effect: float) -> pd.DataFrame:
    """The run's verdicts rebuilt from its trials' pooled figures (no slot pairing)."""
    trials = run.trials
    workloads = dict(zip(trials["case"].astype(str), trials["workload"].astype(str)))
    return verdict_rules.build(trials, run_comparisons(run), workloads, min_effect)


def blocks(b: Bench) -> dict[str, Any] | None:
    """One run in contiguous blocks (--rounds 1, R x V values per case), Welch's t."""
    suite = b.write_suite("verdicts-blocks", slowed=False)
    extra = ["--rounds", "1", "--values", str(b.rounds * b.values), "--seed", str(b.seed - 1),
             *b.alias_plugins]
    run = b.run(suite, "blocks", extra)
    return None if run is None else {**welch(run, b.aliases), "values": b.rounds * b.values}


def repeat(b: Bench) -> dict[str, Any] | None:
    """Ratio repeatability of two quick runs (or the two given with --from)."""
    if b.args.from_runs:
        runs = open_runs(b.args.from_runs)
        label = " and ".join(str(p) for p in b.args.from_runs)
    else:
        extra = [f"--filter={f}" for f in b.args.repeat_filter]
        extra += ["--fast"] if b.args.fast and not b.args.rounds else []
        extra += ["--rounds", str(b.args.rounds)] if b.args.rounds else []
        extra += ["--values", str(b.args.values)] if b.args.values else []
        got = [b.run("quick", f"quick-{x}", [*extra, "--seed", str(b.seed + 100 + i)])
               for i, x in enumerate("ab")]
        runs = [r for r in got if r is not None]
        label = "two back-to-back quick runs"
    if len(runs) != 2:
        print(f"repeatability: expected two runs, got {len(runs)}", file=sys.stderr)
        return None
    return {**vs.repeatability(runs[0].verdicts, runs[1].verdicts,
                               trials=(runs[0].trials, runs[1].trials)), "runs": label}


def figures(b: Bench, runs: Sequence[StoredRun]) -> dict[str, Any]:
    """A/A counts (paired, and the old test on the same runs) and the power table."""
    verdicts = pd.concat([r.verdicts for r in runs], ignore_index=True)
    rows = vs.power_rows(verdicts, b.factors)
    table = vs.power_table(rows)
    headline_aa = vs.aa_rows(verdicts, b.aliases, True)
    overhead = countdown_overhead_ns()
    effect = b.args.min_effect
    pooled = pd.concat([by_trial(r, effect) for r in runs], ignore_index=True)
    pooled_power = vs.power_table(vs.power_rows(pooled, b.factors))
    return {
        "aa": {"paired": vs.aa_counts(vs.aa_rows(verdicts, b.aliases), min_effect=effect),
               "paired_headline": vs.aa_counts(headline_aa, min_effect=effect),
               "cell_noise": vs.cell_noise(headline_aa),
               "welch_interleaved": vs.add_counts(welch(r, b.aliases) for r in runs),
               "by_trial": {**vs.aa_counts(vs.aa_rows(pooled, b.aliases), min_effect=effect),
                            "cell_noise": vs.cell_noise(vs.aa_rows(pooled, b.aliases, True)),
                            "power": pooled_power}},
        "power": {"table": table, "by_cell": vs.power_table(rows, by_cell=True),
                  "smallest_80": vs.smallest_detected(table),
                  "targets": vs.power_targets(table), "strategies": b.factors,
                  "countdown_ns": overhead,
                  "countdown_share_max": countdown_share(runs, overhead),
                  "tries": rows[["case", "factor", "verdict", "ratio", "ci_low", "ci_high",
                                 "slowdown"]].to_dict("records")}}


def summary(out: Mapping[str, Any]) -> list[str]:
    """The plain-text report of everything in ``out`` (what the JSON file holds)."""
    s = out["settings"]
    lines = [f"bench_verdicts: seed {s['seed']}"]
    aa = out.get("aa")
    if aa:
        lines[0] += (f"; {s['rounds']} rounds x {s['values']} values x {s['value_time']} s "
                     f"per case (the quick suite's budget), congestion control "
                     f"{s.get('cc') or 'of the host'}; cells {', '.join(s['cells'])}; "
                     f"{len(s['aliases'])} aliases; {s['runs']} run(s)")
        p, h = aa["paired"], aa["paired_headline"]
        lines += [f"A/A false positives (target <= {pct(vs.AA_TARGET, 0)}: "
                  f"{_met(p['share'] <= vs.AA_TARGET)}):",
                  f"  paired rounds (verdicts.csv): {_of(p)} comparisons called better or "
                  f"worse; headline metric only {_of(h)}",
                  f"    without BH (p < 0.05, interval and --min-effect): {p.get('without_bh')}"
                  f"; 95 % intervals excluding 1: "
                  f"{p.get('ci_excludes_1')}; median |ratio - 1| {pct(p.get('median_abs_dev'))}"
                  f"; by metric: " + ", ".join(f"{m} {c['called']}/{c['comparisons']}"
                                               for m, c in p.get("by_metric", {}).items()),
                  f"  old test (Welch's t on log per-value rates, pairing ignored), same runs: "
                  f"{_of(aa['welch_interleaved'])}"]
        lines += _by_trial(aa.get("by_trial"))
        if aa.get("welch_blocks"):
            lines.append(f"  old design (contiguous blocks, --rounds 1 --values "
                         f"{aa['welch_blocks']['values']}; Welch's t): {_of(aa['welch_blocks'])}")
    power = out.get("power")
    if power:
        lines += ["Power: slowed sendall called worse on the headline metric (target >= 80 % "
                  "at 5 %, >= 95 % at 10 %)",
                  f"  {'slowdown':>8} {'tries':>6} {'worse':>6} {'better':>6} {'share':>8}  "
                  "measured slowdown: median (range); worse without BH"]
        for r in power["table"]:
            lines.append(f"  {pct(r['factor'], 0):>8} {r['tries']:>6} {r['worse']:>6} "
                         f"{r['better']:>6} {pct(r['share']):>8}  {pct(r['slowdown_median'])}"
                         f" ({pct(r['slowdown_min'])} to {pct(r['slowdown_max'])}); "
                         f"{r.get('worse_without_bh', 'n/a')}")
        lines += _by_cell(power.get("by_cell") or [], (aa or {}).get("cell_noise") or [])
        met = ", ".join(f"{k}: {'n/a' if v is None else _met(v)}"
                        for k, v in power["targets"].items())
        lines += [f"  smallest slowdown called worse in >= 80 % of tries: "
                  f"{pct(power['smallest_80'], 0)}; targets met: {met}",
                  f"  (the countdown itself costs {power['countdown_ns']:.0f} ns per message, "
                  f"at most {pct(power['countdown_share_max'])} of sendall's time per message "
                  "in these runs)"]
    rep = out.get("repeat")
    if rep:
        lines += [f"Ratio repeatability ({rep['runs']}; target >= {pct(vs.REPEAT_TARGET, 0)}: "
                  f"{_met(rep['share'] >= vs.REPEAT_TARGET)}):",
                  f"  {rep['within']} of {rep['pairs']} case-to-baseline ratios within "
                  f"±{pct(rep['tolerance'], 0)} ({pct(rep['share'])}); median |B/A - 1| "
                  f"{pct(rep['median_dev'])}; by metric: " + ", ".join(
                      f"{m} {c['within']}/{c['pairs']}" for m, c in rep["by_metric"].items())]
        far = rep.get("far") or {}
        if far.get("pairs"):
            near = rep.get("near") or {}
            moved = ""
            if "fast_side_moved" in far:
                moved = (f"; between the runs their faster side's absolute figure moved by "
                         f"{pct(far['fast_side_moved'])}, the slower side's by "
                         f"{pct(far['slow_side_moved'])} (medians)")
            lines.append(f"  of them over 10x from 1 (one side in a timer, e.g. the 40 ms "
                         f"delayed-ACK trap): {far['within']}/{far['pairs']}{moved}; "
                         f"the rest: {near.get('within')}/{near.get('pairs')}")
        cells = rep.get("by_cell") or {}
        if cells:
            lines.append("  by cell: " + ", ".join(
                f"{c} {v['within']}/{v['pairs']}" for c, v in
                sorted(cells.items(), key=lambda kv: _cell_order(kv[0]))))
    lines.append(f"time: {out['elapsed_s'] / 60:.1f} min")
    return lines


def _by_trial(t: Mapping[str, Any] | None) -> list[str]:
    """The same runs paired by the trials' pooled figures (before slot pairing)."""
    if not t:
        return []
    power = ", ".join(f"{pct(r['factor'], 0)} {r['worse']}/{r['tries']}" for r in t["power"])
    noise = ", ".join(f"{n['cell']} {pct(n['round_sd'])}" for n in
                      sorted(t["cell_noise"], key=lambda n: _cell_order(str(n["cell"]))))
    return [f"  the same runs paired by the trials' pooled figures (no slot pairing): A/A "
            f"{_of(t)}; slowdowns called worse: {power}; A/A per-round sd: {noise}"]


def _by_cell(by_cell: Sequence[Mapping[str, Any]], noise: Sequence[Mapping[str, Any]]
             ) -> list[str]:
    """Per cell: worse/tries at each slowdown (without BH in brackets), and its A/A noise:
    the per-round sd of the log ratio and about how many rounds 80 % power at 5 % needs."""
    if not by_cell:
        return []
    factors = sorted({float(r["factor"]) for r in by_cell})
    noisy = {str(n["cell"]): n for n in noise}
    lines = ["  per cell: worse/tries (without BH) at " + ", ".join(pct(f, 0) for f in factors)
             + "; A/A per-round sd; rounds for 80 % power at 5 % (before BH)"]
    for cell in sorted({str(r["cell"]) for r in by_cell}, key=_cell_order):
        got = {float(r["factor"]): r for r in by_cell if r["cell"] == cell}
        tries = "  ".join(f"{got[f]['worse']}/{got[f]['tries']} ({got[f]['worse_without_bh']})"
                          if f in got else "-" for f in factors)
        n = noisy.get(cell)
        tail = f"sd {pct(n['round_sd'])}, ~{n['rounds_for_effect']} rounds" if n else "-"
        lines.append(f"    {cell:<13} {tries}   {tail}")
    return lines


def _cell_order(cell: str) -> tuple[str, int]:
    workload, _, size = cell.partition(" s")
    try:
        return workload, parse_size(size)
    except ValueError:
        return workload, 0


def _of(c: Mapping[str, Any]) -> str:
    return f"{c['called']} of {c['comparisons']} ({pct(c['share'])})"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _sizes(text: str) -> list[int]:
    return [parse_size(t) for t in text.split(",") if t.strip()]


def _factors(text: str) -> list[float]:
    out = [float(t) for t in text.split(",") if t.strip()]
    if not out or any(f not in SLOWED for f in out):
        raise argparse.ArgumentTypeError(
            f"slowdowns are some of {','.join(f'{f:g}' for f in SLOWED)}")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", type=Path, help="write every figure as JSON here")
    p.add_argument("--fast", action="store_true", help="a small version (see above)")
    p.add_argument("--runs", type=int, help="runs of the verdicts suite (default 3; fast 1)")
    p.add_argument("--aliases", type=int, help=f"names for sendall, 1..{len(ALIASES)} "
                   "(default 5; fast 2)")
    p.add_argument("--factors", type=_factors, default=list(FACTORS),
                   help="slowdowns to detect (default 0.03,0.05,0.1)")
    p.add_argument("--stream-sizes", type=_sizes, help="default 64,1K,16K,128K,1M")
    p.add_argument("--rr-sizes", type=_sizes, help="default 64,16K ('' for none)")
    p.add_argument("--rounds", type=int, help="instead of the quick suite's (every run)")
    p.add_argument("--values", type=int, help="instead of the quick suite's (every run)")
    p.add_argument("--value-time", type=float,
                   help="seconds per value instead of the quick suite's (every run)")
    p.add_argument("--min-effect", type=float, default=0.03, help="as flushbench run's")
    p.add_argument("--seed", type=int, help="first seed (default: a fresh one, printed)")
    p.add_argument("--no-blocks", dest="blocks", action="store_false",
                   help="skip the contiguous-block run (old design)")
    p.add_argument("--no-repeat", dest="repeat", action="store_false",
                   help="skip the two quick runs (repeatability)")
    p.add_argument("--only-repeat", action="store_true", help="only the repeatability")
    p.add_argument("--from", dest="from_runs", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"),
                   help="repeatability from two stored runs instead of two quick runs")
    p.add_argument("--repeat-filter", action="append", default=[],
                   help="--filter for the quick runs (default none; fast 'rr-*-s64-*')")
    p.add_argument("--keep", type=Path, help="keep the runs here (default: a temp dir)")
    a = p.parse_args(argv)
    a.runs = a.runs or (1 if a.fast else 3)
    a.aliases = a.aliases or (2 if a.fast else 5)
    a.stream_sizes = a.stream_sizes if a.stream_sizes is not None else (
        [64, 131072] if a.fast else list(STREAM_SIZES))
    a.rr_sizes = a.rr_sizes if a.rr_sizes is not None else ([64] if a.fast else list(RR_SIZES))
    a.repeat_filter = a.repeat_filter or (["rr-*-s64-*"] if a.fast else [])
    if not 1 <= a.aliases <= len(ALIASES) or a.runs < 1 or (a.rounds or 2) < 2 \
            or not (a.stream_sizes or a.rr_sizes) or (a.value_time or 1) <= 0:
        p.error(f"--aliases is 1..{len(ALIASES)}, --runs >= 1, --rounds >= 2, "
                "--value-time > 0, and some sizes")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"argv": [sys.executable, *sys.argv], "before": load_line()}
    with workdir(args.keep, "flushbench-verdicts-") as work:
        b = Bench(args, work.resolve(), load_suite("quick"))
        out["settings"] = {**b.settings(), "runs": args.runs, "seed": b.seed,
                           "aliases": b.aliases, "slowed": b.factors,
                           "min_effect": args.min_effect,
                           "cells": [f"{w} {size_label(s)}" for w, s in b.cells]}
        failed = False
        if not args.only_repeat:
            runs = measure_verdicts(b)
            failed = len(runs) < args.runs
            if runs:
                out.update(figures(b, runs))
                if args.blocks:
                    out["aa"]["welch_blocks"] = blocks(b)
                    failed = failed or out["aa"]["welch_blocks"] is None
        if args.repeat or args.from_runs or args.only_repeat:
            out["repeat"] = repeat(b)
            failed = failed or out["repeat"] is None
        out.update(commands=b.commands, after=load_line(), elapsed_s=time.perf_counter() - t0)
        print("\n".join(summary(out)), flush=True)
    if args.output:
        args.output.write_text(json.dumps(plain(out), indent=1, allow_nan=False) + "\n")
        print(f"figures: {args.output}")
    return 1 if failed else 0


def plain(value: Any) -> Any:
    """JSON-ready: NaN and infinities as null, numpy scalars and paths as plain values."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


if __name__ == "__main__":
    sys.exit(cli(main, "bench_verdicts"))
