"""The unix transport: AF_UNIX stream sockets in a private directory, end to end.

A real peer process serves a unix case through Session; its directory goes with it (also
when it is killed); TCP options are "unavailable over unix" (skipped at suite load, never an
error mid-run); TCP_INFO figures are empty, not 0; unix cases are paired with their loopback
counterparts in one cell; and a short real run writes their rows.
"""

from __future__ import annotations

import csv
import math
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushbench import cli, testing
from flushbench.analysis import verdicts
from flushbench.analysis.cells import AA, cells
from flushbench.case import CASE_KEYS, Case
from flushbench.errors import PeerError, UsageError
from flushbench.measure import sockopts, strategies, unixsock
from flushbench.measure.session import Session
from flushbench.procs import PeerProcess
from flushbench.run.merge import summarize
from flushbench.run.options import RunOptions, prepare_suite
from flushbench.run.targets import targets

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
LINUX = sys.platform.startswith("linux")


def unix_case(**kw: object) -> Case:
    fields: dict[str, object] = {"workload": "stream", "strategy": "sendall", "msg_size": 1000,
                                 "transport": "unix", "ops": 50}
    fields.update(kw)
    return Case(**fields)  # type: ignore[arg-type]


# -- the peer and the Session ---------------------------------------------------------------

@pytest.mark.parametrize("workload", ["stream", "rr", "file"])
def test_peer_serves_a_unix_case_through_session(workload: str) -> None:
    """A real peer process, an AF_UNIX connection, every byte confirmed by the peer."""
    case = unix_case(workload=workload, msg_size=4096 if workload == "file" else 300, ops=40)
    with PeerProcess(unix=True) as peer:
        assert peer.unix_path is not None and peer.unix_dir is not None
        assert stat.S_IMODE(os.stat(peer.unix_dir).st_mode) == 0o700
        assert stat.S_ISSOCK(os.stat(peer.unix_path).st_mode)
        session = Session.connect(case, peer.unix_path, 10.0, peer.ticket)
        try:
            assert session.sock.family == socket.AF_UNIX
            for _ in range(3):
                session.run_value(20)  # raises unless the peer confirms every byte sent
            eff = session.effective()
        finally:
            session.close()
    per_op = case.msg_size
    assert [v.bytes for v in session.values] == [20 * per_op] * 3
    assert all(v.segs is None and v.retrans is None for v in session.values)
    assert eff["nodelay_eff"] is None and eff["notsent_lowat_eff"] is None
    assert eff["rtt_us"] is None and eff["sndbuf_eff"] > 0


def test_peer_still_serves_tcp_beside_unix() -> None:
    """A mixed run's peer: the same process answers loopback TCP and AF_UNIX."""
    with PeerProcess(unix=True) as peer:
        assert peer.unix_path is not None
        for addr in (peer.addr, peer.unix_path):
            case = unix_case(transport="unix" if isinstance(addr, str) else "loopback")
            session = Session.connect(case, addr, 10.0, peer.ticket)
            try:
                session.run_value(10)
            finally:
                session.close()


def test_peer_refuses_a_wrong_ticket_over_unix() -> None:
    """The ticket check holds for AF_UNIX connections too."""
    with PeerProcess(unix=True) as peer:
        assert peer.unix_path is not None
        with pytest.raises(PeerError, match="ticket was refused"):
            Session.connect(unix_case(), peer.unix_path, 10.0, "0" * 64)


def test_private_directory_is_removed_after_stop_and_after_kill() -> None:
    """The parent owns the directory: it goes when the peer stops and when it was killed."""
    peer = PeerProcess(unix=True)
    first = peer.unix_dir
    peer.close()
    assert first is not None and not os.path.exists(first)
    peer = PeerProcess(unix=True)
    try:
        assert peer.unix_dir is not None and os.path.exists(peer.unix_dir)
        os.kill(peer.proc.pid, signal.SIGKILL)
        peer.proc.wait(10)
        assert os.path.exists(peer.unix_path or "")  # a killed peer leaves its socket file
    finally:
        peer.close()
    assert not os.path.exists(peer.unix_dir)


def test_connect_to_a_missing_unix_peer_is_a_peer_error() -> None:
    with pytest.raises(PeerError, match=r"cannot connect to the peer at unix:/"):
        Session.connect(unix_case(), "/nonexistent-flushbench/peer.sock", 2.0)


def test_unix_addresses_parse() -> None:
    assert unixsock.parse_unix("unix:/tmp/x/peer.sock") == "/tmp/x/peer.sock"
    assert unixsock.parse_unix("127.0.0.1:80") is None
    assert unixsock.describe("/a/b") == "unix:/a/b"
    assert unixsock.describe(("::1", 5)) == "[::1]:5"
    for bad in ("unix:relative", "unix:/" + "x" * 200, "unix:"):
        with pytest.raises(ValueError, match="unix:/ABSOLUTE/PATH"):
            unixsock.parse_unix(bad)


