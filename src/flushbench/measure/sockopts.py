"""Apply socket options before the timed part, read them back after it, and read TCP_INFO.

The effective value is what gets reported: Linux doubles SO_SNDBUF, clamps it to
``net.core.wmem_max`` and raises it to a floor of about 4.5 KiB, so "SO_SNDBUF=1" is not 1.

On an AF_UNIX stream socket (the ``unix`` transport) SO_SNDBUF is set and read back the same
way (doubled too), but it means something else: there is no send queue of unacknowledged
segments; the sender's buffer bounds the bytes (counted with their per-skb overhead) that sit
in the peer's receive queue, so it bounds the bytes in flight to the reader. TCP-level options
(TCP_NODELAY, TCP_NOTSENT_LOWAT, TCP_INFO) do not exist there: they are skipped, read back
as empty, and the TCP_INFO counters (segments, retransmissions, RTT) are left empty, not 0.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any

from ..case import Case
from ..errors import SetupError

# struct tcp_info from linux/tcp.h, up to tcpi_reord_seen (224 bytes, Linux >= 4.19).
# Older kernels return a prefix; missing fields read as 0.
_TCP_INFO_FIELDS = (
    "state ca_state retransmits probes backoff options wscale flags "
    "rto ato snd_mss rcv_mss unacked sacked lost retrans fackets "
    "last_data_sent last_ack_sent last_data_recv last_ack_recv "
    "pmtu rcv_ssthresh rtt rttvar snd_ssthresh snd_cwnd advmss reordering "
    "rcv_rtt rcv_space total_retrans "
    "pacing_rate max_pacing_rate bytes_acked bytes_received "
    "segs_out segs_in notsent_bytes min_rtt data_segs_in data_segs_out "
    "delivery_rate busy_time rwnd_limited sndbuf_limited "
    "delivered delivered_ce bytes_sent bytes_retrans dsack_dups reord_seen"
).split()
_TCP_INFO = struct.Struct("=8B24I4Q6I4Q2I2Q2I")
assert len(_TCP_INFO_FIELDS) == 8 + 24 + 4 + 6 + 4 + 2 + 2 + 2

TCP_INFO = getattr(socket, "TCP_INFO", 11)
TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)
TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)
CC_NAME_MAX = 16  # TCP_CA_NAME_MAX, the NUL included


def tcp_info(sock: socket.socket) -> dict[str, int]:
    """The kernel's TCP_INFO for ``sock`` as a dict (empty where the platform lacks it)."""
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, _TCP_INFO.size)
    except OSError:
        return {}
    raw = raw[: _TCP_INFO.size].ljust(_TCP_INFO.size, b"\0")
    return dict(zip(_TCP_INFO_FIELDS, _TCP_INFO.unpack(raw)))


@dataclass(frozen=True, slots=True)
class Options:
    """Client-side options of one case; 0 means "never set" (the kernel's default)."""

    nodelay: bool = False
    sndbuf: int = 0
    notsent_lowat: int = 0
    cc: str = ""  # TCP_CONGESTION; "" = the host's default

    @classmethod
    def of(cls, case: Case, cc: str = "") -> Options:
        """A case's options, with the run's congestion control (``cc``; "" = the host's)."""
        return cls(case.nodelay, case.sndbuf, case.notsent_lowat, cc)


def is_tcp(sock: socket.socket) -> bool:
    """TCP options apply (an AF_UNIX socket, a socketpair, has no TCP level)."""
    return sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM


def set_nodelay(sock: socket.socket, on: bool) -> None:
    """TCP_NODELAY on or off; nothing on a socket that is not TCP."""
    if is_tcp(sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(on))


def apply(sock: socket.socket, opts: Options) -> None:
    """Set the requested options. TCP_NODELAY is always set explicitly (asyncio flips it)."""
    try:
        set_nodelay(sock, opts.nodelay)
        if opts.sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, opts.sndbuf)
        if opts.notsent_lowat and is_tcp(sock):
            sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, opts.notsent_lowat)
    except OSError as exc:
        raise SetupError(f"cannot set socket options {opts}: {exc.strerror or exc}") from None
    if opts.cc and is_tcp(sock):
        set_cc(sock, opts.cc)


def _set_cc(sock: socket.socket, name: str) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, name.encode("ascii"))


def set_cc(sock: socket.socket, name: str) -> None:
    """TCP_CONGESTION = ``name``; a SetupError that says what this kernel offers otherwise."""
    try:
        _set_cc(sock, name)
    except OSError as exc:
        raise SetupError(f"cannot set congestion control {name!r}: {exc.strerror or exc}"
                         + (f" ({why})" if (why := cc_unavailable(name)) else "")) from None


