"""Does the peer's receive copy decide a stream's figures? The peer's two sinks side by side.

    python bench/bench_peer_sink.py [--pairs 4] [--sizes 1M] [--suite quick] [-o FILE.json]
                                    [--keep DIR]
    nox -s perf -- peer_sink [ARGS]

Each pair is two ``flushbench run --suite quick --workload stream --size S`` (loopback in
the clear: ``--filter transport=loopback --filter tls=off``) in a random order, one with
``--peer-sink discard`` (the peer drops one-way data in the kernel, MSG_TRUNC) and one with
``--peer-sink copy`` (it copies it into a page-aligned buffer).
For each run and size: how far the send paths' per-round ratios to ``sendall`` scatter
(the standard deviation over rounds of ln(case / sendall), averaged over the cell's cases:
what the verdicts' intervals are made of), the median half-width of those intervals in
verdicts.csv, the A/A twin's ratio, the peer's CPU time per MiB, and ``sendall``'s median
throughput. The medians over pairs are printed per sink.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import cli, load_line, log_tail, run_suite, workdir  # noqa: E402

from flushbench.case import parse_size, size_id  # noqa: E402

SINKS = ("discard", "copy")


def cell_figures(run: Path, size: int) -> dict[str, float]:
    """One run's figures for the stream cell of ``size`` (see the module's docstring)."""
    trials = pd.read_csv(run / "trials.csv", keep_default_na=False, na_values=[""])
    base = f"stream-sendall-s{size_id(size)}-p2-nd0-sbauto-loopback"
    twin = f"{base}-twin"

    def cell_of(case: str) -> str:  # the id without its strategy and twin mark
        parts = case.removesuffix("-twin").split("-")
        return "-".join(parts[:1] + parts[2:])

    cell = trials[trials["case"].map(cell_of) == cell_of(base)]
    by_case = {case: rows.set_index("round")["throughput_bps"].astype(float)
               for case, rows in cell.groupby("case")}
    if base not in by_case:
        raise SystemExit(f"bench_peer_sink: {run} has no {base}")
    spreads = []
    for case, series in by_case.items():
        if case in (base, twin):
            continue
        logs = (series / by_case[base]).dropna().map(math.log)
        if len(logs) >= 2:
            spreads.append(statistics.stdev(logs))
    verdicts = pd.read_csv(run / "verdicts.csv", keep_default_na=False, na_values=[""])
    mine = verdicts[(verdicts["baseline"] == base) & (verdicts["metric"] == "throughput_bps")]
    halves = [math.sqrt(hi / lo) - 1 for lo, hi in zip(mine["ci_low"], mine["ci_high"])
              if lo > 0 and hi > 0]
    twin_ratio = float("nan")
    if twin in by_case:
        logs = (by_case[twin] / by_case[base]).dropna().map(math.log)
        twin_ratio = math.exp(statistics.fmean(logs))
    peer = cell["cpu_s_per_gb_peer"].astype(float).median() * 1e6 / (1e9 / 2**20)
    nan = float("nan")  # a cell of sendall and its twin alone has no other case
    return {"spread": statistics.fmean(spreads) if spreads else nan,
            "ci_half": statistics.median(halves) if halves else nan,
            "twin": twin_ratio, "peer_us_per_mib": peer,
            "sendall_gbps": by_case[base].median() / 1e9, "cases": len(spreads)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=4, help="pairs of runs (default 4)")
    parser.add_argument("--sizes", default="1M", help="stream sizes, e.g. 128K,1M (default 1M)")
    parser.add_argument("--suite", default="quick", help="the suite (default quick)")
    parser.add_argument("-o", "--output", type=Path, help="write the figures as JSON")
    parser.add_argument("--keep", type=Path, help="keep the runs in this directory")
    args = parser.parse_args()
    try:
        sizes = [parse_size(s) for s in args.sizes.split(",")]
    except ValueError as exc:
        parser.error(f"--sizes: {exc}")
    if not 1 <= args.pairs <= 50:
        parser.error("--pairs must be in 1..50")
    print(load_line(), flush=True)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with workdir(args.keep, "peer-sink-") as work:
        for pair in range(args.pairs):
            for sink in random.sample(SINKS, len(SINKS)):
                out = work / f"p{pair}-{sink}"
                # loopback TCP in the clear only: a cell with a TLS or unix case copies
                # whatever --peer-sink says (measure/sink.py for_cases)
                wall, code, log = run_suite(args.suite, out, [
                    "--workload", "stream", "--size", ",".join(map(size_id, sizes)),
                    "--filter", "transport=loopback", "--filter", "tls=off",
                    "--peer-sink", sink, "-q"])
                if code != 0:
                    print(f"run {out.name} failed (exit {code}):\n{log_tail(log)}",
                          file=sys.stderr)
                    return 1
                for size in sizes:
                    rows.append({"pair": pair, "sink": sink, "size": size, "wall_s": wall,
                                 **cell_figures(out, size)})
    print(f"{args.pairs} pairs of runs in {time.perf_counter() - start:.0f} s; medians over "
          "pairs (the spread: sd over rounds of ln(case / sendall), mean over the cell)")
    print(f"{'size':>5} {'sink':8} {'spread':>7} {'CI ±':>6} {'twin':>6} "
          f"{'peer us/MiB':>11} {'sendall Gbit/s':>14}")
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for size in sizes:
        for sink in SINKS:
            mine = [r for r in rows if r["size"] == size and r["sink"] == sink]
            med = {k: statistics.median(r[k] for r in mine)
                   for k in ("spread", "ci_half", "twin", "peer_us_per_mib", "sendall_gbps")}
            summary.setdefault(size_id(size), {})[sink] = med
            print(f"{size_id(size):>5} {sink:8} {med['spread']:7.3f} "
                  f"{med['ci_half']:6.1%} {med['twin']:6.3f} {med['peer_us_per_mib']:11.0f} "
                  f"{med['sendall_gbps']:14.1f}")
    if args.output:
        args.output.write_text(json.dumps({"argv": sys.argv, "rows": rows,
                                           "summary": summary,
                                           "elapsed_s": time.perf_counter() - start},
                                          indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(cli(main, "bench_peer_sink"))
