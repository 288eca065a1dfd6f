"""The report's layout and charts (issue 15): the order of a run's section, charts that can
be read (ratios to sendall where absolute lines overlap, bars for one size, no empty panel,
level labels), and the page as Chromium lays it out.

At a phone's 390 × 844 and a laptop's 1280 × 800 the page never scrolls sideways, every table
sits in a box of its own that scrolls instead, and every chart fits the page. Measured, not
looked at: a script in the page reads ``document.documentElement.scrollWidth`` against
``window.innerWidth`` and lists what sticks out, with every ``<details>`` closed (as
delivered) and opened. The viewport is set through the DevTools protocol
(``Emulation.setDeviceMetricsOverride``): headless Chromium keeps a window at least 500 px
wide, so ``--window-size=390,844`` alone lays the page out at 500 px (and ``--screenshot``
crops that to 390). Those tests are skipped, with the reason, where Chromium is missing.

Run as a script, it takes screenshots of a built report at the sizes given::

    python tests/test_report_layout.py results/report/index.html \\
        1280x800:results/report/screenshot.png 390x844:results/report/screenshot-390.png
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from flushbench.analysis.runs import open_runs
from flushbench.case import Case
from flushbench.report import charts, morecharts, sendpath
from flushbench.report.document import build_report
from synthetic import host, make_meta, small_cases, write_paired_run, write_run
from test_report_browser import CHROMIUM, Chromium

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                    "(apt-get install chromium); the layout check needs it")
PHONE, LAPTOP = (390, 844), (1280, 800)
LONG = "x" * 140  # a run id with no place to break a line
MEASURE = """(async () => {
  await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
  const vw = window.innerWidth;
  const scrolls = el => {  // inside a box that scrolls sideways on its own
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX)) return true;
    }
    return false;
  };
  const measure = () => ({
    scrollWidth: document.documentElement.scrollWidth,
    wide: [...document.body.querySelectorAll('*')].filter(el => {
      const r = el.getBoundingClientRect();
      return r.width > 0 && r.right > vw + 0.5 && !scrolls(el);
    }).slice(0, 8).map(el => `${el.tagName.toLowerCase()}.${el.className || ''} ` +
      `right=${Math.round(el.getBoundingClientRect().right)} ` +
      `${(el.textContent || el.getAttribute('src') || '').slice(0, 60)}`)});
  const closed = measure();
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const opened = measure();
  return JSON.stringify({
    innerWidth: vw, closed, opened,
    tables: document.querySelectorAll('table').length,
    unboxed: [...document.querySelectorAll('table')].filter(
      t => getComputedStyle(t.parentElement).overflowX !== 'auto').length,
    images: [...document.images].map(i => ({
      src: i.getAttribute('src'), width: i.getBoundingClientRect().width,
      natural: i.naturalWidth}))});
})()"""


def _open(browser: Chromium, page: Path, size: tuple[int, int]) -> str:
    """A tab showing ``page`` with a ``size`` viewport, loaded; returns its session."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget",
                           {"targetId": target, "flatten": True})["sessionId"]
    browser.send("Page.enable", session=session)
    browser.send("Emulation.setDeviceMetricsOverride", {
        "width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False},
        session=session)
    mark = len(browser.events)
    browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
    browser.wait_event("Page.loadEventFired", session, since=mark)
    return session


def measure(pages: list[Path], sizes: list[tuple[int, int]], work: Path | None = None
            ) -> list[dict[str, Any]]:
    """Each page at each size (page-major order), measured in one Chromium (its profile
    in a new folder under ``work``)."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-layout-", dir=work))
    browser = Chromium(profile, (f"--window-size={PHONE[0]},{PHONE[1]}",))
    try:
        found = []
        for page in pages:
            for size in sizes:
                session = _open(browser, page, size)
                reply = browser.send("Runtime.evaluate", {
                    "expression": MEASURE, "awaitPromise": True, "returnByValue": True},
                    session=session)
                found.append(json.loads(reply["result"]["value"]))
        return found
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)


def screenshots(page: Path, shots: list[tuple[tuple[int, int], Path]]) -> None:
    """Save what a reader first sees of ``page`` (the viewport) at each size."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-shots-"))
    browser = Chromium(profile)
    try:
        for size, out in shots:
            session = _open(browser, page, size)
            browser.send("Runtime.evaluate", {"expression": MEASURE, "awaitPromise": True,
                                              "returnByValue": True}, session=session)
            browser.send("Runtime.evaluate", {  # MEASURE opened every <details>: shut them
                "expression": "document.querySelectorAll('details').forEach(d => "
                              "{ d.open = false; }); window.scrollTo(0, 0)"}, session=session)
            shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
            out.write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)


