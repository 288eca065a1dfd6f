"""What flushbench can run, as text or records: ``list``, ``run --dry-run`` and the records
of ``compare --format``.

The records are stable schemas (docs/design.md, "Output formats"):

- ``list``: kind (strategy, workload, suite, id-token), name, summary, cases (suites),
  unavailable (why a strategy cannot run here, else empty).
- ``run --dry-run``: case, estimate_s (its trials over all rounds), skipped (why the run's
  transport cannot measure it, else empty).
- ``compare``: comparison (ratio_of_ratios or absolute), then the columns of
  :func:`flushbench.analysis.ratios.ratio_frame` or
  :func:`flushbench.analysis.compare.compare_frame`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import FlushbenchError

if TYPE_CHECKING:
    import pandas as pd

    from .analysis.runs import StoredRun
    from .run.options import RunOptions

# The case id, token by token (flushbench.case.Case.id); also in the README.
ID_GRAMMAR: tuple[tuple[str, str], ...] = (
    ("WORKLOAD", "stream, file, rr, wwr or pipeline (first)"),
    ("STRATEGY", "the send path: sendall, makefile, sendmsg … (second)"),
    ("s<size>", "message size: s64, s16K, s1M"),
    ("p<n>", "parts per message (header + body pieces); not for file"),
    ("nd0 / nd1", "TCP_NODELAY off / on"),
    ("sbauto / sb<size>", "SO_SNDBUF left to autotuning / set"),
    ("rb<size>", "the peer's SO_RCVBUF, when set"),
    ("lw<size>", "TCP_NOTSENT_LOWAT, when set"),
    ("r<size>", "reply size (rr, pipeline), when not the default"),
    ("k<n>", "messages per request (pipeline)"),
    ("b<size>", "makefile's buffer size, when set"),
    ("tls12 / tls13", "over TLS 1.2 / 1.3"),
    ("c<n>-<driver>", "n connections driven by threads, selectors, asyncio, uvloop or trio"),
    ("TRANSPORT", "loopback, unix, emulated (--link) or remote (--peer)"),
    ("twin", "the A/A control: the cell's baseline measured again under a second name"),
)
FILTER_HELP = ("select with -f PATTERN (a glob or substring of the id, or key=value such as "
               "workload=rr, size=16K, nodelay=on, sndbuf=auto), or --workload, --strategy, "
               "--size, --nodelay, --sndbuf; every selector must hold")


def _out(records: list[dict[str, Any]], fmt: str, path: Path | None) -> None:
    import pandas as pd

    from .report.export import write_records

    write_records(pd.DataFrame.from_records(records).convert_dtypes(), fmt, path)


def list_records() -> list[dict[str, Any]]:
    from .case import WORKLOADS
    from .measure import strategies
    from .measure.plugins import load_entry_points
    from .suites import available_suites, load_suite

    load_entry_points()
    out: list[dict[str, Any]] = []
    for name, cls in strategies.REGISTRY.items():
        out.append({"kind": "strategy", "name": name, "summary": cls.summary, "cases": None,
                    "unavailable": cls.unavailable() or "",
                    "tls": f"unavailable over TLS: {cls.tls_unavailable}"
                    if cls.tls_unavailable else cls.tls_note or ""})
    out += [{"kind": "workload", "name": name, "summary": "", "cases": None,
             "unavailable": "", "tls": ""} for name in WORKLOADS]
    for name, path in available_suites().items():
        try:
            suite = load_suite(str(path))
            out.append({"kind": "suite", "name": name, "summary": suite.description,
                        "cases": len(suite.cases), "unavailable": "", "tls": ""})
        except FlushbenchError as exc:
            out.append({"kind": "suite", "name": name, "summary": "", "cases": None,
                        "unavailable": f"broken: {exc}", "tls": ""})
    out += [{"kind": "id-token", "name": token, "summary": meaning, "cases": None,
             "unavailable": "", "tls": ""} for token, meaning in ID_GRAMMAR]
    return out


def list_all(fmt: str, path: Path | None) -> int:
    """``flushbench list``: strategies, workloads, suites and how to read a case id."""
    records = list_records()
    if fmt != "table":
        _out(records, fmt, path)
        return 0
    lines: list[str] = []
    heads = {"strategy": "strategies:", "workload": "workloads:", "suite": "suites:",
             "id-token": "case ids, token by token (stream-sendall-s64-p2-nd0-sbauto-loopback):"}
    kind = ""
    for r in records:
        if r["kind"] != kind:
            kind = r["kind"]
            lines.append(heads[kind])
        if kind == "strategy":
            why = f"  [unavailable: {r['unavailable']}]" if r["unavailable"] else ""
            lines.append(f"  {r['name']:<10} {r['summary']}{why}")
            if r["tls"]:
                lines.append(f"  {'':<10} {r['tls']}")
        elif kind == "workload":
            lines.append(f"  {r['name']}")
        elif kind == "suite":
            lines.append(f"  {r['name']:<12} {r['unavailable']}" if r["unavailable"] else
                         f"  {r['name']:<12} {r['cases']:>4} cases  {r['summary']}")
        else:
            lines.append(f"  {r['name']:<18} {r['summary']}")
    lines.append(FILTER_HELP)
    _write_text("\n".join(lines) + "\n", path)
    return 0


def _write_text(body: str, path: Path | None) -> None:
    from .errors import UsageError
    from .files import open_output

    if path is None:
        sys.stdout.write(body)
        return
    try:
        with open_output(path) as fh:
            fh.write(body)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def dry_run(opts: RunOptions, fmt: str = "table", path: Path | None = None) -> int:
    """The cases a run would measure, with estimated times, and the skipped ones."""
    from .analysis.cells import cells
    from .results import read_meta
    from .run.estimate import VISIT_START_S, estimate_case_s
    from .run.options import prepare_suite
    from .run.targets import targets

    meta = read_meta(opts.resume) if opts.resume else None
    where = targets(opts.peers, opts.link, True, meta, opts.transport)  # bad combinations: now
    # the ids as the run will write them: -emulated under --link, -remote with --peer
    suite = prepare_suite(dataclasses.replace(opts, transport=where[0].transport), meta)
    rtt = 0.0
    if opts.link:
        from .netlab.linkspec import LinkSpec

        rtt = LinkSpec.parse(opts.link).rtt_s
    groups = cells(suite.cases)
    total = VISIT_START_S * len(groups) * suite.rounds
    records: list[dict[str, Any]] = []
    for cell in groups:
        for case in cell.cases:
            est = estimate_case_s(case, suite, rtt)
            total += est
            records.append({"case": case.id, "estimate_s": round(est, 2), "skipped": ""})
    records += [{"case": case_id, "estimate_s": None, "skipped": why}
                for case_id, why in suite.skipped]
    if fmt != "table":
        _out(records, fmt, path)
        return 0
    lines = [f"{r['case']}\t" + (f"skipped: {r['skipped']}" if r["skipped"]
                                 else f"~{r['estimate_s']:.1f} s") for r in records]
    twins = sum(c.twin for cell in groups for c in cell.cases)
    lines.append(f"{len(suite.cases)} cases and {twins} A/A twins in {len(groups)} cells, "
                 f"{suite.rounds} rounds x {suite.values} values per trial, congestion "
                 f"control {suite.cc or 'of the host'}: estimated {total / 60:.1f} min")
    _write_text("\n".join(lines) + "\n", path)
    return 0


def compare_records(runs: Sequence[StoredRun], frame: pd.DataFrame) -> pd.DataFrame:
    """``compare --format``: the ratio-of-ratios rows (runs with trials), then the absolute
    ones, each with its ``comparison``."""
    import pandas as pd

    from .analysis.ratios import ratio_frame

    ratios = ratio_frame(runs).assign(comparison="ratio_of_ratios")
    absolute = frame.assign(comparison="absolute")
    out = pd.concat([f for f in (ratios, absolute) if not f.empty], ignore_index=True)
    cols = ["comparison", *(c for c in out.columns if c != "comparison")]
    return out[cols]
