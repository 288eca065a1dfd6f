"""The emulated transport: link specs, the delay line's scheduling, and real labs (root)."""

from __future__ import annotations

import ctypes
import json
import os
import random
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flushbench import cli as fbcli
from flushbench import netlab
from flushbench.errors import SetupError, UsageError
from flushbench.netlab import LinkSpec, Netlab, check_support, enter_netns, netns, profiles
from flushbench.netlab.delayline import Direction, backlog_cap

SRC = str(Path(netlab.__file__).parents[2])

# ------------------------------------------------------------------ link specs (anywhere)


@pytest.mark.parametrize(("text", "expected"), [
    ("rate=100mbit,delay=10ms,jitter=1ms,loss=0.1%",
     LinkSpec(rate=100_000_000, delay=10_000, jitter=1_000, loss=0.1)),
    ("delay=1.5ms", LinkSpec(delay=1500)),
    ("RATE=2Gbit , mtu=1500", LinkSpec(rate=2_000_000_000, mtu=1500)),
    ("jitter=250us,loss=.5%", LinkSpec(jitter=250, loss=0.5)),
    ("delay=1s", LinkSpec(delay=1_000_000)),
    ("", LinkSpec()),
    ("none", LinkSpec()),
    ("wan-20ms", LinkSpec(rate=100_000_000, delay=10_000)),
    ("wan-20ms,loss=1%", LinkSpec(rate=100_000_000, delay=10_000, loss=1.0)),
])
def test_parse_good(text: str, expected: LinkSpec) -> None:
    """Good spec texts and profile names parse to the expected fields."""
    assert LinkSpec.parse(text) == expected


@pytest.mark.parametrize(("text", "field"), [
    ("delay=10", "delay"), ("delay=10x", "delay"), ("delay=-1ms", "delay"),
    ("delay=11s", "delay"), ("jitter=fast", "jitter"), ("rate=100mbps", "rate"),
    ("rate=10bit", "rate"), ("loss=5", "loss"), ("loss=100%", "loss"), ("mtu=9k", "mtu"),
    ("mtu=40", "mtu"), ("speed=1gbit", "speed=1gbit"), ("nosuchprofile", "nosuchprofile"),
    ("delay=1ms,wan-20ms", "wan-20ms"),
])
def test_parse_bad(text: str, field: str) -> None:
    """Bad text raises a one-line UsageError naming the field and the expected form."""
    with pytest.raises(UsageError) as info:
        LinkSpec.parse(text)
    message = str(info.value)
    assert field in message and "expected" in message and "\n" not in message


@pytest.mark.parametrize("text", ["rate=1500kbit,delay=1500us,jitter=3ms,loss=0.25%,mtu=9000",
                                  "rate=1234567bit", "loss=12.5%",
                                  "none", *profiles()])
def test_round_trip(text: str) -> None:
    """str(spec) is canonical and parses back to an equal spec (profiles included)."""
    spec = LinkSpec.parse(text)
    assert LinkSpec.parse(str(spec)) == spec
    assert str(LinkSpec.parse(str(spec))) == str(spec)


def test_profiles() -> None:
    """The required profiles exist, have descriptions, and wan-20ms is 100 Mbit/s, 20 ms RTT."""
    known = profiles()
    assert {"lan", "wan-20ms", "transatlantic", "lossy-wifi"} <= set(known)
    assert all(p["description"] for p in known.values())
    wan = LinkSpec.parse("wan-20ms")
    assert (wan.rate, wan.rtt_s, wan.needs_delay_line) == (100_000_000, 0.020, True)
    assert not LinkSpec.parse("lan").needs_delay_line


# ------------------------------------------------------- delay-line scheduling (anywhere)


def test_direction_delay_and_fifo_under_jitter() -> None:
    """Each packet leaves after delay +/- jitter, never before an earlier packet."""
    line = Direction(delay=0.010, jitter=0.004, rng=random.Random(1))
    for i in range(500):
        assert line.offer(i.to_bytes(4, "big"), now=i * 0.0005)
    releases = [t for t, _ in line.queue]
    assert releases == sorted(releases)
    waits = [t - i * 0.0005 for i, t in enumerate(releases)]
    assert min(waits) >= 0.006 - 1e-9 and max(waits) <= 0.014 + 0.004
    assert statistics.pstdev(waits) > 0.0005  # the jitter is really there
    out = list(line.due(now=10.0))
    assert [int.from_bytes(p, "big") for p in out] == list(range(500))
    assert line.queued_bytes == 0 and line.next_release() is None


def test_direction_rate_serializes() -> None:
    """At 8 Mbit/s a 1000-byte packet takes 1 ms on the wire; a burst queues behind it."""
    line = Direction(delay=0.005, rate_bps=8_000_000, backlog=10_000)
    for _ in range(5):
        line.offer(bytes(1000), now=1.0)
    assert [round(t - 1.0, 6) for t, _ in line.queue] == [0.006, 0.007, 0.008, 0.009, 0.010]
    assert list(line.due(now=1.0075)) == [bytes(1000)] * 2