def problems(found: dict[str, Any], size: tuple[int, int]) -> list[str]:
    """What would make a reader scroll the page sideways, or squeeze past a chart."""
    out = []
    if found["innerWidth"] != size[0]:
        out.append(f"viewport {found['innerWidth']} px, not {size[0]}")
    for state in ("closed", "opened"):
        got = found[state]
        if got["scrollWidth"] > found["innerWidth"]:
            out.append(f"details {state}: the page is {got['scrollWidth']} px wide in a "
                       f"{found['innerWidth']} px viewport: {got['wide']}")
    if found["unboxed"]:
        out.append(f"{found['unboxed']} of {found['tables']} tables not in a scroll box")
    out += [f"image {i['src']} {i['width']:.0f} px wide" for i in found["images"]
            if i["width"] > found["innerWidth"]]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two runs, as a published report holds: one of interleaved rounds with verdicts and
    one older run whose id, CPU and error are long words with no place to break."""
    root = tmp_path_factory.mktemp("runs")
    cases = small_cases() + [Case("stream", s, 1024, nodelay=nd)
                             for s in ("send", "sendall", "sendmsg", "coalesce")
                             for nd in (False, True)]
    paired = write_paired_run(root, "phone", "paired", cases)
    old = write_run(root, "phone", LONG, small_cases(), meta=make_meta(
        "phone", LONG, client=host("phone", cpu="A CPU model name " + "y" * 90)),
        failed=["rr-sendall-s64-p2-nd1-sbauto-loopback"])
    table = old / "table.csv"
    table.write_text(table.read_text(encoding="utf-8").replace(
        "PeerError: peer reset the connection", "PeerError:" + "z" * 200), encoding="utf-8")
    return paired, old


@pytest.fixture(scope="module")
def report(runs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    build_report(list(runs), out)
    return out / "index.html"


def test_throughput_is_drawn_against_sendall(runs: tuple[Path, Path]) -> None:
    """Each strategy's throughput over sendall's, paired by round where the run has verdicts,
    above sendall's own on a log axis ticked at 1-2-5; TCP_NODELAY on is its own panel."""
    run = open_runs([runs[0]])[0]
    figs = sendpath.throughput(run)
    assert figs is not None and len(figs) == 2  # nodelay off (ratios + sendall), nodelay on
    top, bottom = figs[0].axes[:2]
    assert "sendall" in top.get_ylabel() and "Gbit/s" in bottom.get_ylabel()
    assert {t.get_text() for t in top.get_legend().get_texts()} == {
        "makefile", "send", "sendmsg", "coalesce"}
    low, high = bottom.get_ylim()
    assert len([t for t in bottom.get_yticks() if low <= t <= high]) >= 4
    frame = sendpath.with_ratios(run, charts.run_frame(run, "stream"))
    row = frame[frame["case"] == "stream-makefile-s64-p2-nd0-sbauto-loopback"].iloc[0]
    verdict = run.verdicts[(run.verdicts["case"] == row["case"])
                           & (run.verdicts["metric"] == "throughput_bps")
                           & (run.verdicts["axis"] == "strategy")].iloc[0]
    assert row["ratio"] == pytest.approx(verdict["ratio"])
    assert row["low"] == pytest.approx(verdict["ci_low"]) and row["ratio"] > 1.5
    assert frame.loc[frame["strategy"] == "sendall", "ratio"].isna().all()
    old = open_runs([runs[1]])[0]  # no verdicts: the table's ratio, no interval
    frame = sendpath.with_ratios(old, charts.run_frame(old, "stream"))
    assert frame["ratio"].notna().any() and frame["low"].isna().all()