def test_visit_worker_rejects_a_bad_unix_peer(tmp_path: Path) -> None:
    """The worker's --peer unix:PATH is checked: one line on stderr, exit 2."""
    plan = tmp_path / "visit.json"
    plan.write_text("{}")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", "flushbench.measure.visit", "--visit",
                           str(plan), "--peer", "unix:relative", "--out", str(tmp_path / "o")],
                          input="", capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert "unix:/ABSOLUTE/PATH" in proc.stderr and "Traceback" not in proc.stderr


# -- options over AF_UNIX ---------------------------------------------------------------------

def test_tcp_options_are_skipped_and_read_back_empty_on_af_unix() -> None:
    """Not an error: TCP options do not exist on AF_UNIX; SO_SNDBUF applies (doubled)."""
    a, b = unixsock.pair(5.0)
    try:
        opts = sockopts.Options(nodelay=True, sndbuf=16384, notsent_lowat=4096)
        sockopts.apply(a, opts)
        eff = sockopts.read_back(a)
        assert eff["nodelay_eff"] is None and eff["notsent_lowat_eff"] is None
        assert eff["sndbuf_eff"] == 2 * 16384  # Linux doubles it on AF_UNIX too
        assert sockopts.tcp_info(a) == {}
        note = sockopts.mismatches(sockopts.Options(sndbuf=1), sockopts.read_back(a), True)
        assert "bounds the bytes queued at the reader" in note
    finally:
        a.close()
        b.close()


def test_unix_rows_leave_tcp_info_figures_empty() -> None:
    """segs_per_msg and retrans are NaN/None for unix, not 0."""
    value = {"ops": 10, "msgs": 10, "bytes": 10_000, "reply_bytes": 0, "elapsed_ns": 10**6,
             "cpu_client_ns": 1, "cpu_peer_ns": 1, "calls": 10, "segs": None, "retrans": None}
    row, _ = summarize(unix_case(), [value, value], {"rtt_us": None}, np.zeros(0, np.int64), 10)
    assert row["segs_per_msg"] is None and row["retrans"] is None and row["rtt_us"] is None
    assert row["throughput_bps"] > 0


@pytest.mark.parametrize(("kw", "why"), [
    ({"nodelay": True}, "TCP_NODELAY is a TCP option"),
    ({"notsent_lowat": 4096}, "TCP_NOTSENT_LOWAT is a TCP option"),
    ({"strategy": "cork"}, "TCP_CORK is a TCP option"),
])
def test_tcp_only_combinations_are_unavailable_over_unix(kw: dict[str, object],
                                                         why: str) -> None:
    case = unix_case(**kw)
    reason = strategies.unavailable_over(case)
    assert reason is not None and reason.startswith("unavailable over unix: ") and why in reason
    assert strategies.unavailable_over(unix_case(**kw, transport="loopback")) is None
    a, b = socket.socketpair()
    with b, pytest.raises(UsageError, match="unavailable over unix"):
        Session(case, a)  # it owns ``a``: closed also when it refuses the case
    assert a.fileno() == -1


@pytest.mark.parametrize("name", ["send", "sendall", "makefile", "sendmsg", "coalesce",
                                  "msg_more", "asyncio", "sendfile"])
def test_strategies_that_need_no_tcp_are_available_over_unix(name: str) -> None:
    workload = "file" if name == "sendfile" else "stream"
    assert strategies.unavailable_over(unix_case(strategy=name, workload=workload)) is None


# -- suites -------------------------------------------------------------------------------

SUITE = """
[suite]
name = "u"
rounds = 2
values = 1
value_time = 0.005

[[matrix]]
workload = "stream"
strategy = ["sendall", "cork"]
nodelay = [false, true]
msg_size = 64
transport = ["loopback", "unix"]
"""


def test_suite_load_skips_unavailable_unix_cases_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "u.toml"
    path.write_text(SUITE)
    suite = prepare_suite(RunOptions(suite=str(path)))
    ids = [c.id for c in suite.cases]
    assert "stream-sendall-s64-p2-nd0-sbauto-unix" in ids
    assert sum(c.transport == "loopback" for c in suite.cases) == 4
    assert sum(c.transport == "unix" for c in suite.cases) == 1
    skipped = dict(suite.skipped)
    assert set(skipped) == {"stream-sendall-s64-p2-nd1-sbauto-unix",
                            "stream-cork-s64-p2-nd0-sbauto-unix",
                            "stream-cork-s64-p2-nd1-sbauto-unix"}
    assert all(why.startswith("unavailable over unix: ") for why in skipped.values())


