"""``flushbench calibrate``: the harness ceiling, measured beside the C reference tools.

In one session, back to back: iperf3 (``-l`` at each stream size, JSON output) and sockperf
ping-pong (full RTT, same message size), then flushbench's own equivalent cases, then the
tools again. The ratios say how close the Python send path under flushbench gets to what a
C tool gets on the same machine at the same moment. Stored with the run as
``calibration.csv`` and under ``calibration`` in ``meta.json``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import procs
from ..errors import SetupError, UsageError
from ..results import atomic_write, load, read_meta, write_json
from .manager import ProgressFactory, run
from .options import RunOptions

if TYPE_CHECKING:
    from ..netlab import Netlab

INSTALL_HINT = "apt-get install iperf3 sockperf"
STREAM_STRATEGIES = ("send", "sendall", "makefile", "sendmsg", "msg_more")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def whole_seconds(seconds: float) -> int:
    """iperf3 and sockperf take whole seconds (iperf3 -t 0 would run forever)."""
    return max(1, round(seconds))


def tool_status() -> dict[str, str | None]:
    return {name: shutil.which(name) for name in ("iperf3", "sockperf")}


@dataclass
class Place:
    """Where the reference tools run: loopback, or server and client in a netlab's namespaces."""

    host: str = "127.0.0.1"
    server_prefix: list[str] = field(default_factory=list)
    client_prefix: list[str] = field(default_factory=list)
    lab: Netlab | None = None

    def probe(self, port: int) -> bool:
        try:
            sock = self.lab.socket("client") if self.lab else socket.socket()
            with sock:
                sock.settimeout(0.2)
                sock.connect((self.host, port))
            return True
        except OSError:
            return False


