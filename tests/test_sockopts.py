"""Options are applied and read back from the kernel; TCP_INFO is parsed."""

from __future__ import annotations

import socket
import sys

import pytest

from flushbench.measure import sockopts

linux = pytest.mark.skipif(sys.platform != "linux", reason="Linux kernel behaviour")


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        a = socket.create_connection(srv.getsockname())
        b, _ = srv.accept()
    return a, b


@linux
def test_sndbuf_one_reads_back_as_the_kernel_floor() -> None:
    """SO_SNDBUF=1 is not 1: Linux raises it to its floor (4608 bytes), and we report that."""
    a, b = tcp_pair()
    with a, b:
        sockopts.apply(a, sockopts.Options(sndbuf=1))
        eff = sockopts.read_back(a)
        assert eff["sndbuf_eff"] == 4608
        assert "sndbuf requested 1, kernel gave 4608" in sockopts.mismatches(
            sockopts.Options(sndbuf=1), eff)


@linux
def test_sndbuf_is_doubled_and_nodelay_read_back() -> None:
    """A normal SO_SNDBUF is stored doubled (no mismatch); TCP_NODELAY reads back as set."""
    a, b = tcp_pair()
    with a, b:
        opts = sockopts.Options(nodelay=True, sndbuf=65536, notsent_lowat=16384)
        sockopts.apply(a, opts)
        eff = sockopts.read_back(a)
        host_cc = open("/proc/sys/net/ipv4/tcp_congestion_control").read().strip()
        assert eff == {"nodelay_eff": True, "sndbuf_eff": 131072, "notsent_lowat_eff": 16384,
                       "cc_eff": host_cc}  # cc never set: the host's default
        assert sockopts.mismatches(opts, eff) == ""
        sockopts.apply(a, sockopts.Options(nodelay=False))
        assert sockopts.read_back(a)["nodelay_eff"] is False


def _other_cc() -> str:
    """A congestion control this host offers that is not its default (reno is built in)."""
    host = open("/proc/sys/net/ipv4/tcp_congestion_control").read().strip()
    return next(name for name in ("reno", "cubic") if name != host)


@linux
def test_the_runs_congestion_control_is_set_and_read_back() -> None:
    """cc sets TCP_CONGESTION on the connected socket (not the host's default), reads back
    as set, and a socket that is not TCP (AF_UNIX) neither takes nor reports it."""
    name = _other_cc()
    a, b = tcp_pair()
    with a, b:
        opts = sockopts.Options(cc=name)
        sockopts.apply(a, opts)
        eff = sockopts.read_back(a)
        assert eff["cc_eff"] == name == sockopts.get_cc(a)
        assert sockopts.mismatches(opts, eff) == ""
        assert "cc requested bbr, kernel has reno" in sockopts.mismatches(
            sockopts.Options(cc="bbr"), {"cc_eff": "reno"})
    u, v = socket.socketpair()
    with u, v:
        sockopts.apply(u, sockopts.Options(cc=name))  # skipped: no TCP level
        assert sockopts.read_back(u)["cc_eff"] is None
        assert sockopts.mismatches(sockopts.Options(cc=name), sockopts.read_back(u)) == ""


@linux
def test_an_unknown_congestion_control_is_refused_in_words() -> None:
    """One a kernel cannot give: a reason naming what it has, before any socket of a run;
    at setup, a SetupError (no OSError traceback)."""
    assert sockopts.cc_unavailable(_other_cc()) is None
    why = sockopts.cc_unavailable("nosuchcc")
    assert why is not None and "'nosuchcc' is not available here" in why
    assert "cubic" in why or "reno" in why  # what the kernel has
    a, b = tcp_pair()
    with a, b, pytest.raises(sockopts.SetupError, match="cannot set congestion control"):
        sockopts.apply(a, sockopts.Options(cc="nosuchcc"))


@linux
def test_tcp_info_counts_segments() -> None:
    """TCP_INFO's data segment counter moves by one per small write with TCP_NODELAY."""
    a, b = tcp_pair()
    with a, b:
        a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        before = sockopts.tcp_info(a)
        for _ in range(10):
            a.sendall(b"x" * 10)
            assert b.recv(100)  # one at a time: nothing coalesces
        after = sockopts.tcp_info(a)
        assert after["data_segs_out"] - before["data_segs_out"] == 10
        assert after["snd_mss"] > 0 and after["rtt"] > 0
        assert after["state"] == 1  # TCP_ESTABLISHED


def test_tcp_info_on_a_non_tcp_socket_is_empty() -> None:
    """A socket without TCP_INFO gives an empty dict, not an exception."""
    a, b = socket.socketpair()
    with a, b:
        assert sockopts.tcp_info(a) == {}


@linux
def test_kernel_timeouts_bound_a_blocked_receive() -> None:
    """SO_RCVTIMEO bounds a blocking recv without Python's poll-based timeout."""
    a, b = tcp_pair()
    with a, b:
        sockopts.set_timeouts(a, 0.05)
        assert a.gettimeout() is None  # still a blocking socket
        with pytest.raises(OSError):
            a.recv(1)


@linux
def test_rcvbuf_is_set_and_read_back() -> None:
    """set_rcvbuf returns the kernel's (doubled) value; 0 leaves it alone."""
    a, b = tcp_pair()
    with a, b:
        default = sockopts.set_rcvbuf(b, 0)
        assert default > 0
        assert sockopts.set_rcvbuf(b, 32768) == 65536
