"""A packet delay line between two TUN devices, for kernels without ``netem``.

One relay process holds two TUN file descriptors (IFF_TUN | IFF_NO_PI: every read is one IP
packet, every write injects one). A packet read from one device is written to the other after
the link's one-way delay, plus a jitter sample, after serialization at the link rate, unless
random loss or a full queue drops it. Order is kept per direction (FIFO, as on a wire and as
netem does with a FIFO child): ``release = max(previous release, departure + delay + jitter)``.

The owner (:mod:`flushbench.netlab`) creates the devices, moves them into the namespaces and
starts ``python -m flushbench.delayline --fds A,B ...`` with the two fds inherited. The relay
stops on SIGTERM/SIGINT, or when the owner's *lifeline* pipe reaches EOF (the owner died, even
by SIGKILL), then prints its counters to stderr. Closing the fds removes the TUN devices.

:class:`Direction` is the pure scheduling logic (a clock is passed in), so it is tested
without root; :func:`relay` is the select loop around two of them.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import random
import select
import signal
import struct
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

READ_SIZE = 65536  # largest IPv4 packet; the TUN MTU is below this
READ_BATCH = 64  # packets read from one device before the timers are served again
MAX_EARLY = 0.001  # wake at most 1 ms early and spin the rest: timers on VMs fire late
MEMORY_CAP = 64 << 20  # bytes held per direction whatever the link (a guard, not a model)


def open_tun(name: str) -> int:
    """Create the TUN device *name* (in the caller's namespace) and return its fd.

    The device is not persistent: it disappears when the last fd to it is closed.
    """
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    except BaseException:
        os.close(fd)
        raise
    return fd


def backlog_cap(rate_bps: int, delay_s: float, mtu: int) -> int:
    """Router buffer in bytes for a rate-limited link: one RTT (at least 20 ms) of the rate,
    and never less than 16 full packets, so a big-MTU link still has room to queue."""
    if rate_bps <= 0:
        return MEMORY_CAP
    return max(int(rate_bps / 8 * max(2 * delay_s, 0.020)), 16 * mtu)


@dataclass
class Counters:
    """What happened to the packets of one direction."""

    packets: int = 0
    bytes: int = 0
    lost: int = 0  # dropped by the loss model
    overflow: int = 0  # dropped because the queue was full
    write_errors: int = 0


class Direction:
    """One direction of the emulated link: a FIFO of ``(release_time, packet)``."""

    def __init__(self, *, delay: float = 0.0, jitter: float = 0.0, loss: float = 0.0,
                 rate_bps: int = 0, backlog: int = MEMORY_CAP, rng: random.Random | None = None,
                 ) -> None:
        self.delay = delay
        self.jitter = jitter
        self.loss = loss  # probability per packet, 0..1
        self.byte_time = 8.0 / rate_bps if rate_bps > 0 else 0.0  # seconds per byte on the wire
        self.backlog = backlog  # bytes waiting for the wire before a tail drop
        self.rng = rng or random.Random()
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queued_bytes = 0
        self.link_free = 0.0  # when the wire finishes serializing what it has
        self.last_release = 0.0
        self.counters = Counters()

    def offer(self, packet: bytes, now: float) -> bool:
        """Schedule *packet* that arrived at *now*; False if it was dropped."""
        size = len(packet)
        if self.loss and self.rng.random() < self.loss:
            self.counters.lost += 1
            return False
        if self.queued_bytes + size > MEMORY_CAP:
            self.counters.overflow += 1
            return False
        departure = now
        if self.byte_time:
            start = max(now, self.link_free)
            if (start - now) / self.byte_time + size > self.backlog:
                self.counters.overflow += 1
                return False
            departure = self.link_free = start + size * self.byte_time
        extra = self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        release = max(self.last_release, departure + max(0.0, self.delay + extra))
        self.last_release = release
        self.queue.append((release, packet))
        self.queued_bytes += size
        return True

    def next_release(self) -> float | None:
        """When the head packet is due, or None when the line is empty."""
        return self.queue[0][0] if self.queue else None

    def due(self, now: float) -> Iterator[bytes]:
        """Pop and yield every packet whose release time has come."""
        queue = self.queue
        while queue and queue[0][0] <= now:
            packet = queue.popleft()[1]
            self.queued_bytes -= len(packet)
            yield packet


class _Stop(Exception):
    pass


def _stop(signum: int, frame: object) -> None:
    raise _Stop


def _deliver(line: Direction, fd: int, now: float) -> None:
    for packet in line.due(now):
        try:
            os.write(fd, packet)
        except OSError:  # device gone or packet refused: count it, as a wire would lose it
            line.counters.write_errors += 1
            continue
        line.counters.packets += 1
        line.counters.bytes += len(packet)


def _drain(fd: int, line: Direction) -> bool:
    """Read up to READ_BATCH packets from *fd* into *line*; False when the device is gone."""
    now = time.monotonic()
    for _ in range(READ_BATCH):
        try:
            packet = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return True
        except OSError as exc:
            if exc.errno in (errno.EINTR, errno.EAGAIN):
                return True
            return False
        if not packet:
            return False
        line.offer(packet, now)
    return True


def relay(fd_a: int, fd_b: int, a_to_b: Direction, b_to_a: Direction,
          lifeline: int | None = None, deadline: float | None = None) -> None:
    """Forward packets between the two TUN fds until stopped, the lifeline closes or the
    *deadline* (monotonic seconds) passes. select() takes a float timeout (µs resolution):
    poll/epoll round to whole milliseconds, too coarse for a 10 ms delay."""
    for fd in (fd_a, fd_b):
        os.set_blocking(fd, False)
    readers = [fd_a, fd_b] + ([lifeline] if lifeline is not None else [])
    late = 0.0  # running estimate of how late select() wakes up (VMs: ~0.2 ms)
    while True:
        now = time.monotonic()
        _deliver(a_to_b, fd_b, now)
        _deliver(b_to_a, fd_a, now)
        if deadline is not None and now >= deadline:
            return
        heads = [t for t in (a_to_b.next_release(), b_to_a.next_release()) if t is not None]
        if deadline is not None:
            heads.append(deadline)
        due = min(heads) if heads else None
        timeout = None if due is None else max(0.0, due - time.monotonic() - late)
        ready, _, _ = select.select(readers, [], [], timeout)
        if not ready and due is not None:
            # Woke by the timer: learn the wake-up lateness, then spin the last stretch
            # (bounded by that estimate) so packets leave on time, not 0.2 ms late.
            now = time.monotonic()
            late = min(MAX_EARLY, 0.9 * late + 0.1 * max(0.0, now - (due - late)))
            while now < due:
                now = time.monotonic()
        for fd in ready:
            if fd == lifeline:
                if not os.read(lifeline, 64):
                    return  # the owner is gone
            elif not _drain(fd, a_to_b if fd == fd_a else b_to_a):
                return


def main(argv: list[str] | None = None) -> int:
    """Entry point of the relay process (started by netlab, not by users)."""
    p = argparse.ArgumentParser(prog="python -m flushbench.delayline")
    p.add_argument("--fds", required=True, help="A,B: the two inherited TUN fds")
    p.add_argument("--delay", type=float, default=0.0, help="one-way delay, seconds")
    p.add_argument("--jitter", type=float, default=0.0, help="jitter bound, seconds")
    p.add_argument("--loss", type=float, default=0.0, help="loss probability 0..1")
    p.add_argument("--rate", type=int, default=0, help="link rate, bit/s; 0 = unlimited")
    p.add_argument("--mtu", type=int, default=65000)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--lifeline", type=int, default=None, help="fd whose EOF means: exit")
    p.add_argument("--ready", type=int, default=None, help="fd to write 'ready' to, then close")
    args = p.parse_args(argv)
    fd_a, fd_b = (int(x) for x in args.fds.split(","))
    rng = random.Random(args.seed)
    backlog = backlog_cap(args.rate, args.delay, args.mtu)
    lines = [Direction(delay=args.delay, jitter=args.jitter, loss=args.loss, rate_bps=args.rate,
                       backlog=backlog, rng=random.Random(rng.random())) for _ in range(2)]
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGHUP, _stop)
    if args.ready is not None:
        os.write(args.ready, b"ready\n")
        os.close(args.ready)
    try:
        relay(fd_a, fd_b, lines[0], lines[1], args.lifeline)
    except _Stop:
        pass
    finally:
        for label, line in zip(("a->b", "b->a"), lines, strict=True):
            print(f"delayline {label}: {line.counters}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
