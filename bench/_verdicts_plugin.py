"""Strategies for bench_verdicts.py, loaded into flushbench's workers with --strategy-plugin.

``Alias*``: ``sendall`` under other names, for A/A comparisons (the same code, other labels).

``Slow*``: ``sendall`` made slower by a known factor f, for the power test. It keeps a
per-message time budget, measured as it goes, so the slowdown follows the machine's drift:

* It times its own messages, its waits left out, and busy-waits f times that. The waits come
  *before* a message: on a request/response they then cannot overlap the peer's work.
* ``Slow5`` (streams: throughput is a mean) looks at the clock about once per ``LOOK_NS``
  of messages and waits, there and then, f times the time the messages since the last look
  took: a message between looks costs only a countdown.
* ``Slow5P50`` (rr: the verdict is on p50 latency) waits before every message f times the
  *median* time of the last ``WINDOW`` messages, so the p50 moves by f.
* An interval ``PAUSE`` times the last (a pause between values) is not waited for.

What it cannot budget: its countdown (tens of ns per message), a look (about 1 us per ms),
and on rr the clock reads around each wait (some 100-200 ns per request). Not a benchmark.
"""

from __future__ import annotations

import math
import socket
import time
from collections import deque
from collections.abc import Sequence

from flushbench.measure.strategies import Buffer, SendallStrategy


class AliasA(SendallStrategy):
    name = "alias_a"
    summary = "sendall under another name (A/A control)"


def _alias(letter: str) -> type[SendallStrategy]:
    """sendall under the name alias_<letter>, as a module attribute --strategy-plugin finds."""
    cls = type(f"Alias{letter.upper()}", (AliasA,), {"name": f"alias_{letter}"})
    globals()[cls.__name__] = cls
    return cls


ALIASES: tuple[type[SendallStrategy], ...] = (AliasA, *(_alias(c) for c in "bcdefgh"))


LOOK_NS = 1_000_000.0  # look at the clock about once per ms of messages
WINDOW = 31  # messages whose median time sets the wait (median mode)
PAUSE = 8.0
MAX_EVERY = 4096


class SlowSendall(SendallStrategy):
    """``sendall`` per part after a busy wait of ``factor`` times its own time per message."""

    name = "slow_sendall"
    summary = "sendall plus a busy wait: a known slowdown (bench_verdicts.py)"
    factor = 0.0
    median = False  # wait factor x the median time per message (p50), not the mean
    clock = staticmethod(time.perf_counter_ns)

    def __init__(self, sock: socket.socket, buffer: int = 0) -> None:
        super().__init__(sock, buffer)
        self._left = 1  # messages until the next call of _due
        self._looks_in = 1  # messages until the next look
        self._every = 1  # messages between two looks
        self._mark = 0  # the clock after the last look (0: none yet)
        self._spun = 0  # ns waited before messages since the last look (median mode)
        self._wait = 0  # ns to wait before each message (median mode)
        self._per_msg = 0.0  # mean ns per message, waits left out, at the last look
        self._ring: deque[int] = deque(maxlen=WINDOW)  # median mode: messages' own times
        self._last = 0  # median mode: the clock after the last message's wait
        self.waited_ns = 0

    def send_message(self, parts: Sequence[Buffer]) -> None:
        self._left -= 1  # all a message between two looks costs (mean mode)
        if self._left <= 0:
            self._due()
        sendall = self.sock.sendall
        for part in parts:
            sendall(part)
        self.calls += len(parts)

    def _due(self) -> None:
        """Mean mode: a look. Median mode: every message, and a look now and then."""
        self._looks_in = self._looks_in - 1 if self.median else 0
        if self._looks_in <= 0:
            self._look()
        if self.median:
            self._before_message()
        self._left = 1 if self.median else self._looks_in

    def _spin(self, now: int, wait: int) -> int:
        """Busy-wait until ``now + wait``; the clock after it."""
        clock, end = self.clock, now + wait
        after = clock()
        while after < end:
            after = clock()
        self.waited_ns += after - now
        return after

    def _before_message(self) -> None:
        now = self.clock()
        if self._last:
            self._ring.append(now - self._last)
        after = self._spin(now, self._wait) if self._wait else now
        self._spun += after - now
        self._last = after

    def _look(self) -> None:
        now = self.clock()
        after = now
        if self._mark:
            messages = self._every
            per_msg = max(1.0, (now - self._mark - self._spun) / messages)
            paused = self._per_msg and per_msg > PAUSE * self._per_msg
            self._every = max(1, min(MAX_EVERY, math.ceil(LOOK_NS / per_msg)))
            if self.median:
                self._wait = round(self.factor * (sorted(self._ring)[len(self._ring) // 2]
                                                  if self._ring else per_msg))
            elif not paused:  # wait now for the messages just measured
                after = self._spin(now, round(self.factor * per_msg * messages))
            self._per_msg = per_msg
        self._looks_in = self._every
        self._spun = 0
        self._mark = after


def _slowed(percent: int) -> tuple[type[SlowSendall], type[SlowSendall]]:
    """sendall slowed by ``percent`` %: ``slowN`` (mean time, streams) and ``slowN_p50``
    (median time, rr), as module attributes --strategy-plugin finds."""
    mean = type(f"Slow{percent}", (SlowSendall,), {"name": f"slow{percent}",
                                                   "factor": percent / 100})
    p50 = type(f"Slow{percent}P50", (mean,), {"name": f"slow{percent}_p50", "median": True})
    globals().update({mean.__name__: mean, p50.__name__: p50})
    return mean, p50


SLOWED: dict[float, tuple[type[SlowSendall], type[SlowSendall]]] = {
    p / 100: _slowed(p) for p in (2, 3, 4, 5, 7, 10, 15, 20)}
"""slowdown -> (the class for streams: mean time, the class for rr: median time)"""


class _NullSocket:
    """Takes sendall() and does nothing: the strategies' own cost, without a socket."""

    def sendall(self, data: Buffer) -> None:
        return None


def countdown_overhead_ns(messages: int = 100_000, repeat: int = 5) -> float:
    """What SlowSendall's countdown adds per message over sendall's own code, in ns (>= 0).

    Both strategies send ``messages`` two-part messages to a null socket, interleaved,
    ``repeat`` times; the difference of the minima.
    """
    parts = [b"\0" * 4, b"\0" * 60]
    null = _NullSocket()
    plain = SendallStrategy(null)  # type: ignore[arg-type]  # duck-typed: sendall only
    counting = SlowSendall(null)  # type: ignore[arg-type]
    counting._left = 1 << 29  # never looks at the clock here
    best = {"plain": float("inf"), "counting": float("inf")}
    for _ in range(repeat):
        for key, strategy in (("plain", plain), ("counting", counting)):
            send, t0 = strategy.send_message, time.perf_counter_ns()
            for _i in range(messages):
                send(parts)
            best[key] = min(best[key], (time.perf_counter_ns() - t0) / messages)
    return max(0.0, best["counting"] - best["plain"])
