"""Cross-run and cross-machine comparison, built only from stored runs.

Cases are aligned by id (by id without the transport suffix when every run used a single,
different transport); the first run is the reference. Per case: the ratio of the headline
figure (throughput for stream/file, p50 latency for rr/wwr/pipeline) to the reference, a
95 % interval and a significance mark, all from scipy:

* throughput: Welch's t-test on log per-value rates; the ratio is that of geometric means;
* latency: the p50 of every timed value (samples with ``ops_per_value``) is one
  observation; ratio of their geometric means with Welch's t interval on the logs. Runs
  whose samples lack ``ops_per_value`` fall back to a percentile bootstrap
  (``scipy.stats.bootstrap``) of the pooled p50 ratio with Mann–Whitney U; pooled operations
  are not independent, so that interval understates the noise between runs.

A case is significant when its interval excludes 1. Cases present in only some runs, or
failed in some, are kept with a status instead of being dropped.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import pandas as pd

from ..case import THROUGHPUT_WORKLOADS, WORKLOADS, headline
from ..errors import UsageError
from ..measure.sink import UNRECORDED
from .runs import StoredRun
from .stats import Comparison, compare_latency, compare_rates, geomean

COLUMNS = ["key", "workload", "metric", "reference", "run", "ref_case", "case", "ref_value",
           "value", "ratio", "ci_low", "ci_high", "p_value", "significant", "better", "method",
           "status"]


def align(runs: Sequence[StoredRun]) -> tuple[list[dict[str, Any]], str]:
    """Per run, its rows by alignment key; and how the keys were made."""
    transports = [set(r.table["transport"].astype(str)) for r in runs]
    strip = all(len(t) == 1 for t in transports) and len(set.union(*transports)) > 1
    keyed = []
    for run in runs:
        rows = {}
        for row in run.table.to_dict("records"):
            key, suffix = str(row["case"]), "-" + str(row["transport"])
            if strip and key.endswith(suffix):
                key = key[: -len(suffix)]
            elif strip and key.endswith(suffix + "-twin"):  # an A/A twin: "…-loopback-twin"
                key = key[: -len(suffix + "-twin")] + "-twin"
            rows[key] = row
        keyed.append(rows)
    how = ("case id without its transport (each run used one transport)" if strip
           else "case id")
    return keyed, how


def _num(x: Any) -> float:
    v = pd.to_numeric(x, errors="coerce")
    return float(v) if v is not None and not pd.isna(v) else math.nan


def _compare_case(ref_run: StoredRun, ref: Mapping[Hashable, Any], run: StoredRun,
                  row: Mapping[Hashable, Any]) -> Comparison | None:
    if row["workload"] in THROUGHPUT_WORKLOADS:
        return compare_rates(ref_run.value_rates(ref), run.value_rates(row))
    ref_p50s = ref_run.value_p50s_us(str(ref["case"]))
    p50s = run.value_p50s_us(str(row["case"]))
    if ref_p50s is not None and p50s is not None:
        return compare_rates(ref_p50s, p50s, "Welch t on log per-value p50")
    return compare_latency(ref_run.latencies_us(str(ref["case"])),
                           run.latencies_us(str(row["case"])))


def compare_frame(runs: Sequence[StoredRun]) -> pd.DataFrame:
    """The comparison table: one row per aligned case and compared run (long format)."""
    if len(runs) < 2:
        raise UsageError("compare needs at least two runs (the first is the reference)")
    keyed, how = align(runs)
    ref_run, ref_rows = runs[0], keyed[0]
    all_keys = sorted(set().union(*keyed), key=lambda k: _order(k, keyed))
    out = []
    for run, rows in zip(runs[1:], keyed[1:], strict=True):
        for key in all_keys:
            ref, row = ref_rows.get(key), rows.get(key)
            some = row or ref
            if some is None:  # only in a third run: listed under that run
                continue
            metric = headline(str(some["workload"]))
            rec: dict[str, Any] = dict.fromkeys(COLUMNS, math.nan)
            rec.update(key=key, workload=some["workload"], metric=metric.label,
                       reference=ref_run.label, run=run.label, method="", better=pd.NA,
                       significant=False, ref_case=ref["case"] if ref else "",
                       case=row["case"] if row else "")
            status = ("missing in the reference" if ref is None else
                      f"missing in {run.label}" if row is None else
                      "failed in the reference" if ref["error"] else
                      f"failed in {run.label}" if row["error"] else "ok")
            if status == "ok":
                assert ref is not None and row is not None
                rec["ref_value"], rec["value"] = _num(ref[metric.column]), _num(row[metric.column])
                test = _compare_case(ref_run, ref, run, row)
                if test is None and rec["ref_value"] > 0 and rec["value"] > 0:
                    test = Comparison(rec["value"] / rec["ref_value"], method="table values")
                if test is None:
                    status = "no data"
                else:
                    rec.update(ratio=test.ratio, ci_low=test.low, ci_high=test.high,
                               p_value=test.p_value, significant=test.significant,
                               method=test.method,
                               better=(test.ratio > 1) == metric.higher_is_better)
            rec["status"] = status
            out.append(rec)
    frame: pd.DataFrame = pd.DataFrame(out, columns=COLUMNS)
    frame.attrs["aligned_by"] = how
    return frame


def _order(key: str, keyed: list[dict[str, Any]]) -> tuple[int, str, int, str]:
    row = next(rows[key] for rows in keyed if key in rows)
    wl = str(row["workload"])
    size = pd.to_numeric(row.get("msg_size"), errors="coerce")
    return (WORKLOADS.index(wl) if wl in WORKLOADS else 99, str(row["strategy"]),
            0 if pd.isna(size) else int(size), key)


def geomeans(frame: pd.DataFrame) -> pd.DataFrame:
    """Geometric mean of the ratios per compared run and workload (finished cases only)."""
    rows = []
    for (run, workload), part in frame[frame["status"] == "ok"].groupby(["run", "workload"],
                                                                         sort=False):
        hib = headline(str(workload)).higher_is_better
        rows.append({"run": run, "workload": workload, "metric": part["metric"].iloc[0],
                     "cases": len(part), "geomean ratio": geomean(part["ratio"].tolist()),
                     "significantly better": int((part["significant"] & part["better"]
                                                  .fillna(False).astype(bool)).sum()),
                     "significantly worse": int((part["significant"] & ~part["better"]
                                                 .fillna(True).astype(bool)).sum()),
                     "better if": "higher" if hib else "lower"})
    geo: pd.DataFrame = pd.DataFrame(rows, columns=[
        "run", "workload", "metric", "cases", "geomean ratio", "significantly better",
        "significantly worse", "better if"])
    return geo


def host_speed(runs: Sequence[StoredRun]) -> pd.DataFrame:
    """Per compared run: the host CPU probe's geometric-mean ratio to the reference.

    Over the cases both runs finished (aligned as :func:`compare_frame` aligns them), each
    case's ``host_speed`` (hostspeed.py) against the reference's; no row for a run without
    the probe. A shift here moves every figure, so it is shown beside the workloads'
    geometric means.
    """
    keyed, _ = align(runs)
    ref = keyed[0]
    rows = []
    for run, by_key in zip(runs[1:], keyed[1:], strict=True):
        pairs = [(_num(row["host_speed"]), _num(ref[key]["host_speed"]))
                 for key, row in by_key.items()
                 if key in ref and not row["error"] and not ref[key]["error"]]
        ratios = [r for a, b in pairs if b > 0 and math.isfinite(r := a / b) and r > 0]
        if ratios:
            rows.append({"run": run.label, "workload": "host CPU (probe)",
                         "metric": "host_speed", "cases": len(ratios),
                         "geomean ratio": geomean(ratios), "significantly better": "–",
                         "significantly worse": "–", "better if": "–"})
    speed: pd.DataFrame = pd.DataFrame(rows)
    return speed


META_FIELDS = [("transport", ("transport",)), ("link", ("link",)), ("suite", ("suite", "name")),
               ("peer sink", ("peer_sink",)),  # a copying peer moves stream figures
               ("created", ("created",)), ("flushbench", ("flushbench_version",)),
               ("pyperf processes×values", ("pyperf",))]
HOST_FIELDS = ["cpu_model", "cpu_count", "kernel", "python", "io_default_buffer_size"]


def _get(meta: dict[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = meta
    for part in path:
        cur = cur.get(part) if isinstance(cur, dict) else None
    if path == ("peer_sink",) and cur is None:
        return UNRECORDED
    if path == ("pyperf",) and isinstance(cur, dict):
        return f"{cur.get('processes')}×{cur.get('values')} (warmups {cur.get('warmups')})"
    return cur


def copied_cases(table: pd.DataFrame) -> int | None:
    """How many of a run's cases the peer said it copied for (table.csv ``peer_sink``: a
    discarding run's cells with a TLS or unix case); None for a table without the column."""
    if "peer_sink" not in table.columns:
        return None
    return int((table["peer_sink"] == "copy").sum())


