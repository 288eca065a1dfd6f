"""The published report: ``index.html`` + ``README.md`` + ``charts/``, from stored runs only.

    flushbench report RUN [RUN ...] [--out DIR]

A run's section opens with its answer. For a run measured in interleaved rounds (schema 2):
the A/A noise floor (a WARNING when a twin came out different), the paired verdicts per
workload and size band beside their forest plot; for an older run, what it measured. Then the
Nagle trap and the send paths (throughput against sendall, what reaches the wire),
recommendations and myths; the sections on unix sockets, TLS and drivers where the run has
them; the other charts (latency CCDFs, CPU, SO_SNDBUF); and last how it was measured: method,
harness ceiling, quality notes, both machines (folded in HTML) and every case. With two or
more runs, a comparison against the first follows. The HTML page works at 390 px: tables
scroll in their own box, a chart's panels stack. Nothing in the output depends on the time or
place it was built, so unchanged runs give byte-identical files (the test suite checks this).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..analysis.compare import compare_frame, copied_cases
from ..analysis.hoststate import SLOW_FACTOR
from ..analysis.noise import noise_floor
from ..analysis.quality import findings
from ..analysis.runs import StoredRun, open_runs
from ..case import size_label
from ..errors import UsageError
from ..files import make_dirs
from ..results import atomic_write
from . import (
    charts,
    compare,
    concurrency,
    forest,
    morecharts,
    recommend,
    sendpath,
    transports,
    verdicts,
)
from .format import finding_sentence, finite, fmt_bps, fmt_num, fmt_pct, fmt_us, numeric
from .markup import Doc, Fold
from .tls import add_sections as tls_sections

CHARTS = "charts"
RUN_CHARTS = sendpath.CHARTS + morecharts.CHARTS  # every chart of a run, in the report's order
HOST_ROWS = [("CPU", "cpu_model"), ("CPUs", "cpu_count"), ("kernel", "kernel"), ("OS", "os"),
             ("memory", "mem_total"), ("Python", "python"), ("implementation", "python_impl"),
             ("io.DEFAULT_BUFFER_SIZE", "io_default_buffer_size"),
             ("TCP_CORK", "has_tcp_cork"), ("MSG_MORE", "has_msg_more")]


def build_report(runs: Sequence[Path], out: Path,
                 skip: Callable[[Path, str], None] | None = None) -> Path:
    """Write the report for ``runs`` into ``out``; returns the path of index.html.
    ``skip``: told of each broken run inside a folder of runs, which is left out."""
    stored = open_runs(runs, skip)
    out = Path(out)
    charts_dir = out / CHARTS
    try:
        make_dirs(charts_dir)  # the umask's mode; under sudo, the sudo user's
    except OSError as exc:
        raise UsageError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    for old in sorted(charts_dir.glob("*.png")) + sorted(charts_dir.glob("*.svg")):
        old.unlink()  # charts/ is the report's own: drop charts of runs no longer shown
    doc = Doc("flushbench report")
    doc.para("How should a Python program write to a TCP socket? Send strategies × socket "
             "options, measured with pyperf. Built from stored runs only; every figure names "
             "the case it comes from.")
    for run in stored:
        _run_section(doc, run, charts_dir)
    if len(stored) > 1:
        doc.heading(2, "Comparison")
        compare.add_sections(doc, stored, compare_frame(stored), charts_dir, CHARTS)
    doc.heading(2, "Runs in this report")
    doc.table(_overview(stored), wide=True)
    with atomic_write(out / "README.md") as fh:
        fh.write(doc.markdown())
    with atomic_write(out / "index.html") as fh:
        fh.write(doc.page())
    return out / "index.html"


def _overview(runs: list[StoredRun]) -> pd.DataFrame:
    rows = []
    for run in runs:
        client = run.meta.get("client") or {}
        rows.append({"run": run.label,
                     "created": run.meta.get("created", "–"),
                     "transport": run.meta.get("transport") or "–",
                     "link": run.meta.get("link") or "–",
                     "suite": (run.meta.get("suite") or {}).get("name", "–"),
                     "cases": len(run.table), "failed": len(run.failed),
                     "CPU": client.get("cpu_model", "–"), "kernel": client.get("kernel", "–"),
                     "Python": client.get("python", "–")})
    overview: pd.DataFrame = pd.DataFrame(rows)
    return overview


def _ceiling(doc: Doc, meta: dict[str, Any]) -> None:
    """The harness ceiling: flushbench beside iperf3 / sockperf (runs made by calibrate)."""
    cal = meta.get("calibration")
    if not cal:
        return
    doc.heading(3, "Harness ceiling")
    rows = pd.DataFrame(cal.get("ratios") or [])
    if rows.empty:
        doc.note(f"No reference tool was installed ({cal.get('install_hint', '')}).")
        return
    columns = ["metric", "flushbench", "reference", "tool", "ratio", "case"]
    rows = rows.assign(flushbench=rows["flushbench"].map(lambda v: f"{v:.2f}"),
                       reference=rows["reference"].map(lambda v: f"{v:.2f}"),
                       ratio=rows["ratio"].map(lambda v: f"{v:.3f}"),
                       case=rows["case"].map(lambda c: f"`{c}`"))
    if cal.get("paired_by_round") and {"ratio_min", "ratio_max", "rounds"} <= set(rows):
        rows["range"] = [f"{lo:.3f}–{hi:.3f}" if finite(lo) and finite(hi) else "–"
                         for lo, hi in zip(rows["ratio_min"], rows["ratio_max"], strict=True)]
        rows["rounds"] = rows["rounds"].map(lambda n: f"{numeric(n):.0f}")
        doc.table(rows[[*columns[:5], "range", "rounds", "case"]])
        doc.note(f"Paired by round: the tools ran {cal.get('seconds', '?')} s each at the start "
                 "of every round, seconds before that round's flushbench trials (flushbench "
                 "calibrate); ratio = the median over rounds of flushbench / tool, with its "
                 "range. flushbench's figure is its best strategy's (median over rounds).")
        return
    doc.table(rows[columns])
    doc.note(f"Reference = the mean of the tool's runs before and after flushbench's cases, "
             f"{cal.get('seconds', '?')} s each, in the same session (an older flushbench "
             "calibrate, not paired by round). flushbench's figure is its best strategy's.")


def _answer(doc: Doc, run: StoredRun, charts_dir: Path) -> None:
    """The opening of a run's section: the noise floor, verdict tables and the forest plot."""
    warn, text = verdicts.noise_sentence(noise_floor(run.verdicts), lambda c: f"`{c}`")
    doc.para(f"**WARNING** — {text}" if warn else text, css="bad" if warn else "")
    slow = verdicts.slow_rounds_warning(run)
    if slow:
        doc.para(f"**WARNING** — {slow}", css="bad")
    doc.heading(3, "Verdicts")
    effect = (run.meta.get("schedule") or {}).get("min_effect")
    slots = (run.meta.get("schedule") or {}).get("pairing") == "slots"
    doc.note("Each case against its baseline (sendall for a strategy, the default for an "
             "option, the same case for an A/A twin), paired by round: ratio = case / baseline "
             "= exp(mean log ratio) over the rounds both finished, with a 95 % t interval"
             + ("; a round's throughput and p50 ratio is the median over its slots of the "
                "case's value against the baseline's in the same slot. " if slots else ". ") +
             "“better” and “worse” already account for the metric's direction; they need "
             "q < 0.05 (Benjamini–Hochberg), an interval that excludes 1 and an effect of at "
             f"least {fmt_pct(numeric(effect)) if finite(effect) else '3 %'}.")
    frame = verdicts.view(run)
    doc.columns()  # the forest plot beside the tables: both open the page (HTML)
    title = "Forest plot: each case's ratio to its baseline on the headline metric"
    charts.show(doc, forest.forest, run, out_dir=charts_dir, prefix=CHARTS,
                name=f"{charts.slug(run.label)}-forest", alt=title,
                caption=f"{title} (95 % intervals over rounds; hollow diamonds: A/A twins)",
                skipped=f"{title}: skipped, no verdict with data in this run.")
    doc.next_column()
    if frame.empty:
        doc.note("No verdict names a case of this run's table.")
    for (workload, band), part in frame.groupby(["workload", "band"], sort=False):
        doc.heading(4, f"{workload} · {band}")
        doc.table(verdicts.display(part), collapse_after=40, summary=f"{len(part)} verdicts")
    doc.end_columns()


