"""How still does this host hold? The ceiling on run-to-run agreement that no harness can beat.

    python bench/bench_hostdrift.py [--seconds 360] [--run-seconds 90] [--out FILE.json]

Runs flushbench's host-speed probe (``flushbench.run.hostspeed``: a fixed pure-Python loop)
back to back on every CPU at once, one process pinned per CPU, in 0.1 s slices, for
``--seconds``. Then it asks what a perfect harness would see: take two back-to-back windows of
``--run-seconds`` (two runs of a suite), average the probe over each whole window, and compare.
A case that moves with the CPU's speed can agree between two runs no better than those
whole-window means do, however its values are spread over the run. Printed per CPU: the
spread of the probe at several time scales, and the share of window pairs (every start offset)
whose means agree within ±10 %.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from flushbench.run import hostspeed  # noqa: E402

SLICE_S = 0.1
TOLERANCE = 0.10


def _probe_cpu(cpu: int, seconds: float) -> list[float]:
    os.sched_setaffinity(0, {cpu})
    rates, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        rates.append(hostspeed.probe_here(SLICE_S))
    return rates


def agreement(rates: list[float], run_slices: int, tolerance: float = TOLERANCE) -> dict:
    """Whole-window means of two back-to-back windows, at every start offset."""
    ratios = []
    for start in range(0, len(rates) - 2 * run_slices + 1):
        a = statistics.fmean(rates[start:start + run_slices])
        b = statistics.fmean(rates[start + run_slices:start + 2 * run_slices])
        ratios.append(b / a)
    if not ratios:
        return {"pairs": 0}
    within = sum(abs(r - 1) <= tolerance for r in ratios)
    return {"pairs": len(ratios), "within": within, "fraction": within / len(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios)}


def spread(rates: list[float], block: int) -> float:
    means = [statistics.fmean(rates[i:i + block]) for i in range(0, len(rates) - block + 1, block)]
    return statistics.pstdev(means) / statistics.fmean(means) if len(means) > 1 else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=360.0, help="probe this long (default 360)")
    p.add_argument("--run-seconds", type=float, default=90.0,
                   help="length of one suite run to compare (default 90)")
    p.add_argument("--out", type=Path, help="write the series and the summary as JSON")
    args = p.parse_args(argv)
    if args.seconds < 2 * args.run_seconds + 1:
        p.error("--seconds must exceed twice --run-seconds")
    cpus = hostspeed.probe_cpus()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(len(cpus)) as pool:
        series = pool.starmap(_probe_cpu, [(c, args.seconds) for c in cpus])
    run_slices = int(args.run_seconds / SLICE_S)
    summary = {}
    print(f"host-speed probe, {args.seconds:.0f} s on CPUs {cpus}, {SLICE_S} s slices; "
          f"two back-to-back {args.run_seconds:.0f} s runs compared by whole-run mean")
    for cpu, rates in zip(cpus, series):
        agr = agreement(rates, run_slices)
        med = statistics.median(rates)
        summary[str(cpu)] = {"median": med, **agr, **{f"rsd_{b * SLICE_S:g}s": spread(rates, b)
                                                      for b in (1, 10, 100)}}
        print(f"cpu{cpu}: median {med:.2f} M loops/s; spread (rsd) 0.1 s "
              f"{spread(rates, 1):.1%}, 1 s {spread(rates, 10):.1%}, 10 s "
              f"{spread(rates, 100):.1%}; whole-run means within ±{TOLERANCE:.0%} in "
              f"{agr['within']} of {agr['pairs']} pairs ({agr['fraction']:.0%}), B/A "
              f"{agr['ratio_min']:.2f}-{agr['ratio_max']:.2f}")
    if args.out:
        args.out.write_text(json.dumps({
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv,
            "slice_s": SLICE_S, "seconds": args.seconds, "run_seconds": args.run_seconds,
            "tolerance": TOLERANCE, "summary": summary,
            "series": {str(c): [round(x, 3) for x in r] for c, r in zip(cpus, series)}},
            indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
