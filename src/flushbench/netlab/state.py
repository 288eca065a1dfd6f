"""Lab state files under /run/flushbench: which labs exist, who owns them, and removal.

A lab writes its state file *before* it creates anything, naming its owner process; a lab
whose owner is gone is stale and is removed by :func:`cleanup_stale`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .netns import NETNS_DIR, alive, delete_ns, start_time, stop_pids

STATE_DIR = Path("/run/flushbench")
PREFIX = "fb-"


def state_path(slot: int) -> Path:
    return STATE_DIR / f"{slot}.json"


def read_states() -> list[dict[str, Any]]:
    states = []
    for path in sorted(STATE_DIR.glob("*.json")) if STATE_DIR.is_dir() else []:
        try:
            states.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # being replaced right now
    return states


def list_labs() -> list[dict[str, Any]]:
    """Every recorded lab, with 'alive': False when its owner is gone."""
    return [dict(s, alive=s.get("owner_pid") is None
                 or alive(s["owner_pid"], s.get("owner_start"))) for s in read_states()]


def destroy_state(state: dict[str, Any]) -> None:
    if state.get("relay_pid") and alive(state["relay_pid"], state.get("relay_start")):
        stop_pids([state["relay_pid"]])
    for ns in (state["client_ns"], state["server_ns"]):
        delete_ns(ns)
    for suffix in (".json", ".log"):
        state_path(state["slot"]).with_suffix(suffix).unlink(missing_ok=True)


def destroy(name: str) -> bool:
    """Tear down lab *name* ('fb-3' or '3') from any process; False if there is none."""
    name = name if name.startswith(PREFIX) else PREFIX + name
    found = [s for s in read_states() if s["name"] == name]
    for state in found:
        destroy_state(state)
    return bool(found)


def cleanup_stale() -> list[str]:
    """Remove labs whose owner process is dead and ``fb-`` namespaces no lab records."""
    # List namespaces *before* reading the states: a lab writes its state before it makes its
    # namespaces, so a lab being built right now is never mistaken for an orphan.
    entries = sorted(NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else []
    removed: list[str] = []
    known: set[str] = set()
    for state in list_labs():
        if state["alive"]:
            known.update((state["client_ns"], state["server_ns"]))
        else:
            destroy_state(state)
            removed.append(state["name"])
    for tmp in STATE_DIR.glob(".*.tmp") if STATE_DIR.is_dir() else []:
        pid = tmp.name.split(".")[1]
        if not pid.isdigit() or start_time(int(pid)) is None:
            tmp.unlink(missing_ok=True)  # a state file half-written by a killed process
    for entry in entries:
        if entry.name.startswith(PREFIX) and entry.name not in known:
            delete_ns(entry.name)
            removed.append(entry.name)
    return removed


def destroy_all() -> list[str]:
    """Every recorded lab and every stale ``fb-`` namespace (``netlab down --all``)."""
    names = []
    for state in read_states():
        destroy_state(state)
        names.append(str(state["name"]))
    return names + cleanup_stale()


def status_lines() -> list[str]:
    """``netlab status``: one line per recorded lab."""
    lines = []
    for s in list_labs():
        relay = f" relay {s['relay_pid']}" if s.get("relay_pid") else ""
        lines.append(f"{s['name']}  {s['link']} via {s['backend']}{relay}  "
                     f"client {s['client_ns']} {s['client_addr']}  "
                     f"server {s['server_ns']} {s['server_addr']}"
                     + ("" if s["alive"]
                        else "  STALE (owner gone; next lab or 'down' removes it)"))
    return lines or ["no labs"]
