"""Who may hold one of the agent's handshake slots, and how long a failing address waits.

- **Slots.** At most PER_ADDRESS connections per source address (IPv6: per /64) may be in
  their handshake at once, and TOTAL overall. A newcomer pushes out the *oldest* one (it
  gets a "slots" error frame), never the newcomer: idle connections, however many, cannot
  keep out a client that completes its handshake in a few milliseconds.
- **Backoff.** After a failed login, the next greeting to the same address waits
  BACKOFF_BASE x 2^(failures - 1) seconds after the last failure, at most BACKOFF_CAP; a
  successful login, or FORGET seconds without a failure, clears it.
- **Log lines** about refused clients are rate-limited per address and kind: at most one
  every LOG_EVERY seconds, the next one saying how many were held back.

Memory is bounded: at most MAX_TRACKED addresses are remembered for backoff and logging.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PER_ADDRESS = 2
TOTAL = 64
BACKOFF_BASE, BACKOFF_CAP = 0.01, 0.25  # 20 wrong logins in a row take about 4 s
FORGET = 60.0
LOG_EVERY = 10.0
MAX_TRACKED = 4096


def address_key(host: str) -> str:
    """The unit a limit applies to: an IPv4 address (also IPv4-mapped), an IPv6 /64."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(eq=False)
class Pending:
    """One connection in its handshake."""

    conn: socket.socket
    key: str
    since: float = field(default_factory=time.monotonic)
    evicted: threading.Event = field(default_factory=threading.Event)


class Admission:
    """The agent's handshake slots, per-address login backoff and rate-limited log lines."""

    def __init__(self, log: Callable[[str], None], per_address: int = PER_ADDRESS,
                 total: int = TOTAL) -> None:
        self.log = log
        self.per_address, self.total = per_address, total
        self._lock = threading.Lock()
        self._pending: list[Pending] = []  # oldest first
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (failures, last one)
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}  # -> (last line, held)

    # -- slots
    def admit(self, conn: socket.socket, host: str) -> Pending:
        """A new connection takes a slot; the oldest one in its way is pushed out."""
        pending = Pending(conn, address_key(host))
        with self._lock:
            same = [p for p in self._pending if p.key == pending.key]
            victim = same[0] if len(same) >= self.per_address else (
                self._pending[0] if len(self._pending) >= self.total else None)
            if victim is not None:
                self._pending.remove(victim)
                victim.evicted.set()
                with contextlib.suppress(OSError):  # wakes its handler: it reads an EOF
                    victim.conn.shutdown(socket.SHUT_RD)
            self._pending.append(pending)
        if victim is not None:
            self.note(victim.key, "slots", f"{victim.key}: handshake slots full: pushed out "
                      f"a connection idle for {time.monotonic() - victim.since:.1f} s")
        return pending

    def release(self, pending: Pending) -> bool:
        """``pending`` leaves its slot (before its socket is closed); False if pushed out."""
        with self._lock:
            if pending in self._pending:
                self._pending.remove(pending)
                return True
            return False

    # -- backoff
    def wait_for(self, key: str) -> float:
        """Seconds the next greeting to ``key`` must wait (0: none)."""
        now = time.monotonic()
        with self._lock:
            failures, last = self._failures.get(key, (0, 0.0))
            if not failures:
                return 0.0
            if now - last > FORGET:
                del self._failures[key]
                return 0.0
        return max(0.0, last + backoff(failures) - now)

    def failed(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            failures = self._failures.pop(key, (0, 0.0))[0] + 1
            self._failures[key] = (failures, now)  # re-inserted: the dict stays in time order
            _trim(self._failures)
        self.note(key, "auth", f"{key}: login refused (wrong token): {failures} in a row; "
                               f"its next attempt waits {backoff(failures):.2f} s")

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    # -- log lines
    def note(self, key: str, kind: str, line: str) -> None:
        """Log ``line`` unless one of this kind about ``key`` went out LOG_EVERY s ago."""
        now = time.monotonic()
        with self._lock:
            last, held = self._logged.pop((key, kind), (-math.inf, 0))
            if now - last < LOG_EVERY:
                self._logged[(key, kind)] = (last, held + 1)
                return
            self._logged[(key, kind)] = (now, 0)
            _trim(self._logged)
        self.log(line + (f" ({held} more such lines held back)" if held else ""))


def backoff(failures: int) -> float:
    return min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** min(failures - 1, 30))


def _trim(table: dict[Any, Any]) -> None:
    """Bound ``table`` (in insertion order, the oldest update first): drop the oldest."""
    while len(table) > MAX_TRACKED:
        del table[next(iter(table))]