def test_direction_queue_overflow_drops() -> None:
    """A burst beyond the backlog cap is tail-dropped, like a router queue."""
    line = Direction(rate_bps=8_000_000, backlog=5000)
    kept = [line.offer(bytes(1000), now=0.0) for _ in range(10)]
    assert kept == [True] * 5 + [False] * 5
    assert line.counters.overflow == 5
    assert backlog_cap(100_000_000, 0.010, 65000) == 16 * 65000


def test_direction_loss_rate() -> None:
    """Random loss drops about the requested fraction of packets."""
    line = Direction(loss=0.2, rng=random.Random(3))
    kept = sum(line.offer(b"x", now=0.0) for _ in range(20_000))
    assert 15_600 < kept < 16_400
    assert line.counters.lost == 20_000 - kept


def test_without_root_setup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without root a lab refuses to start with a one-line SetupError that says what to do."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SetupError, match="needs root.*--peer"):
        Netlab("delay=10ms").start()


def test_enter_missing_namespace() -> None:
    """Entering a namespace that does not exist is a SetupError, not an OSError."""
    with pytest.raises(SetupError, match="no network namespace"):
        enter_netns("fb-no-such-lab")


# ------------------------------------------------------------------------ real labs (root)


@pytest.fixture
def root() -> None:
    """Skip unless this machine can build labs (root, ip, namespaces, TUN)."""
    try:
        check_support(tun=True)
    except SetupError as exc:
        pytest.skip(str(exc))


def _pair(lab: Netlab) -> tuple[socket.socket, socket.socket]:
    """A connected (client, server) TCP pair across the lab's link."""
    lst = lab.socket("server")
    lst.bind((lab.server_addr, 0))
    lst.listen(1)
    cli = lab.socket("client")
    cli.settimeout(20)
    cli.connect((lab.server_addr, lst.getsockname()[1]))
    srv, _ = lst.accept()
    lst.close()
    srv.settimeout(20)
    return cli, srv


def _ping_pong(lab: Netlab, count: int) -> list[float]:
    """RTTs in ms of *count* 64-byte exchanges (TCP_NODELAY, echo thread)."""
    cli, srv = _pair(lab)

    def echo() -> None:
        while msg := srv.recv(64, socket.MSG_WAITALL):
            srv.sendall(msg)

    for s in (cli, srv):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = threading.Thread(target=echo)
    t.start()
    rtts = []
    try:
        for _ in range(count + 3):
            t0 = time.perf_counter()
            cli.sendall(bytes(64))
            assert len(cli.recv(64, socket.MSG_WAITALL)) == 64
            rtts.append((time.perf_counter() - t0) * 1e3)
    finally:
        cli.close()
        t.join(20)
        srv.close()
    return rtts[3:]  # the first exchanges pay for quick-ack and cache warm-up