def congestion_control(meta: dict[str, Any]) -> str:
    """The client connections' congestion control in words: 'TCP congestion control cubic
    (set per connection; the host's default is bbr)' or '… the host's default, bbr'."""
    sysctls = (meta.get("client") or {}).get("sysctls") or {}
    host = str(sysctls.get("net.ipv4.tcp_congestion_control") or "?")
    cc = (meta.get("schedule") or {}).get("cc")
    if cc and isinstance(cc, str):
        return f"TCP congestion control {cc} (set per connection; the host's default is {host})"
    return f"TCP congestion control: the host's default, {host}"


def peer_sink(meta: dict[str, Any], table: pd.DataFrame | None = None) -> str:
    """How the peer took in stream data, in words (runs that do not say copied it); with the
    run's table, the cases it copied for anyway (cells with a TLS or unix case)."""
    if meta.get("peer_sink") != "discard":
        return "the peer copied stream data into a buffer"
    said = "the peer dropped stream data uncopied (MSG_TRUNC)"
    copied = None if table is None else copied_cases(table)
    return said + (f", but copied it for the {copied} cases of cells with a TLS or unix case, "
                   "so that both sides of those comparisons are received alike "
                   "(table.csv: peer_sink)" if copied else "")


def _measured(meta: dict[str, Any], table: pd.DataFrame | None = None) -> str:
    """How the run was measured: its rounds (schema 2) or pyperf's processes (schema 1)."""
    sched = meta.get("schedule")
    if isinstance(sched, dict):
        return (f"{sched.get('rounds', '?')} interleaved rounds × {sched.get('values', '?')} "
                f"values per trial ({sched.get('warmups', '?')} warmup, value time "
                f"{sched.get('value_time', '?')} s, seed {sched.get('seed', '?')}); "
                f"{congestion_control(meta)}; {peer_sink(meta, table)}")
    pyperf = meta.get("pyperf") or {}
    return (f"pyperf {pyperf.get('processes', '?')} processes × {pyperf.get('values', '?')} "
            f"values ({pyperf.get('warmups', '?')} warmup)")