def test_whole_run_transport_replaces_and_merges(tmp_path: Path) -> None:
    """--transport unix: every case over unix (loopback twins merged); remote: unix left out."""
    path = tmp_path / "u.toml"
    path.write_text(SUITE)
    suite = prepare_suite(RunOptions(suite=str(path), transport="unix"))
    assert [c.id for c in suite.cases] == ["stream-sendall-s64-p2-nd0-sbauto-unix"]
    remote = prepare_suite(RunOptions(suite=str(path), transport="remote"))
    assert {c.transport for c in remote.cases} == {"remote"} and len(remote.cases) == 4
    assert any("reach this host only" in why for _, why in remote.skipped)


def test_whole_run_over_unix_skips_tls_cases(tmp_path: Path) -> None:
    """TLS needs a TCP transport: --transport unix leaves a TLS case out, with the reason."""
    if "tls" not in CASE_KEYS:
        pytest.skip("this flushbench has no tls axis")
    path = tmp_path / "t.toml"
    path.write_text('[[matrix]]\nworkload = "stream"\nstrategy = "sendall"\nmsg_size = 64\n'
                    "tls = [false, true]\n")
    suite = prepare_suite(RunOptions(suite=str(path), transport="unix"))
    assert [c.id for c in suite.cases] == ["stream-sendall-s64-p2-nd0-sbauto-unix"]
    [(case_id, why)] = suite.skipped
    assert "tls" in case_id and why.startswith("unavailable over unix: ") and "TLS" in why


def test_a_suite_with_nothing_left_over_unix_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[matrix]]\nworkload = "stream"\nstrategy = "cork"\nmsg_size = 64\n')
    with pytest.raises(UsageError, match="no case of suite 'c' can run over unix: "
                                         "unavailable over unix: TCP_CORK"):
        prepare_suite(RunOptions(suite=str(path), transport="unix"))


def test_quick_suite_has_the_unix_block() -> None:
    suite = prepare_suite(RunOptions(suite="quick"))
    unix = [c.id for c in suite.cases if c.transport == "unix"]
    assert sorted(unix) == sorted([
        "stream-sendall-s64-p2-nd0-sbauto-unix", "stream-makefile-s64-p2-nd0-sbauto-unix",
        "stream-sendall-s16K-p2-nd0-sbauto-unix", "stream-makefile-s16K-p2-nd0-sbauto-unix",
        "rr-sendall-s64-p1-nd0-sbauto-unix"])
    ids = {c.id for c in suite.cases}
    assert all(u.replace("-unix", "-loopback") in ids for u in unix)  # each has its partner
    assert suite.skipped == ()


# -- cells and verdicts -------------------------------------------------------------------

def test_unix_and_loopback_share_a_cell_with_a_transport_comparison() -> None:
    loop = [Case("stream", s, 64) for s in ("sendall", "makefile")]
    unix = [c.with_transport("unix") for c in loop]
    [cell] = cells(loop + unix)
    assert cell.name == "stream-s64-p2-loopback-unix"
    comps = {(c.case, c.baseline, c.axis) for c in cell.comparisons}
    for lo, un in zip(loop, unix, strict=True):
        assert (un.id, lo.id, "transport") in comps
    assert (unix[1].id, unix[0].id, "strategy") in comps  # makefile vs sendall over unix too
    twin = [c for c in cell.comparisons if c.axis == AA]
    assert [(t.case, t.baseline) for t in twin] == [(loop[0].id + "-twin", loop[0].id)]
    [alone] = cells(unix)
    assert alone.name == "stream-s64-p2-unix"
    [plain] = cells(loop)
    assert plain.name == "stream-s64-p2-loopback"  # unchanged without unix cases
    assert all(c.axis != "transport" for c in plain.comparisons)


def test_transport_verdicts_are_paired_and_skip_segments() -> None:
    """A unix case 2x faster than its loopback partner in every round is 'better'; TCP
    segments are not compared across transports."""
    lo = Case("stream", "sendall", 64)
    un = lo.with_transport("unix")
    [cell] = cells([lo, un], twins=False)
    rng = np.random.default_rng(1)
    rows = []
    for r in range(8):
        base = 1e9 * (1 + 0.1 * rng.standard_normal())
        rows.append({"case": lo.id, "round": r, "throughput_bps": base, "segs_per_msg": 0.1,
                     "error": ""})
        rows.append({"case": un.id, "round": r, "throughput_bps": 2 * base,
                     "segs_per_msg": math.nan, "error": ""})
    frame = verdicts.build(pd.DataFrame(rows), cell.comparisons,
                           {lo.id: "stream", un.id: "stream"})
    assert list(frame["axis"]) == ["transport"]
    assert list(frame["metric"]) == ["throughput_bps"]
    assert frame["verdict"].iloc[0] == "better" and frame["ratio"].iloc[0] == pytest.approx(2)