def test_one_size_is_drawn_as_bars_with_level_labels(runs: tuple[Path, Path]) -> None:
    """The file workload, at one size, is bars with its figures beside them; the Nagle
    chart's labels are level and in readable type (they were rotated 6 px text)."""
    run = open_runs([runs[0]])[0]
    (fig,) = sendpath.throughput(run, "file") or []
    ax = fig.axes[0]
    assert len(ax.patches) == 2
    assert not [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    labels = [t.get_text() for t in ax.texts]
    assert any(label.endswith("×") for label in labels)
    for chart in sendpath.nagle(run) or []:
        texts = chart.axes[0].texts
        assert texts and all(t.get_fontsize() >= 9 and t.get_rotation() == 0 for t in texts)


def test_ccdf_draws_only_the_combinations_measured(tmp_path: Path) -> None:
    """rr at 64 B with Nagle and at 1 KiB with TCP_NODELAY: two panels, each with its line,
    and no empty 'not measured' box for the other two combinations."""
    cases = [Case("rr", "sendall", 64), Case("rr", "sendall", 1024, nodelay=True)]
    run = open_runs([write_run(tmp_path, "m", "r", cases)])[0]
    figs = morecharts.ccdf(run, "rr")
    assert figs is not None and len(figs) == 2
    for fig in figs:
        ax = fig.axes[0]
        assert [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
        assert not [t for t in ax.texts if "not measured" in t.get_text()]
    assert figs[0].axes[0].get_xlim() == figs[1].axes[0].get_xlim()  # one scale


def test_layout_of_the_page(report: Path) -> None:
    """Panels of a chart in one figure, recommendation cases folded, machines folded, every
    table in a scroll box; the Markdown shows every panel and every case id."""
    page = report.read_text(encoding="utf-8")
    md = (report.parent / "README.md").read_text(encoding="utf-8")
    slug = charts.slug("phone/paired")
    start = page.index(f'src="charts/{slug}-ccdf-rr.png"')
    figure = page[page.rindex("<figure>", 0, start):page.index("</figure>", start)]
    assert '<div class="panels">' in figure and f'src="charts/{slug}-ccdf-rr-2.png"' in figure
    assert f"(charts/{slug}-ccdf-rr-2.png)" in md
    assert re.search(r"<td><details><summary>2 cases</summary><code>stream-", page)
    assert "`stream-makefile-s64-p2-nd0-sbauto-loopback`, `stream-sendall-s64" in md
    assert page.count("<table") == page.count('<div class="scroll"><table')
    assert re.search(r'<h3 id="machines">Machines</h3>\s*<details><summary>Both ends', page)


@needs_chromium
def test_no_horizontal_scroll_at_390_or_1280(report: Path) -> None:
    """At 390 and 1280 px: nothing wider than the viewport outside a scroll box, with every
    <details> closed or open; every table in its own scroll box; every chart fits."""
    found = measure([report], [PHONE, LAPTOP], report.parent.parent)
    assert found[0]["tables"] > 20 and len(found[0]["images"]) > 20
    assert problems(found[0], PHONE) == []
    assert problems(found[1], LAPTOP) == []
    assert all(0 < i["width"] <= PHONE[0] for i in found[0]["images"])


@needs_chromium
def test_the_check_sees_a_page_that_scrolls(report: Path, tmp_path: Path) -> None:
    """Not vacuous: without the tables' scroll boxes, or with one wide block, the same
    measurement finds the page wider than a phone and names what sticks out."""
    page = report.read_text(encoding="utf-8")
    unboxed = tmp_path / "unboxed.html"
    unboxed.write_text(page.replace('<div class="scroll">', "<div>"), encoding="utf-8")
    wide = tmp_path / "wide.html"
    wide.write_text(page.replace("</body>", '<div style="width:1200px">wide</div></body>'),
                    encoding="utf-8")
    (tmp_path / "charts").symlink_to(report.parent / "charts")  # the same charts
    no_box, too_wide = measure([unboxed, wide], [PHONE], tmp_path)
    assert any("not in a scroll box" in p for p in problems(no_box, PHONE))
    assert no_box["opened"]["scrollWidth"] > PHONE[0]
    assert any(w.startswith("table.") for w in no_box["opened"]["wide"])
    assert too_wide["closed"]["scrollWidth"] >= 1200
    assert any("wide" in w for w in too_wide["closed"]["wide"])


if __name__ == "__main__":  # screenshots of a built report: PAGE WxH:OUT.png ...
    if CHROMIUM is None:
        sys.exit("chromium is not installed")
    target = Path(sys.argv[1])
    wanted = []
    for arg in sys.argv[2:]:
        dims, _, path = arg.partition(":")
        w, _, h = dims.partition("x")
        wanted.append(((int(w), int(h)), Path(path)))
    screenshots(target, wanted)
    for found, ((w, h), path) in zip(measure([target], [s for s, _ in wanted]), wanted):
        print(f"{path}: {w}x{h}, page {found['closed']['scrollWidth']} px wide, "
              f"problems: {problems(found, (w, h)) or 'none'}")


def test_sendalls_own_curve_marks_the_sizes_the_peer_copied() -> None:
    """In a discarding run, cells with a TLS or unix case copy throughout (measure/sink.py):
    the committed quick run's 64 B and 16 KiB points are ringed and say why; a run that
    discarded everywhere has no ring."""
    results = Path(__file__).resolve().parents[1] / "results" / "epyc-2core-vm"
    mixed, plain = open_runs([results / "20261204-142250-quick",
                              results / "20261204-120612-quick"])
    figs = sendpath.throughput(mixed) or []
    bottom = figs[0].axes[1]
    rings = [c for c in bottom.collections if "peer copied" in str(c.get_label())]
    assert len(rings) == 1
    assert {int(x) for x, _ in rings[0].get_offsets()} == {64, 16384}
    figs = sendpath.throughput(plain) or []
    assert not [c for c in figs[0].axes[1].collections if "peer copied" in str(c.get_label())]
