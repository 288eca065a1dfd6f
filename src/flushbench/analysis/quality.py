"""Quality findings: results not to trust as they are (like pyperf's ``format_checks``).

One list, computed here from a run's table and shown by both the terminal and the report
(their words are in :func:`flushbench.report.format.finding_sentence`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

NOISY_RSD = 0.10  # per-value rates spread more than this: say so
FEW_SAMPLES = 1000  # latency cases with fewer samples: their tail rests on few requests
LATENCY_WORKLOADS = ("rr", "wwr", "pipeline")


@dataclass(frozen=True)
class Finding:
    """One kind of problem, the cases it concerns (worst first) and its figures."""

    kind: str  # noisy | few_samples | host_speed | option_mismatch | failed
    cases: tuple[str, ...] = ()
    values: tuple[float, ...] = ()  # per case where it has one (noisy: the spread)
    figures: dict[str, float] = field(default_factory=dict)
    detail: str = ""  # option_mismatch: the kernel's words


def _num(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce")


def findings(table: pd.DataFrame) -> list[Finding]:
    """Every finding of one run's table, in a fixed order."""
    out: list[Finding] = []
    ok = table[table["error"] == ""]
    rsd = _num(ok, "rate_rsd").fillna(0)
    noisy = ok.assign(_rsd=rsd)[rsd > NOISY_RSD].sort_values(["_rsd", "case"],
                                                            ascending=[False, True])
    if len(noisy):
        out.append(Finding("noisy", tuple(noisy["case"]), tuple(noisy["_rsd"].astype(float)),
                           {"threshold": NOISY_RSD}))
    lat = ok[ok["workload"].isin(LATENCY_WORKLOADS)]
    few = lat[_num(lat, "lat_samples").fillna(0) < FEW_SAMPLES]
    if len(few):
        out.append(Finding("few_samples", tuple(sorted(few["case"])),
                           figures={"threshold": FEW_SAMPLES}))
    speed = _num(table, "host_speed").dropna()
    if len(speed) > 1:
        med = float(speed.median())
        out.append(Finding("host_speed", figures={"median": med, "low": speed.min() / med,
                                                  "high": speed.max() / med}))
    for text, group in ok[ok["opt_mismatch"] != ""].groupby("opt_mismatch", sort=True):
        out.append(Finding("option_mismatch", tuple(sorted(group["case"])), detail=str(text)))
    failed = table[table["error"] != ""]
    if len(failed):
        out.append(Finding("failed", tuple(failed["case"])))
    return out