# -- the command line ------------------------------------------------------------------------

@pytest.mark.parametrize(("extra", "flag"), [(["--peer", "127.0.0.1:9"], "--peer"),
                                             (["--link", "rate=1mbit"], "--link")])
def test_transport_unix_with_a_remote_or_emulated_peer_is_one_line(
        capsys: pytest.CaptureFixture[str], extra: list[str], flag: str) -> None:
    for dry in ([], ["--dry-run"]):
        code = cli.main(["run", "--transport", "unix", *extra, *dry])
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err
        assert lines[0] == (f"flushbench: error: --transport unix runs on this host only: it "
                            f"excludes {flag} (drop one of them)")
    with pytest.raises(UsageError, match="excludes --peer"):
        targets(["h:1"], None, True, None, "unix")


def test_transport_with_resume_is_refused(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    code = cli.main(["run", "--resume", str(tmp_path), "--transport", "unix"])
    err = capsys.readouterr().err
    assert code == 2 and "--resume measures the rest" in err and "transport" in err


def test_dry_run_lists_skipped_cases(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "u.toml"
    path.write_text(SUITE)
    assert cli.main(["run", "--suite", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "stream-cork-s64-p2-nd0-sbauto-unix\tskipped: unavailable over unix: TCP_CORK" in out


# -- the conformance kit ----------------------------------------------------------------------

def test_kit_pair_over_unix_leaves_no_directory() -> None:
    a, b = testing.socket_pair("unix")
    try:
        assert a.family == b.family == socket.AF_UNIX
        a.sendall(b"abc")
        assert b.recv(3) == b"abc"
    finally:
        a.close()
        b.close()


def test_kit_reports_cork_not_applicable_over_unix() -> None:
    if strategies.get("cork").unavailable():
        pytest.skip("no TCP_CORK here")
    with pytest.raises(testing.NotApplicable, match="over unix.*Operation not supported"):
        testing.deliver(strategies.get("cork"), "unix")


@pytest.mark.parametrize("name", ["sendall", "makefile", "msg_more", "asyncio", "sendfile"])
def test_kit_delivers_exact_bytes_over_unix_with_tiny_buffers(name: str) -> None:
    cls = strategies.get(name)
    calls = testing.deliver(cls, "unix", tiny=True, file=name == "sendfile")
    assert calls >= 1


# -- a real run -------------------------------------------------------------------------------

@pytest.mark.skipif(not LINUX, reason="AF_UNIX peer in a child process: Linux")
def test_real_run_of_a_unix_suite_writes_unix_rows(tmp_path: Path) -> None:
    suite = tmp_path / "u2.toml"
    suite.write_text('[suite]\nname = "u2"\nrounds = 3\nvalues = 2\nvalue_time = 0.005\n'
                     'timeout = 30\n\n[[matrix]]\nworkload = "stream"\nstrategy = "sendall"\n'
                     'msg_size = 1024\ntransport = ["loopback", "unix"]\nops = 2000\n\n'
                     '[[matrix]]\nworkload = "stream"\nstrategy = "sendall"\nmsg_size = 64\n'
                     'ops = 2000\n')
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}
    proc = subprocess.run([sys.executable, "-m", "flushbench", "run", "--suite", str(suite),
                           "--out", str(out), "--pin", "none", "--report"],
                          capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "table.csv", newline="") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    unix = rows["stream-sendall-s1K-p2-nd0-sbauto-unix"]
    loop = rows["stream-sendall-s1K-p2-nd0-sbauto-loopback"]
    assert unix["transport"] == "unix" and unix["error"] == "" and float(unix["msgs"]) > 0
    assert unix["segs_per_msg"] == "" and unix["retrans"] == "" and unix["rtt_us"] == ""
    assert unix["nodelay_eff"] == "" and int(unix["sndbuf_eff"]) > 0
    assert loop["segs_per_msg"] != "" and loop["error"] == ""
    # the unix case's cell copies throughout (its receivers do the same work); a cell
    # without one lets the peer drop the bytes uncopied
    assert unix["peer_sink"] == loop["peer_sink"] == "copy"
    assert rows["stream-sendall-s64-p2-nd0-sbauto-loopback"]["peer_sink"] == "discard"
    with open(out / "verdicts.csv", newline="") as fh:
        found = [(r["case"], r["baseline"], r["axis"], r["metric"]) for r in csv.DictReader(fh)]
    assert (unix["case"], loop["case"], "transport", "throughput_bps") in found
    readme = (out / "report" / "README.md").read_text()
    assert "### Unix sockets against loopback TCP" in readme
    assert "`sendall unix`" in readme