def _setup(run: StoredRun) -> str:
    meta = run.meta
    suite = meta.get("suite") or {}
    return (f"Suite **{suite.get('name', '?')}**"
            + (f" ({suite['description']})" if suite.get("description") else "")
            + f", transport **{meta.get('transport') or '?'}**"
            + (f", link `{meta['link']}`" if meta.get("link") else "")
            + f", created {meta.get('created', '?')}; {_measured(meta, run.table)}; flushbench "
            f"{meta.get('flushbench_version', '?')}; schema {meta.get('schema_version')}. "
            f"{len(run.table)} cases, {len(run.failed)} failed.")


def _charts(doc: Doc, run: StoredRun, charts_dir: Path,
            chosen: Sequence[tuple[str, str, Callable[[StoredRun], charts.Chart]]]) -> None:
    slug = charts.slug(run.label)
    for name, title, builder in chosen:
        charts.show(doc, builder, run, out_dir=charts_dir, prefix=CHARTS, name=f"{slug}-{name}",
                    alt=title, caption=title, skipped=f"{title}: skipped, no data in this run.")


def _advice(doc: Doc, run: StoredRun, paired: bool) -> None:
    doc.heading(3, "Recommendations")
    recs = recommend.recommendations(run)
    if recs.empty:
        doc.note("No finished case with a headline figure: nothing to recommend.")
    else:
        recs["cases"] = recs["cases"].map(_cases_cell)
        doc.table(recs, wide=True)
        doc.note("Best = highest throughput (stream, file) or lowest p50 latency (rr, wwr, "
                 "pipeline) over the band's sizes; compared with sendall at the same size and "
                 "options; significance: "
                 + ("the paired verdict against sendall (see Verdicts)." if paired else
                    "Welch's t-test on the log per-value rates (scipy)."))
    doc.heading(3, "Myths")
    for myth in recommend.myths(run):
        doc.para(f"**“{myth.claim}”** — {myth.verdict}.")
        doc.bullets(myth.evidence)