def _stream_bps(lab: Netlab, nbytes: int) -> float:
    """Bits/s of a sendall stream client->server, timed until the server confirms all bytes."""
    cli, srv = _pair(lab)

    def sink() -> None:
        total, buf = 0, bytearray(1 << 16)
        while n := srv.recv_into(buf):
            total += n
        srv.sendall(struct.pack("!Q", total))

    t = threading.Thread(target=sink)
    t.start()
    try:
        t0 = time.perf_counter()
        chunk = bytes(1 << 16)
        for _ in range(nbytes // len(chunk)):
            cli.sendall(chunk)
        cli.shutdown(socket.SHUT_WR)
        (got,) = struct.unpack("!Q", cli.recv(8, socket.MSG_WAITALL))
        elapsed = time.perf_counter() - t0
    finally:
        cli.close()
        t.join(20)
        srv.close()
    assert got == nbytes // (1 << 16) * (1 << 16)
    return got * 8 / elapsed


def _net_inode(ns: str) -> int:
    return os.stat(netns.NETNS_DIR / ns).st_ino


def _assert_gone(names: list[str], inodes: list[int], pids: list[int]) -> None:
    """No namespace file, no process inside the namespaces, no device, no state, no relay."""
    assert not [n for n in names if (netns.NETNS_DIR / n).exists()]
    holders = []
    for proc in Path("/proc").iterdir():
        try:
            link = os.readlink(proc / "ns" / "net")
        except OSError:
            continue
        holders += [proc.name for ino in inodes if link == f"net:[{ino}]"]
    assert holders == []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert " fbt" not in links and " fbv" not in links
    assert [p for p in pids if netns.start_time(p) is not None] == []
    states = [s["name"] for s in netlab.list_labs()]
    assert not set(states) & {n.rsplit("-", 1)[0] for n in names}


@pytest.mark.root
def test_delay_gives_rtt(root: None) -> None:
    """delay=10ms one way gives a TCP ping-pong RTT p50 within 10 % of 20 ms."""
    with Netlab("delay=10ms") as lab:
        assert lab.backend in ("tun", "netem")
        rtts = _ping_pong(lab, 40)
    assert 18.0 <= statistics.median(rtts) <= 22.0, rtts
    assert min(rtts) >= 19.5  # the delay is a floor in both directions


@pytest.mark.root
def test_jitter_spreads_rtt(root: None) -> None:
    """jitter=3ms spreads RTTs around 20 ms but keeps them inside delay +/- jitter per way."""
    with Netlab("delay=10ms,jitter=3ms", seed=5) as lab:
        rtts = _ping_pong(lab, 40)
    deciles = statistics.quantiles(rtts, n=10)
    assert statistics.pstdev(rtts) > 1.0
    assert min(rtts) >= 13.5 and deciles[-1] <= 26.5, rtts  # max is at the mercy of the VM
    assert 17.0 <= statistics.median(rtts) <= 23.0, rtts


@pytest.mark.root
def test_plain_veth_is_fast(root: None) -> None:
    """An unshaped link is a veth pair with sub-millisecond RTT."""
    with Netlab("none") as lab:
        assert lab.backend == "veth"
        assert statistics.median(_ping_pong(lab, 20)) < 2.0


@pytest.mark.root
def test_loss_is_applied(root: None) -> None:
    """loss=20% drops about a fifth of 1000 UDP datagrams sent client -> server."""
    with Netlab("loss=20%", seed=11) as lab:
        rx = lab.socket("server", type=socket.SOCK_DGRAM)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        rx.bind((lab.server_addr, 0))
        tx = lab.socket("client", type=socket.SOCK_DGRAM)
        got = 0
        with rx, tx:
            for i in range(1000):
                tx.sendto(bytes(200), rx.getsockname())
                if i % 50 == 49:
                    time.sleep(0.002)  # stay well below the TUN queue
            rx.settimeout(0.3)
            try:
                while got < 1000:
                    rx.recv(512)
                    got += 1
            except TimeoutError:
                pass
    assert 720 <= got <= 880, got


@pytest.mark.root
@pytest.mark.parametrize(("text", "backends"), [("rate=100mbit", {"veth"}),
                                               ("rate=100mbit,delay=2ms", {"tun", "netem"})])
def test_rate_limits(root: None, text: str, backends: set[str]) -> None:
    """A 100 Mbit/s link (veth+tbf, or the delay line) carries a stream at 60-102 Mbit/s: far
    under what an unshaped link carries (Gbit/s), never over the rate. The lower bound is
    wide because an idle VM wakes slowly: veth+tbf carried 76-94 Mbit/s idle here, 95 with
    both CPUs busy."""
    with Netlab(text) as lab:
        assert lab.backend in backends
        bps = _stream_bps(lab, 10 << 20)
    assert 60e6 <= bps <= 102e6, bps


_SERVER = """
import socket
lst = socket.create_server(("0.0.0.0", 0))
print(lst.getsockname()[1], flush=True)
lst.settimeout(15)
conn, peer = lst.accept()
conn.sendall(conn.recv(64) + b" from " + peer[0].encode())
"""
_CLIENT = """
import os, socket, sys
from flushbench.netlab import enter_netns
enter_netns(sys.argv[1])
print(os.readlink("/proc/self/ns/net"))
with socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=15) as s:
    s.sendall(b"hello")
    s.shutdown(socket.SHUT_WR)
    print(s.recv(64).decode())
"""


@pytest.mark.root
def test_processes_in_namespaces(root: None) -> None:
    """A server started by Netlab.popen and a client that calls enter_netns talk across the
    link, each in its own namespace; loopback is up inside the namespaces."""
    env = dict(os.environ, PYTHONPATH=SRC)
    with Netlab("delay=1ms") as lab:
        server = lab.popen("server", [sys.executable, "-c", _SERVER], stdout=subprocess.PIPE,
                           text=True, env=env)
        assert server.stdout and select.select([server.stdout], [], [], 15)[0]
        port = server.stdout.readline().strip()
        out = subprocess.run([sys.executable, "-c", _CLIENT, lab.client_ns, lab.server_addr,
                              port], capture_output=True, text=True, env=env, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n")[:2] == [f"net:[{_net_inode(lab.client_ns)}]",
                                               f"hello from {lab.client_addr}"]
        assert server.wait(10) == 0
        with lab.socket("client") as a, lab.socket("client") as b:
            a.bind(("127.0.0.1", 0))
            a.listen(1)
            b.connect(a.getsockname())


@pytest.mark.root
def test_teardown_on_exit_and_exception(root: None) -> None:
    """Leaving the with-block, also by an exception, removes namespaces, devices, relay and
    every process in the namespaces (also ones started without Netlab.popen)."""
    stray = None
    try:
        with pytest.raises(RuntimeError):
            with Netlab("delay=1ms") as lab:
                names, relay = [lab.client_ns, lab.server_ns], lab.relay_pid
                inodes = [_net_inode(n) for n in names]
                sleeper = lab.popen("server", ["sleep", "30"])
                stray = subprocess.Popen(["ip", "netns", "exec", lab.client_ns, "sleep", "30"])
                time.sleep(0.05)  # let `ip netns exec` switch namespace and exec
                assert relay and netns.start_time(relay) is not None
                raise RuntimeError("boom")
        assert sleeper.returncode is not None
        assert stray.wait(5) is not None
        _assert_gone(names, inodes, [relay])
    finally:
        if stray and stray.poll() is None:
            stray.kill()
            stray.wait()


# The owner raises KeyboardInterrupt on SIGINT even when started from a background job
# of a shell without job control (which starts its children with SIGINT ignored).
_OWNER = """
import json, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from flushbench.netlab import Netlab
with Netlab("delay=1ms") as lab:
    print(json.dumps({"ns": [lab.client_ns, lab.server_ns], "relay": lab.relay_pid}), flush=True)
    time.sleep(30)
"""


@pytest.fixture
def owner() -> Iterator[tuple[subprocess.Popen[str], dict]]:
    """A separate process that owns a lab and sleeps in its with-block; always reaped."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphaned relays come to us
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.Popen([sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, text=True,
                            env=env)
    info: dict = {}
    try:
        assert proc.stdout and select.select([proc.stdout], [], [], 15)[0], "owner hung"
        info = json.loads(proc.stdout.readline())
        info["inodes"] = [_net_inode(n) for n in info["ns"]]
        yield proc, info
    finally:
        proc.kill()
        proc.wait(10)
        if info.get("relay"):
            netns.stop_pids([info["relay"]])  # kills and reaps it if still there
        libc.prctl(36, 0, 0, 0, 0)
        netlab.cleanup_stale()


@pytest.mark.root
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_teardown_on_signal(root: None, owner: tuple, sig: int) -> None:
    """SIGINT or SIGTERM to the owning process tears its lab down completely."""
    proc, info = owner
    proc.send_signal(sig)
    assert proc.wait(15) != 0
    _assert_gone(info["ns"], info["inodes"], [info["relay"]])


@pytest.mark.root
def test_sigkill_then_cleanup_stale(root: None, owner: tuple) -> None:
    """After SIGKILL the relay exits on its own and cleanup_stale() removes the rest."""
    proc, info = owner
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 5
    while netns.start_time(info["relay"]) is not None and time.monotonic() < deadline:
        try:
            os.waitpid(info["relay"], os.WNOHANG)  # ours, as the subreaper
        except ChildProcessError:
            pass
        time.sleep(0.02)
    assert netns.start_time(info["relay"]) is None, "relay outlived its owner"
    assert all((netns.NETNS_DIR / n).exists() for n in info["ns"])  # stale, not yet cleaned
    removed = Netlab.cleanup_stale()
    assert info["ns"][0].rsplit("-", 1)[0] in removed
    _assert_gone(info["ns"], info["inodes"], [info["relay"]])


@pytest.mark.root
def test_cli_up_status_down(root: None, capsys: pytest.CaptureFixture[str]) -> None:
    """netlab up makes a persistent lab, status lists it, down removes it and its relay."""
    name = f"t{os.getpid() % 100000}"
    assert fbcli.main(["netlab", "up", "--link", "delay=2ms", "--name", name]) == 0
    try:
        out = capsys.readouterr().out
        assert f"fb-{name}-cli" in out and f"fb-{name}-srv" in out
        state = next(s for s in netlab.list_labs() if s["name"] == f"fb-{name}")
        inodes = [_net_inode(state[k]) for k in ("client_ns", "server_ns")]
        assert state["persistent"] and not state["stale"]
        assert netns.start_time(state["relay_pid"]) is not None
        assert f"fb-{name}" not in Netlab.cleanup_stale()  # a persistent lab is never stale
        assert fbcli.main(["netlab", "status"]) == 0
        assert f"fb-{name}" in capsys.readouterr().out
        with pytest.raises(UsageError, match="already exists"):
            Netlab("none", name).start()
    finally:
        assert fbcli.main(["netlab", "down", f"fb-{name}"]) == 0
    _assert_gone([state["client_ns"], state["server_ns"]], inodes, [state["relay_pid"]])
    assert fbcli.main(["netlab", "down", f"fb-{name}"]) == 2
    assert "no lab named" in capsys.readouterr().err
