"""The built report opened in headless Chromium: every chart loads, nothing logs an error.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (file descriptors 3 and 4,
NUL-separated JSON), so it needs nothing beyond the standard library and Debian's
``chromium`` package. Skipped, with the reason, where Chromium is missing.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flushbench.report.document import build_report
from synthetic import host, make_meta, small_cases, write_run

CHROMIUM = os.environ.get("FLUSHBENCH_CHROMIUM") or shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(apt-get install chromium); the browser check needs it")
TIMEOUT_S = 60.0
PROBE = """(async () => {
  await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
  return JSON.stringify([...document.images].map(i => ({
    src: i.getAttribute('src'), chart: i.dataset.chart || null,
    complete: i.complete, width: i.naturalWidth})));
})()"""


class Chromium:
    """A headless Chromium driven over the DevTools pipe."""

    def __init__(self, profile: Path, extra: tuple[str, ...] = ()) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                 "--mute-audio", *extra, f"--user-data-dir={profile}",
                 "--remote-debugging-pipe", "about:blank"]
        # A tiny Python trampoline puts our pipe ends on fds 3 and 4, where Chromium
        # expects them, then becomes Chromium.
        trampoline = ("import fcntl, os, sys; "
                      "r, w = (fcntl.fcntl(int(a), fcntl.F_DUPFD, 10) for a in sys.argv[1:3]); "
                      "os.dup2(r, 3); os.dup2(w, 4); os.close(r); os.close(w); "
                      "os.execv(sys.argv[3], sys.argv[3:])")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", trampoline, str(to_chrome_r), str(from_chrome_w),
             str(CHROMIUM), *flags], pass_fds=(to_chrome_r, from_chrome_w),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium exited (code {self.proc.poll()})")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, since: int = 0,
                   timeout: float = TIMEOUT_S) -> None:
        """Wait for an event, counting those already received from index ``since`` on."""
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return
            seen = len(self.events)
            self.events.append(self._read(deadline))


def inspect_page(page: Path, screenshot: Path) -> dict[str, Any]:
    """Load ``page``; return its images, console errors and page height; save a screenshot."""
    profile = screenshot.parent / f".chromium-{screenshot.stem}"
    browser = Chromium(profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride", {
            "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session)
        mark = len(browser.events)  # the load event may arrive before navigate's reply
        browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired", session, since=mark)
        probe = browser.send("Runtime.evaluate", {"expression": PROBE, "awaitPromise": True,
                                                  "returnByValue": True}, session=session)
        images = json.loads(probe["result"]["value"])
        size = browser.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        height = min(int(size["height"]), 16000)
        shot = browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 0.5}},
            session=session)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        errors = []
        for event in browser.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error",
                                                                              "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                       for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}")
        return {"images": images, "errors": errors, "height": height}
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)


def problems(result: dict[str, Any], charts_dir: Path) -> list[str]:
    """Everything a reader would see broken: bad images, missing charts, console errors."""
    found = [f"broken image {i['src']}" for i in result["images"]
             if not i["complete"] or i["width"] == 0]
    shown = {i["chart"] for i in result["images"] if i["chart"]}
    found += [f"chart not shown: charts/{p.name}" for p in sorted(charts_dir.glob("*.png"))
              if f"charts/{p.name}" not in shown]
    found += [f"console error: {e}" for e in result["errors"]]
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    a = write_run(root, "alpha", "run1", small_cases(),
                  failed=["stream-sendall-s64-p2-nd1-sbauto-loopback"])
    b = write_run(root, "beta", "run1", small_cases(), speed=1.3, seed=2, meta=make_meta(
        "beta", "run1", client=host("beta", kernel="6.8.0", python="3.12.3")))
    out = tmp_path_factory.mktemp("report")
    build_report([a, b], out)
    return out


def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    """Every chart image loads, every chart file is shown and no console error is logged."""
    shot = tmp_path / "report.png"
    result = inspect_page(report / "index.html", shot)
    assert problems(result, report / "charts") == []
    assert len(result["images"]) == len(list((report / "charts").glob("*.png"))) >= 18
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    keep = os.environ.get("FLUSHBENCH_SCREENSHOT_DIR")
    if keep:  # let a person look at what the browser showed
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")


def test_browser_check_catches_a_broken_chart(report: Path, tmp_path: Path) -> None:
    """Deleting a chart file makes the check report a broken image and a failed load."""
    copy = tmp_path / "site"
    shutil.copytree(report, copy)
    victim = sorted((copy / "charts").glob("*-nagle.png"))[0]
    victim.unlink()
    found = problems(inspect_page(copy / "index.html", tmp_path / "broken.png"), copy / "charts")
    assert f"broken image charts/{victim.name}" in found
    assert any(p.startswith("console error:") and victim.name in p for p in found)


def test_browser_check_catches_script_errors_and_unshown_charts(report: Path,
                                                                 tmp_path: Path) -> None:
    """A console.error, an exception and a chart file the page never shows all count."""
    copy = tmp_path / "site"
    shutil.copytree(report, copy)
    page = copy / "index.html"
    page.write_text(page.read_text(encoding="utf-8").replace(
        "</body>", "<script>console.error('boom'); undefinedCall();</script></body>"),
        encoding="utf-8")
    shutil.copy(next((copy / "charts").glob("*.png")), copy / "charts" / "orphan.png")
    found = problems(inspect_page(page, tmp_path / "err.png"), copy / "charts")
    assert "console error: boom" in found
    assert any("undefinedCall" in p or "Uncaught" in p for p in found)
    assert "chart not shown: charts/orphan.png" in found