def _cases_cell(cases: Sequence[str]) -> str | Fold:
    """The cases behind a recommendation: folded in HTML when there are several (a row per
    case id would make a phone's table row tall)."""
    text = ", ".join(f"`{c}`" for c in cases)
    return Fold(f"{len(cases)} cases", text) if len(cases) > 1 else text


def _run_section(doc: Doc, run: StoredRun, charts_dir: Path) -> None:
    """A run's section: the answer first (verdicts, the Nagle trap and the send paths,
    advice), then the sections on transports, TLS and drivers, the other charts, and last
    how it was measured: method, quality notes, the machines (folded) and every case."""
    meta = run.meta
    doc.heading(2, run.label)
    paired = verdicts.has_verdicts(run)
    if paired:
        _answer(doc, run, charts_dir)
    else:  # no verdicts: what the run measured opens its section
        doc.para(_setup(run))
    single = not run.ok.empty  # a finished single-connection case: charts and advice
    if single:
        doc.heading(3, "The Nagle trap and the send paths")
        _charts(doc, run, charts_dir, sendpath.CHARTS)
        _advice(doc, run, paired)
    else:
        doc.note("No single-connection case of this run finished: no send-path charts, "
                 "recommendations or myths.")
    transports.add_section(doc, run, charts_dir, CHARTS)  # unix vs loopback, if measured
    tls_sections(doc, run, charts_dir, CHARTS)  # TLS: makefile, cost per strategy, Nagle
    concurrency.add_section(doc, run, charts_dir, CHARTS)  # many connections: drivers
    if single:
        doc.heading(3, "More charts")
        _charts(doc, run, charts_dir, morecharts.CHARTS)
    if paired:
        doc.heading(3, "Method")
        doc.para(_setup(run))
        title = "The host's wake-ups, round by round"
        charts.show(doc, morecharts.host_rounds, run, out_dir=charts_dir, prefix=CHARTS,
                    name=f"{charts.slug(run.label)}-host", alt=title,
                    caption=f"{title}: each value's untimed GO/READY round trip through the "
                    f"peer; a round over {SLOW_FACTOR:g}× the quickest one counts as slow "
                    "and is named above the verdicts")
    _ceiling(doc, meta)
    _quality(doc, run)
    doc.heading(3, "Machines")
    doc.details(f"Both ends: CPU, kernel, Python, {len(_settings(meta))} kernel settings and "
                "interface MTUs")
    doc.table(_hosts(meta))
    doc.table(_settings(meta))
    doc.end_details()
    doc.heading(3, "All cases")
    doc.table(_results(run), collapse_after=25, summary=f"all {len(run.table)} cases",
              wide=True)


def _hosts(meta: dict[str, Any]) -> pd.DataFrame:
    client, peer = meta.get("client") or {}, meta.get("peer") or {}
    rows = [{"": label, "client": _show(client.get(key), key),
             "peer": _show(peer.get(key), key)} for label, key in HOST_ROWS]
    rows.insert(0, {"": "hostname", "client": _show(client.get("hostname")),
                    "peer": _show(peer.get("hostname"))})
    hosts: pd.DataFrame = pd.DataFrame(rows)
    return hosts