def _sink(run: StoredRun) -> str:
    """The run's peer sink, and the cases a discarding peer copied for all the same."""
    said = str(_get(run.meta, ("peer_sink",)))
    copied = copied_cases(run.table) if said == "discard" else None
    return f"{said} (copy: {copied} cases)" if copied else said


def metadata_diff(runs: Sequence[StoredRun]) -> pd.DataFrame:
    """What differs between the runs' machines and set-ups (``differs`` marks it)."""
    fields: list[tuple[str, tuple[str, ...]]] = list(META_FIELDS)
    for side in ("client", "peer"):
        fields += [(f"{side} {f}", (side, f)) for f in HOST_FIELDS]
        for group, leaf in (("sysctls", None), ("interfaces", "mtu")):
            names = sorted(set().union(*[(r.meta.get(side) or {}).get(group) or {}
                                         for r in runs]))
            for name in names:
                path = (side, group, name) + ((leaf,) if leaf else ())
                fields.append((f"{side} {name}" + (f" {leaf}" if leaf else ""), path))
    rows = []
    for label, path in fields:
        values = [_sink(r) if path == ("peer_sink",) else
                  "–" if (v := _get(r.meta, path)) is None else str(v) for r in runs]
        rows.append({"field": label, **{r.label: v for r, v in zip(runs, values, strict=True)},
                     "differs": len(set(values)) > 1})
    diff: pd.DataFrame = pd.DataFrame(rows)
    return diff


def coverage(frame: pd.DataFrame) -> pd.DataFrame:
    """Cases that are missing or failed in some run."""
    missing: pd.DataFrame = frame[frame["status"].str.startswith(("missing", "failed"))][
        ["key", "run", "status"]].reset_index(drop=True)
    return missing
