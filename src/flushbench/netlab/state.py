"""Lab records under /run/flushbench: which labs exist, who owns them, and their removal.

A lab writes its record *before* it creates anything, naming its owner process and the
namespaces it is about to make. A lab is then one of:

- **persistent** (made by ``flushbench netlab up``): never stale, whoever made it; only
  ``netlab down NAME`` or ``netlab down --all`` removes it;
- **in use**: its owner process is alive and tears it down itself;
- **stale**: its owner is gone (SIGKILL), or its teardown failed and left the record with the
  failures; :func:`cleanup_stale` (run by every new lab) removes it.

Only what a record names is ever touched: an ``fb-`` namespace without a record belongs to
someone else and survives every clean-up. Removal tries every step and keeps the record
(with the failures) when one fails, so ``netlab status`` shows it and a later clean-up or
``netlab down NAME`` tries again.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import SetupError
from .netns import NETNS_DIR, alive, kill_pids, start_time
from .teardown import Steps, TeardownError, remove_namespaces

STATE_DIR = Path("/run/flushbench")
PREFIX = "fb-"
LOCK_WAIT_S = 60.0
_KEYS = {"name": str, "slot": int, "client_ns": str, "server_ns": str}


def state_path(slot: int) -> Path:
    return STATE_DIR / f"{slot}.json"


def read_states() -> list[dict[str, Any]]:
    states = []
    for path in sorted(STATE_DIR.glob("*.json")) if STATE_DIR.is_dir() else []:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced right now
        if isinstance(state, dict) and all(isinstance(state.get(k), t) for k, t in _KEYS.items()):
            states.append(state)
    return states


def write_state(state: dict[str, Any]) -> None:
    """Replace a lab's record atomically."""
    tmp = STATE_DIR / f".{os.getpid()}.{state['slot']}.tmp"
    tmp.write_text(json.dumps(state))
    tmp.replace(state_path(state["slot"]))


def is_stale(state: dict[str, Any]) -> bool:
    """Not persistent, and its owner is gone or its teardown failed."""
    if state.get("persistent"):
        return False
    return bool(state.get("failed")) or not alive(state.get("owner_pid"),
                                                    state.get("owner_start"))


def list_labs() -> list[dict[str, Any]]:
    """Every recorded lab, with 'stale' (see :func:`is_stale`)."""
    return [dict(s, stale=is_stale(s)) for s in read_states()]


def namespaces(state: dict[str, Any]) -> list[str]:
    """The namespaces a record claims (only those its lab made, or was about to make)."""
    return [str(n) for n in state.get("namespaces", [state["client_ns"], state["server_ns"]])]


def destroy_state(state: dict[str, Any]) -> list[str]:
    """Tear down the lab a record names, from any process, trying every step. Returns the
    failures (one line each); the record is removed only when there were none, else it is
    kept with the failures, which makes the lab stale: the next clean-up tries again."""
    steps = Steps(state["name"])
    pid = state.get("relay_pid")
    if pid and alive(pid, state.get("relay_start")):
        steps(f"stop the delay-line relay (pid {pid})", kill_pids, [pid])
    remove_namespaces(steps, namespaces(state))
    if steps.failures:
        steps("keep the lab's record", write_state, dict(state, failed=steps.failures))
    else:
        for suffix in (".json", ".log"):
            path = state_path(state["slot"]).with_suffix(suffix)
            steps(f"remove {path}", path.unlink, True)
    return steps.failures


@contextmanager
def _locked() -> Iterator[None]:
    """One process at a time removes labs: two removers of one lab would race."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with (STATE_DIR / ".lock").open("a") as lock:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SetupError(f"another process has been removing labs for "
                                     f"{LOCK_WAIT_S:g} s (it holds {STATE_DIR}/.lock): "
                                     "stop it or try again later") from None
                time.sleep(0.05)
        yield  # closing the file releases the lock, also when this process dies


def _sweep(select: Callable[[dict[str, Any]], bool]) -> tuple[list[str], list[str]]:
    """Remove the recorded labs *select* picks: (names removed, failure lines)."""
    removed: list[str] = []
    failures: list[str] = []
    with _locked():
        for state in read_states():
            if select(state):
                lines = destroy_state(state)
                failures += lines
                if not lines:
                    removed.append(state["name"])
        for tmp in STATE_DIR.glob(".*.tmp"):
            pid = tmp.name.split(".")[1]
            if not pid.isdigit() or start_time(int(pid)) is None:
                tmp.unlink(missing_ok=True)  # a record half-written by a killed process
    return removed, failures


def cleanup_stale() -> list[str]:
    """Remove stale labs (see :func:`is_stale`) and return their names; never anything
    without a record. Raises TeardownError after trying every one, if some failed."""
    removed, failures = _sweep(is_stale)
    if failures:
        raise TeardownError(failures)
    return removed


def destroy(name: str) -> bool:
    """Tear down lab *name* ('fb-3' or '3') from any process, even one in use; False if there
    is none. Raises TeardownError after trying every step, if some failed."""
    name = name if name.startswith(PREFIX) else PREFIX + name
    found = False
    failures = []
    with _locked():
        for state in read_states():
            if state["name"] == name:
                found = True
                failures += destroy_state(state)
    if failures:
        raise TeardownError(failures)
    return found


def destroy_all() -> tuple[list[str], list[str], list[str]]:
    """``netlab down --all``: every persistent lab and every stale one. Labs in use by a
    running process are left to their owner; namespaces without a record are never touched.
    Returns (names removed, names left in use, failure lines)."""
    removed, failures = _sweep(lambda s: bool(s.get("persistent")) or is_stale(s))
    in_use = [s["name"] for s in read_states() if not s.get("persistent") and not is_stale(s)]
    return removed, in_use, failures


def status_lines() -> list[str]:
    """``netlab status``: one line per recorded lab (and one per teardown failure), then the
    ``fb-`` namespaces that no record claims."""
    lines, claimed = [], set()
    for s in read_states():
        claimed.update(namespaces(s))
        relay = f" relay {s['relay_pid']}" if s.get("relay_pid") else ""
        kind = ("persistent" if s.get("persistent")
                else "STALE (the next lab or 'netlab down --all' removes it)" if is_stale(s)
                else f"in use by pid {s.get('owner_pid')}")
        lines.append(f"{s['name']}  {s.get('link')} via {s.get('backend')}{relay}  "
                     f"client {s['client_ns']} {s.get('client_addr')}  "
                     f"server {s['server_ns']} {s.get('server_addr')}  {kind}")
        lines += [f"  teardown failed: {line}" for line in s.get("failed", [])]
    try:
        others = sorted(n for n in os.listdir(NETNS_DIR)
                        if n.startswith(PREFIX) and n not in claimed)
    except OSError:
        others = []
    if others:
        lines.append(f"not flushbench labs (no record, never touched): {', '.join(others)}")
    return lines or ["no labs"]