def _show(value: Any, key: str = "") -> str:
    if value is None or value == "":
        return "–"
    if key == "mem_total" and isinstance(value, (int, float)):
        return f"{value / 2**30:.1f} GiB"
    return str(value)


def _settings(meta: dict[str, Any]) -> pd.DataFrame:
    client, peer = meta.get("client") or {}, meta.get("peer") or {}
    rows = []
    names = sorted(set(client.get("sysctls") or {}) | set(peer.get("sysctls") or {}))
    for name in names:
        rows.append({"setting": name, "client": _show((client.get("sysctls") or {}).get(name)),
                     "peer": _show((peer.get("sysctls") or {}).get(name))})
    ifaces = sorted(set(client.get("interfaces") or {}) | set(peer.get("interfaces") or {}))
    for name in ifaces:
        mtu = [((side.get("interfaces") or {}).get(name) or {}).get("mtu")
               for side in (client, peer)]
        rows.append({"setting": f"{name} MTU", "client": _show(mtu[0]), "peer": _show(mtu[1])})
    settings: pd.DataFrame = pd.DataFrame(rows, columns=["setting", "client", "peer"])
    return settings


def _quality(doc: Doc, run: StoredRun) -> None:
    found = findings(run.table, run.verdicts, run.trials)
    notes = [finding_sentence(f, lambda c: f"`{c}`") for f in found
             if f.kind not in ("failed", "few_samples")]
    if not notes and run.failed.empty:
        return
    doc.heading(3, "Quality notes")
    doc.bullets(notes)
    for finding in found:
        if finding.kind == "wide":
            doc.table(pd.DataFrame({"case": [f"`{c}`" for c in finding.cases],
                                    "against": [f"`{c}`" for c in finding.against],
                                    "95 % interval": [_pct(v) for v in finding.values]}),
                      collapse_after=8, summary=f"the {len(finding.cases)} wide comparisons")
        if finding.kind == "noisy":
            doc.table(pd.DataFrame({"noisy case": [f"`{c}`" for c in finding.cases],
                                    "values spread (rsd)": [_pct(v) for v in finding.values]}),
                      collapse_after=8, summary=f"the {len(finding.cases)} noisy cases")
    if not run.failed.empty:
        doc.para(f"{len(run.failed)} case(s) failed and are left out of charts and advice:")
        failed = run.failed[["case", "error"]].copy()
        failed["case"] = "`" + failed["case"] + "`"
        doc.table(failed, collapse_after=15, summary=f"{len(failed)} failed cases")


def _results(run: StoredRun) -> pd.DataFrame:
    rows = []
    for row in run.table.to_dict("records"):
        rows.append({
            "case": f"`{row['case']}`", "throughput": fmt_bps(row.get("throughput_bps")),
            "p50": fmt_us(row.get("lat_p50_us")), "p99": fmt_us(row.get("lat_p99_us")),
            "p99.9": fmt_us(row.get("lat_p999_us")), "segs/msg": fmt_num(row.get("segs_per_msg")),
            "calls/msg": fmt_num(row.get("send_calls_per_msg")),
            "CPU s/GB client": fmt_num(row.get("cpu_s_per_gb_client")),
            "CPU s/GB peer": fmt_num(row.get("cpu_s_per_gb_peer")),
            "sndbuf req → eff": _sndbuf(row), "noise": _pct(row.get("rate_rsd")),
            "error": row.get("error") or ""})
    results: pd.DataFrame = pd.DataFrame(rows)
    return results


def _sndbuf(row: Mapping[Hashable, Any]) -> str:
    req = numeric(row.get("sndbuf"))
    eff = numeric(row.get("sndbuf_eff"))
    left = "auto" if pd.isna(req) or req == 0 else size_label(req)
    return f"{left} → {'–' if pd.isna(eff) else int(eff)}"


def _pct(x: Any) -> str:
    v = pd.to_numeric(x, errors="coerce")
    return "–" if v is None or pd.isna(v) else f"±{v:.1%}"