_CC_FILES = {"available": "/proc/sys/net/ipv4/tcp_available_congestion_control",
             "allowed": "/proc/sys/net/ipv4/tcp_allowed_congestion_control"}


def congestion_controls(which: str = "available") -> list[str] | None:
    """The kernel's loaded congestion controls ("available") or those a process without
    CAP_NET_ADMIN may pick ("allowed"); None where /proc does not tell (not Linux)."""
    try:
        with open(_CC_FILES[which], encoding="ascii") as fh:
            return fh.read(4096).split()
    except (OSError, UnicodeDecodeError):
        return None


def cc_unavailable(name: str) -> str | None:
    """Why this host cannot give a socket congestion control ``name``, or None. Tried on a
    fresh, unconnected TCP socket (as root that also loads a module not loaded yet)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            _set_cc(sock, name)
        return None
    except OSError as exc:
        err = exc.errno
    loaded = congestion_controls("available") or []
    allowed = congestion_controls("allowed") or []
    if name in loaded and name not in allowed and err == errno.EPERM:
        return (f"congestion control {name!r} is loaded but not allowed without root "
                f"(net.ipv4.tcp_allowed_congestion_control: {' '.join(allowed)}; add it there)")
    why = "no module of that name" if err == errno.ENOENT else os.strerror(err or 0)
    return (f"congestion control {name!r} is not available here ({why}; this kernel has: "
            f"{' '.join(loaded) or 'unknown'})")


def get_cc(sock: socket.socket) -> str | None:
    """The socket's congestion control (TCP_CONGESTION read back); None where not TCP."""
    if not is_tcp(sock):
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, CC_NAME_MAX)
    except OSError:
        return None
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def read_back(sock: socket.socket) -> dict[str, Any]:
    """What the kernel actually holds now (the figures the table reports)."""
    out: dict[str, Any] = {"sndbuf_eff": sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)}
    if not is_tcp(sock):
        out.update(nodelay_eff=None, notsent_lowat_eff=None, cc_eff=None)
        return out
    out["cc_eff"] = get_cc(sock)
    out["nodelay_eff"] = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    try:
        out["notsent_lowat_eff"] = sock.getsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT)
    except OSError:
        out["notsent_lowat_eff"] = None
    return out


def mismatches(opts: Options, eff: dict[str, Any], unix: bool = False) -> str:
    """Plain words for every option the kernel did not take as asked ('' when all did).

    ``unix``: an AF_UNIX socket, whose SO_SNDBUF bounds the bytes queued at the reader."""
    notes = []
    if eff.get("nodelay_eff") is not None and bool(eff.get("nodelay_eff")) != opts.nodelay:
        notes.append(f"nodelay requested {int(opts.nodelay)}, kernel has "
                     f"{int(bool(eff.get('nodelay_eff')))}")
    if opts.sndbuf and eff.get("sndbuf_eff") != 2 * opts.sndbuf:
        notes.append(f"sndbuf requested {opts.sndbuf}, kernel gave {eff.get('sndbuf_eff')} "
                     f"(Linux stores 2x, clamped to [~4.5K, wmem_max])"
                     + ("; on AF_UNIX it bounds the bytes queued at the reader" if unix else ""))
    if opts.notsent_lowat and eff.get("notsent_lowat_eff") != opts.notsent_lowat:
        notes.append(f"notsent_lowat requested {opts.notsent_lowat}, kernel has "
                     f"{eff.get('notsent_lowat_eff')}")
    if opts.cc and eff.get("cc_eff") is not None and eff.get("cc_eff") != opts.cc:
        notes.append(f"cc requested {opts.cc}, kernel has {eff.get('cc_eff')}")
    return "; ".join(notes)


def set_timeouts(sock: socket.socket, seconds: float) -> None:
    """Kernel-level send/receive timeouts (SO_SNDTIMEO/SO_RCVTIMEO).

    Python's own ``settimeout`` would make every send poll() first, adding a syscall to the
    path we measure; the kernel timeout keeps the socket blocking and still bounds each call.
    """
    secs = int(seconds)
    usecs = int((seconds - secs) * 1_000_000)
    tv = struct.pack("ll", secs, usecs)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)


def set_rcvbuf(sock: socket.socket, size: int) -> int:
    """Set SO_RCVBUF (0 = leave it) and return the effective value."""
    if size:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
