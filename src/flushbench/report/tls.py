"""The report's TLS sections, from verdicts.csv and table.csv: makefile against sendall over
TLS, the cost of TLS per strategy, and the Nagle trap over TLS.

A TLS case sits in the cell of the same case in the clear (``analysis/cells.py``): the cost
of TLS is a paired verdict along the axis ``tls``; makefile against sendall over TLS is the
``strategy`` axis between two TLS cases; the trap is every verdict of a TLS ``wwr`` case.
Records per message come from the table (TCP_INFO bytes sent over the payload).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..analysis.runs import StoredRun
from . import charts, forest, verdicts
from .format import fmt_headline, fmt_num, fmt_us, is_true
from .markup import Doc

AXIS = "tls"
MAKEFILE = "TLS: makefile against sendall"
COST = "The cost of TLS per strategy"
NAGLE = "The Nagle trap over TLS"
RECORDS_NOTE = (
    "Records per message: the bytes TCP sent over a value (TCP_INFO tcpi_bytes_sent, less "
    "retransmissions) minus the payload and the GO frame's record, over the bytes one record "
    "adds: 22 in TLS 1.3 (5 header, 1 content type, 16 tag), 29 in TLS 1.2 with AES-GCM "
    "(5 header, 8 explicit nonce, 16 tag), 21 with ChaCha20-Poly1305, from the negotiated "
    "version and cipher. The handshake is timed apart (not in any value): the last trial's.")
SEMANTICS = {
    MAKEFILE: "makefile against sendall, both over TLS, paired by round: ratio = makefile / "
              "sendall. sendall makes a TLS record (and an encryption call) per part; "
              "makefile's buffer makes one per flush.",
    COST: "Each TLS case against the same case in the clear, paired by round: ratio = TLS / "
          "plain. sendmsg and msg_more cannot run over TLS (ssl.SSLSocket refuses sendmsg() "
          "and send() flags): such cases are left out with the reason. sendfile over TLS is "
          "CPython's fallback, send() of 8 KiB blocks read from the file (no zero-copy).",
    NAGLE: "The write-write-read workload over TLS: header and body written separately are "
           "two records, and with TCP_NODELAY off the second waits for the delayed ACK of the "
           "first. Every verdict of a TLS wwr case: against TLS off, nodelay off, sendall.",
}


def _tls_ids(run: StoredRun) -> set[str]:
    table = run.table
    if "tls" not in table.columns:
        return set()
    return {str(c) for c, t in zip(table["case"], table["tls"], strict=True) if is_true(t)}


def _records(run: StoredRun, keep: Callable[[Mapping[Hashable, Any]], bool]) -> pd.DataFrame:
    """The TLS cases' own figures: records and overhead per message, the headline."""
    out = []
    for row in run.ok.to_dict("records"):
        if not is_true(row.get("tls")) or not keep(row):
            continue
        workload = str(row["workload"])
        out.append({"size": verdicts.setting(row), "case": f"`{verdicts.case_label(row)}`",
                    "workload": workload,
                    "records/msg": fmt_num(row.get("tls_records_per_msg")),
                    "overhead B/msg": fmt_num(row.get("tls_overhead_bytes_per_msg")),
                    "headline": fmt_headline(workload, row.get(
                        "throughput_bps" if workload in ("stream", "file") else "lat_p50_us")),
                    "handshake": fmt_us(row.get("tls_handshake_us"))})
    return pd.DataFrame(out)


def _section(doc: Doc, run: StoredRun, title: str, part: pd.DataFrame, records: pd.DataFrame,
             charts_dir: Path, prefix: str, stem: str, axis: str | None) -> None:
    doc.heading(3, title)
    doc.note(SEMANTICS[title])
    name = f"{charts.slug(run.label)}-{stem}"
    cases = sorted(set(part["case"]))
    charts.show(doc, forest.forest, run, axis, cases, out_dir=charts_dir, prefix=prefix,
                name=name, alt=title,
                caption=f"{title} (headline metric, 95 % intervals over rounds)")
    for (workload, band), group in part.groupby(["workload", "band"], sort=False):
        doc.heading(4, f"{workload} · {band} · {title}")
        doc.table(verdicts.display(group), collapse_after=40, summary=f"{len(group)} verdicts")
    if not records.empty:
        doc.para("Records per message and what each TLS case measured:")
        doc.table(records, collapse_after=40, summary=f"{len(records)} TLS cases")


def add_sections(doc: Doc, run: StoredRun, charts_dir: Path, prefix: str) -> None:
    """The three sections, each where the run measured what it needs (nothing otherwise)."""
    tls = _tls_ids(run)
    frame = verdicts.view(run)
    if not tls or frame.empty:
        return
    strategy = dict(zip(run.table["case"].astype(str), run.table["strategy"].astype(str),
                        strict=True))
    in_tls = frame["case"].isin(tls)
    makefile = frame[in_tls & (frame["axis"] == "strategy")
                     & frame["case"].map(lambda c: strategy.get(c) == "makefile")
                     & frame["baseline"].map(lambda c: strategy.get(c) == "sendall")]
    cost = frame[frame["axis"] == AXIS]
    nagle = frame[in_tls & (frame["workload"] == "wwr")]
    shown = False
    for title, part, keep, stem, axis in (
            (MAKEFILE, makefile, lambda r: r["strategy"] in ("makefile", "sendall")
             and r["workload"] != "wwr", "tls-makefile", "strategy"),
            (COST, cost, lambda r: r["workload"] != "wwr", "tls-cost", AXIS),
            (NAGLE, nagle, lambda r: r["workload"] == "wwr", "tls-nagle", None)):
        if not part.empty:
            _section(doc, run, title, part, _records(run, keep), charts_dir, prefix, stem, axis)
            shown = True
    if shown:
        doc.note(RECORDS_NOTE)
        left_out = [(str(p[0]), str(p[1])) for p in run.meta.get("skipped") or []
                    if isinstance(p, list) and len(p) == 2 and "over TLS" in str(p[1])]
        if left_out:
            doc.para(f"{len(left_out)} case(s) left out as unavailable over TLS:")
            doc.bullets(f"`{case}`: {why}" for case, why in left_out)