@contextlib.contextmanager
def server(argv: list[str], port: int, place: Place) -> Iterator[None]:
    """A reference tool's server, waited for until it accepts, always reaped."""
    proc = subprocess.Popen([*place.server_prefix, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not place.probe(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SetupError(f"{argv[0]} server did not start on {place.host}:{port}")
            time.sleep(0.05)
        yield
    finally:
        procs.stop(proc)


def iperf3(size: int, seconds: float, place: Place) -> float:
    """iperf3's received bits per second with writes of ``size`` bytes."""
    port = free_port()
    # no -1: the readiness probe would use up the one test a -1 server takes
    with server(["iperf3", "-s", "-B", place.host, "-p", str(port)], port, place):
        try:
            out = subprocess.run([*place.client_prefix, "iperf3", "-c", place.host, "-p",
                                  str(port), "-l", str(size), "-t", str(whole_seconds(seconds)),
                                  "-J"], capture_output=True, text=True, timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            raise SetupError(f"iperf3 did not finish within {seconds + 30:.0f} s") from None
    try:
        return float(json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"])
    except (ValueError, KeyError) as exc:
        raise SetupError(f"iperf3 gave no result ({exc}): {out.stderr.strip()[:200]}") from None


_PCT = re.compile(r"percentile\s+([\d.]+)\s*=\s*([\d.]+)")


def sockperf(size: int, seconds: float, place: Place) -> dict[str, float]:
    """sockperf ping-pong full-RTT percentiles (µs) for ``size``-byte messages over TCP."""
    port = free_port()
    with server(["sockperf", "server", "-i", place.host, "-p", str(port), "--tcp"], port, place):
        try:
            out = subprocess.run([*place.client_prefix, "sockperf", "ping-pong", "-i",
                                  place.host, "-p", str(port), "--tcp", "-m", str(size), "-t",
                                  str(whole_seconds(seconds)), "--full-rtt"],
                                 capture_output=True, text=True, timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            raise SetupError(f"sockperf did not finish within {seconds + 30:.0f} s") from None
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    pct = {float(q): float(v) for q, v in _PCT.findall(text)}
    if 50.0 not in pct:
        raise SetupError(f"sockperf gave no percentiles: {text.strip()[-200:]}")
    return {"p50": pct[50.0], "p90": pct.get(90.0, float("nan")),
            "p99": pct.get(99.0, float("nan"))}


def suite_text(sizes: list[int], rr_size: int) -> str:
    strategies = ", ".join(f'"{s}"' for s in STREAM_STRATEGIES)
    return f"""[suite]
name = "calibration"
description = "flushbench's cases that the reference tools also measure"
processes = 2
values = 3
warmups = 1
value_time = 0.25
timeout = 90

[[matrix]]
workload = "stream"
strategy = [{strategies}]
msg_size = [{", ".join(map(str, sizes))}]
ops = 20000

[[matrix]]
workload = "rr"
strategy = ["send", "sendall"]
nodelay = true
parts = 1
msg_size = {rr_size}
ops = 6000
"""


def calibrate(opts: RunOptions, sizes: list[int], rr_size: int, seconds: float,
              progress_factory: ProgressFactory) -> tuple[Path, pd.DataFrame]:
    """Run tools, flushbench, tools again; store and return the calibration table."""
    if opts.peers:
        raise UsageError("calibrate runs the reference tools itself, on loopback or --link; "
                         "against a remote host run iperf3/sockperf there by hand")
    have = tool_status()
    lab_ctx: AbstractContextManager[Netlab | None] = contextlib.nullcontext(None)
    if opts.link:
        from ..netlab import Netlab

        lab_ctx = Netlab(opts.link)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, lab_ctx as lab:
        place = Place()
        if lab is not None:
            ip = shutil.which("ip") or "ip"
            place = Place(lab.server_addr, [ip, "netns", "exec", lab.server_ns],
                          [ip, "netns", "exec", lab.client_ns], lab)

        def tools(phase: str) -> None:
            if have["iperf3"]:
                for size in sizes:
                    rows.append({"tool": "iperf3", "phase": phase, "msg_size": size,
                                 "throughput_bps": iperf3(size, seconds, place)})
            if have["sockperf"]:
                pct = sockperf(rr_size, seconds, place)
                rows.append({"tool": "sockperf", "phase": phase, "msg_size": rr_size,
                             **{f"rtt_{k}_us": v for k, v in pct.items()}})

        tools("before")
        suite = Path(tmp) / "calibration.toml"
        suite.write_text(suite_text(sizes, rr_size))
        opts.suite = str(suite)
        outcomes = run(opts, progress_factory)
        tools("after")
    run_dir = outcomes[0].run_dir
    if run_dir is None or outcomes[0].interrupted:
        raise UsageError("calibration interrupted")
    table = ratios(load(run_dir), pd.DataFrame(rows), sizes, rr_size)
    with atomic_write(Path(run_dir) / "calibration.csv") as fh:
        table.to_csv(fh, index=False)
    meta = read_meta(run_dir)
    meta["calibration"] = {"tools": {k: bool(v) for k, v in have.items()},
                           "raw": rows, "ratios": table.to_dict("records"),
                           "seconds": seconds, "install_hint": INSTALL_HINT}
    write_json(Path(run_dir) / "meta.json", meta)
    return Path(run_dir), table


def ratios(frame: pd.DataFrame, tools: pd.DataFrame, sizes: list[int],
           rr_size: int) -> pd.DataFrame:
    """flushbench's best figure against each tool's mean over the two phases."""
    out = []
    ok = frame[frame["error"] == ""]
    for size in sizes:
        stream = ok[(ok["workload"] == "stream") & (ok["msg_size"] == size)]
        if stream.empty:
            continue
        best = stream.iloc[int(np.argmax(stream["throughput_bps"].to_numpy(dtype=float)))]
        ref = tools[(tools.get("tool") == "iperf3") & (tools.get("msg_size") == size)] \
            if not tools.empty else tools
        ref_bps = float(ref["throughput_bps"].mean()) if len(ref) else float("nan")
        out.append({"metric": f"stream {size} B throughput (Gbit/s)", "case": best["case"],
                    "flushbench": best["throughput_bps"] / 1e9, "reference": ref_bps / 1e9,
                    "tool": "iperf3", "ratio": best["throughput_bps"] / ref_bps})
    rr = ok[(ok["workload"] == "rr") & (ok["msg_size"] == rr_size)]
    ref = tools[tools.get("tool") == "sockperf"] if not tools.empty else tools
    if not rr.empty:
        best = rr.iloc[int(np.argmin(rr["lat_p50_us"].to_numpy(dtype=float)))]
        for q in ("p50", "p99"):
            ref_us = float(ref[f"rtt_{q}_us"].mean()) if len(ref) else float("nan")
            out.append({"metric": f"rr {rr_size} B RTT {q} (us)", "case": best["case"],
                        "flushbench": best[f"lat_{q}_us"], "reference": ref_us,
                        "tool": "sockperf", "ratio": best[f"lat_{q}_us"] / ref_us})
    table: pd.DataFrame = pd.DataFrame(out, columns=["metric", "case", "flushbench", "reference",
                                                     "tool", "ratio"])
    return table
