"""A run's noise floor, from its A/A twins.

Each cell's baseline is measured twice per round under two labels (``analysis/cells.py``);
the twin's verdicts against its baseline (axis "A/A" in verdicts.csv) are comparisons of
identical code. How many of them came out "better" or "worse" is the run's own false-positive
count, and the widest reach of their intervals is how small a difference this run can tell
from noise. Numbers only: the words are in ``report/verdicts.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .cells import AA


@dataclass(frozen=True)
class NoiseFloor:
    """The A/A twins of one run: counts and the widest interval."""

    twins: int = 0  # twin cases with at least one verdict row
    comparisons: int = 0  # twin verdict rows with data (a twin x a metric)
    better: int = 0
    worse: int = 0
    no_data: int = 0  # twin verdict rows without data (a side failed, or too few rounds)
    widest: float = math.nan  # max |interval - 1| over the rows with data (0.04 = ±4 %)
    widest_case: str = ""  # the twin and metric with that interval
    widest_metric: str = ""
    by_metric: dict[str, float] = field(default_factory=dict)  # the widest reach per metric
    flagged: tuple[tuple[str, str, str], ...] = ()  # (twin, metric, verdict) not "same"

    @property
    def measured(self) -> bool:
        """Whether the run has any A/A comparison with data."""
        return self.comparisons > 0

    @property
    def called_different(self) -> int:
        """Twin comparisons that came out better or worse: false positives, by design."""
        return self.better + self.worse


def noise_floor(verdicts: pd.DataFrame) -> NoiseFloor:
    """The noise floor of a run's verdicts (an empty NoiseFloor without A/A rows)."""
    if verdicts.empty or "axis" not in verdicts.columns:
        return NoiseFloor()
    aa = verdicts[verdicts["axis"] == AA]
    if aa.empty:
        return NoiseFloor()
    low = pd.to_numeric(aa["ci_low"], errors="coerce").to_numpy(dtype=float)
    high = pd.to_numeric(aa["ci_high"], errors="coerce").to_numpy(dtype=float)
    known = np.isfinite(low) & np.isfinite(high) & (aa["verdict"] != "no data").to_numpy()
    data = aa[known]
    reaches = np.maximum(np.abs(high[known] - 1.0), np.abs(1.0 - low[known]))
    widest, case, metric = math.nan, "", ""
    by_metric: dict[str, float] = {}
    # the widest reach on the figures a verdict is read on: segments per message of a tiny
    # Nagle-batched stream (0.002 per message) move with each value's one tail segment
    judged = [i for i in range(reaches.size) if str(data["metric"].iloc[i]) != "segs_per_msg"]
    if reaches.size:
        order = sorted(judged or range(reaches.size),
                       key=lambda i: (-reaches[i], str(data["case"].iloc[i]),
                                      str(data["metric"].iloc[i])))
        widest = float(reaches[order[0]])
        case, metric = str(data["case"].iloc[order[0]]), str(data["metric"].iloc[order[0]])
        for name, value in zip(data["metric"], reaches, strict=True):
            by_metric[str(name)] = max(by_metric.get(str(name), 0.0), float(value))
    verdict = data["verdict"].astype(str)
    flagged = tuple(sorted((str(c), str(m), str(v)) for c, m, v in
                           zip(data["case"], data["metric"], verdict, strict=True)
                           if v in ("better", "worse")))
    return NoiseFloor(twins=int(aa["case"].nunique()), comparisons=int(known.sum()),
                      better=int((verdict == "better").sum()),
                      worse=int((verdict == "worse").sum()),
                      no_data=int((~known).sum()), widest=widest, widest_case=case,
                      widest_metric=metric, by_metric=dict(sorted(by_metric.items())),
                      flagged=flagged)
