"""Facts about one end of a run: machine, kernel, Python, TCP sysctls and interfaces.

Collected by the client for itself and by the peer (or remote agent) for itself, so
``meta.json`` says *why* two machines differ.
"""

from __future__ import annotations

import io
import os
import platform
import re
import socket
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

SYSCTLS = (
    "net/ipv4/tcp_wmem", "net/ipv4/tcp_rmem", "net/core/wmem_max", "net/core/rmem_max",
    "net/core/wmem_default", "net/ipv4/tcp_autocorking", "net/ipv4/tcp_notsent_lowat",
    "net/ipv4/tcp_congestion_control", "net/ipv4/tcp_slow_start_after_idle",
    "net/ipv4/tcp_low_latency", "net/ipv4/tcp_mtu_probing", "net/core/default_qdisc",
    "net/ipv4/tcp_limit_output_bytes",
)


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def sysctls() -> dict[str, str]:
    out = {}
    for name in SYSCTLS:
        value = _read(f"/proc/sys/{name}")
        if value is not None:
            out[name.replace("/", ".")] = re.sub(r"\s+", " ", value)
    return out


def interfaces() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    base = Path("/sys/class/net")
    if not base.is_dir():
        return out
    for dev in sorted(base.iterdir()):
        mtu = _read(dev / "mtu")
        out[dev.name] = {"mtu": int(mtu) if mtu and mtu.isdigit() else None,
                         "speed": _read(dev / "speed"), "operstate": _read(dev / "operstate")}
    return out


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return match.group(1).strip() if match else platform.processor() or platform.machine()


def mem_total() -> int | None:
    match = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo") or "", re.M)
    return int(match.group(1)) * 1024 if match else None


def version_of(dist: str) -> str | None:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


def collect_host() -> dict[str, Any]:
    """This host's facts (cheap: a few /proc reads)."""
    return {
        "hostname": socket.gethostname(),
        "platform": sys.platform,
        "kernel": platform.release(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else None,
        "mem_total": mem_total(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "python_executable": sys.executable,
        "io_default_buffer_size": io.DEFAULT_BUFFER_SIZE,
        "has_tcp_cork": hasattr(socket, "TCP_CORK"),
        "has_msg_more": hasattr(socket, "MSG_MORE"),
        "sysctls": sysctls(),
        "interfaces": interfaces(),
        "versions": {d: version_of(d) for d in ("flushbench", "pyperf", "numpy", "pandas")},
    }


def machine_id(host: dict[str, Any] | None = None) -> str:
    """A filesystem-safe name for this machine: its hostname, lower-case."""
    name = (host or {}).get("hostname") or socket.gethostname() or "machine"
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.") or "machine"
