"""How the peer takes in one-way data (stream and file cases): dropped in the kernel, or copied.

The peer is the harness's receiver; what a run compares is the client's send paths. On the
AMD EPYC VM this was built on, the receiver's copy into user space made a 1 MiB loopback
stream's figures a draw. The kernel copies with ``rep movsb``, which (like glibc's
``memcpy``, see scratch.py) runs at about half speed when the destination lies a few bytes
past the source's offset in a 4 KiB page: a plain receiver whose buffer sat 8 or 16 bytes
into its page took 14-19 Gbit/s, against 30-35 elsewhere, and ``bytearray(1 MiB)`` in a
fresh process sits 16 bytes in (results/epyc-2core-vm/20261204-peer-sink/).

``discard`` (the default) reads one-way data with ``MSG_TRUNC``: Linux's TCP drops the bytes
without copying them (they are consumed, counted and free the window as a copy would), so
the only user-space copy left in a stream measurement is the client's. ``copy`` reads into
a page-aligned buffer, as a receiving program would. Six pairs of quick-suite stream runs,
one with each sink (``python bench/bench_peer_sink.py --pairs 6 --sizes 16K,128K,1M``),
medians over pairs of
the verdicts' 95 % half-widths against ``sendall``: 1 MiB 1.2 % discarding against 5.1 %
copying; 128 KiB 2.7 against 2.4 %, 16 KiB 2.7 against 2.2 %. The faster receiver also
moves the client's own speed: ``sendall`` 54.9 against 50.7 Gbit/s at 1 MiB, but 34.0
against 36.8 at 128 KiB and 16.4 against 18.0 at 16 KiB.

``flushbench calibrate`` and ``bench/bench_iperf.py`` copy, so that flushbench's receiver
does the work iperf3's does. TLS (the peer must decrypt), AF_UNIX sockets and platforms
other than Linux always copy.

A cell that holds such a case copies throughout (:func:`for_cases`): its loopback TCP cases
ask for ``copy`` in their hello (the peer's answer says what it does; table.csv keeps it as
``peer_sink``), so that "unix against loopback" and "TLS against the clear" compare receivers
doing the same work. In the quick suite that is the 64 B and 16 KiB cells, every case of
them. Against four runs with the peer discarding there, two runs copying moved no throughput
verdict of those cells consistently (unix ``sendall`` at 16 KiB: 0.84x and 0.80x loopback
copying, 0.77-0.97x discarding), but three segments-per-message verdicts at 16 KiB: asyncio,
coalesce and sendmsg sent 3-8 % fewer segments than sendall to a discarding peer, the same
number to a copying one (docs/design.md, "How the peer takes in stream data").
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..case import Case

SINKS = ("discard", "copy")
DEFAULT = "discard"
UNRECORDED = "copy"  # what runs and agents from before the sink was recorded did
PAGE = 4096
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def page_aligned(size: int) -> memoryview:
    """A writable buffer of ``size`` bytes that starts at a page boundary."""
    from .scratch import address

    raw = bytearray(size + PAGE)
    start = -(address(raw) or 0) % PAGE
    return memoryview(raw)[start:start + size]


def for_cases(cases: Iterable[Case]) -> str:
    """The sink a cell's connections ask for: ``copy`` when one of its cases' receivers must
    copy (TLS, AF_UNIX), so that every case of the cell is received alike; "" (the peer's own
    sink) otherwise."""
    return "copy" if any(c.tls or c.transport == "unix" for c in cases) else ""


def known(value: object) -> bool:
    """Whether ``value`` (from meta.json or an agent's frame: anything) names a sink."""
    return isinstance(value, str) and value in SINKS


def discards(sock: socket.socket) -> bool:
    """Whether ``recv(MSG_TRUNC)`` on ``sock`` drops bytes uncopied (Linux TCP, not TLS)."""
    return (sys.platform.startswith("linux") and type(sock) is socket.socket
            and sock.family in _TCP_FAMILIES and sock.type == socket.SOCK_STREAM)


def recv_flags(sock: socket.socket, sink: str) -> int:
    """The flags of the peer's one-way reads on ``sock``: MSG_TRUNC where it discards."""
    return socket.MSG_TRUNC if sink == "discard" and discards(sock) else 0


def drain(sock: socket.socket, view: memoryview, left: int, flags: int = 0) -> bool:
    """Take ``left`` bytes from ``sock`` a buffer-full at a time (into ``view`` unless
    ``flags`` has MSG_TRUNC); False if the other side closed first."""
    recv_into, size = sock.recv_into, len(view)
    while left:
        k = recv_into(view, min(left, size), flags)
        if not k:
            return False
        left -= k
    return True
