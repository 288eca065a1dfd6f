"""How the peer takes in one-way data: dropped in the kernel (MSG_TRUNC) or copied into a
page-aligned buffer (measure/sink.py). Real sockets and real peers; no speed is asserted
(bench/bench_peer_sink.py measures what the sink does to a run's figures)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from flushbench.case import Case
from flushbench.measure import protocol, sink
from flushbench.measure.scratch import address
from flushbench.measure.session import Session
from flushbench.procs import PeerProcess

LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"),
                           reason="MSG_TRUNC drops TCP data only on Linux")


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    return client, accepted


@pytest.mark.parametrize("size", [1, 4095, 65536, 1 << 20])
def test_a_page_aligned_buffer_starts_a_page_and_is_writable(size: int) -> None:
    view = sink.page_aligned(size)
    assert len(view) == size and address(view) is not None
    assert (address(view) or 1) % sink.PAGE == 0
    view[-1] = 7
    assert view[-1] == 7


@LINUX
def test_discard_takes_every_byte_and_copies_none() -> None:
    """3 MiB sent; drained with MSG_TRUNC through a 64 KiB buffer: every byte is taken (the
    next byte read is the marker after them) and the buffer is never written."""
    client, accepted = tcp_pair()
    with client, accepted:
        body = b"x" * (3 << 20)
        sender = threading.Thread(target=lambda: client.sendall(body + b"!"))
        sender.start()
        view = sink.page_aligned(65536)
        flags = sink.recv_flags(accepted, "discard")
        assert flags == socket.MSG_TRUNC
        assert sink.drain(accepted, view, len(body), flags)
        sender.join(10)
        assert accepted.recv(1) == b"!"
        assert bytes(view) == bytes(65536)


def test_copy_takes_the_bytes_into_the_buffer() -> None:
    client, accepted = tcp_pair()
    with client, accepted:
        client.sendall(b"abc" * 1000)
        view = sink.page_aligned(3000)
        assert sink.recv_flags(accepted, "copy") == 0
        assert sink.drain(accepted, view, 3000)
        assert bytes(view) == b"abc" * 1000


def test_a_close_mid_drain_says_so() -> None:
    client, accepted = tcp_pair()
    with accepted:
        client.sendall(b"y" * 100)
        client.close()
        assert not sink.drain(accepted, sink.page_aligned(4096), 1000,
                              sink.recv_flags(accepted, "discard"))


def test_unix_sockets_always_copy() -> None:
    """AF_UNIX has no MSG_TRUNC discard for streams: the peer copies there."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert not sink.discards(a)
        assert sink.recv_flags(a, "discard") == 0
        a.sendall(b"z" * 500)
        view = sink.page_aligned(500)
        assert sink.drain(b, view, 500, sink.recv_flags(b, "discard"))
        assert bytes(view) == b"z" * 500


@pytest.mark.parametrize("how", sink.SINKS)
def test_a_peer_with_either_sink_confirms_every_byte(how: str) -> None:
    """A real peer started with each sink serves 1 MiB stream values and says which sink it
    used; the session checks the byte count the peer confirms."""
    with PeerProcess(sink=how) as peer:
        assert peer.sink == how
        session = Session.connect(Case("stream", "sendall", 1 << 20), peer.addr, 10.0,
                                  peer.ticket)
        try:
            for n in (1, 3, 8):
                session.run_value(n)
            assert [v.bytes for v in session.values] == [1 << 20, 3 << 20, 8 << 20]
        finally:
            session.close()


def test_the_peer_refuses_an_unknown_sink() -> None:
    done = subprocess.run([sys.executable, "-m", "flushbench.measure.peer", "--sink", "tee"],
                          capture_output=True, text=True, timeout=60, input="")
    assert done.returncode == 2 and "--sink" in done.stderr


@pytest.mark.slow
def test_a_run_records_its_sink_and_a_resume_keeps_it(tmp_path: Path) -> None:
    """``--peer-sink copy`` reaches the peer and meta.json; --resume takes no --peer-sink."""
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "flushbench", "run", "--suite", "smoke",
                           "--filter", "stream-*", "--peer-sink", "copy", "-q", "--out",
                           str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "meta.json").read_text())["peer_sink"] == "copy"
    again = subprocess.run([sys.executable, "-m", "flushbench", "run", "--resume", str(out),
                            "--peer-sink", "discard"], capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 2 and "--resume" in again.stderr
    assert "Traceback" not in again.stderr


def test_the_report_says_how_the_peer_took_in_stream_data() -> None:
    """The report's method line names the sink; a run from before the sink was recorded
    copied, and says so."""
    from flushbench.report.document import peer_sink

    assert "uncopied (MSG_TRUNC)" in peer_sink({"peer_sink": "discard"})
    assert "copied" in peer_sink({"peer_sink": "copy"}) and "copied" in peer_sink({})
    # a run's table says which cases the peer copied for all the same
    table = pd.DataFrame({"peer_sink": ["discard", "copy", "copy", pd.NA]})
    said = peer_sink({"peer_sink": "discard"}, table)
    assert "uncopied (MSG_TRUNC), but copied it for the 2 cases" in said
    assert "but" not in peer_sink({"peer_sink": "discard"}, table.iloc[[0, 3]])
    assert "but" not in peer_sink({"peer_sink": "discard"}, pd.DataFrame({"case": ["x"]}))


def test_a_cell_with_a_tls_or_unix_case_copies_throughout() -> None:
    plain = Case("stream", "sendall", 16384)
    assert sink.for_cases([plain, Case("stream", "makefile", 16384)]) == ""
    assert sink.for_cases([plain, Case("stream", "sendall", 16384, transport="unix")]) == "copy"
    assert sink.for_cases([plain, Case("stream", "sendall", 16384, tls=True)]) == "copy"
    assert sink.for_cases([]) == ""


@LINUX
@pytest.mark.parametrize(("asked", "said"), [("", "discard"), ("copy", "copy"),
                                             ("discard", "discard")])
def test_a_connection_asks_the_peer_for_its_sink_and_hears_what_it_does(asked: str,
                                                                         said: str) -> None:
    """A discarding peer copies for a connection whose hello asks it to (a cell with a unix or
    TLS case), and its answer says so; a request-response connection hears nothing."""
    with PeerProcess(sink="discard") as peer:
        session = Session.connect(Case("stream", "sendall", 65536), peer.addr, 10.0,
                                  peer.ticket, sink=asked)
        rr = Session.connect(Case("rr", "sendall", 64), peer.addr, 10.0, peer.ticket,
                             sink=asked)
        try:
            session.run_value(4)
            rr.run_value(4)
            assert session.values[0].bytes == 4 * 65536
            assert session.effective()["peer_sink"] == said
            assert rr.effective()["peer_sink"] == ""
        finally:
            session.close()
            rr.close()


@LINUX
@pytest.mark.parametrize(("asked", "said"), [("", "copy"), ("discard", "discard")])
def test_the_peers_sink_is_its_default_and_a_hello_overrides_it(asked: str, said: str) -> None:
    with PeerProcess(sink="copy") as peer:
        session = Session.connect(Case("stream", "sendall", 4096), peer.addr, 10.0,
                                  peer.ticket, sink=asked)
        try:
            session.run_value(2)
            assert session.effective()["peer_sink"] == said
        finally:
            session.close()


@pytest.mark.parametrize("bad", ["tee", 1, None, ["copy"], "COPY", {"sink": "copy"}, True,
                                 "copy\x00", "x" * 3000])
def test_a_hello_with_an_unknown_sink_is_refused_with_the_reason(bad: object) -> None:
    """The hello's sink is untrusted input: anything but a sink name is refused in the
    peer's answer, and the peer goes on serving."""
    with PeerProcess() as peer:
        with socket.create_connection(peer.addr, timeout=10) as sock:
            protocol.send_frame(sock, {"v": protocol.PROTOCOL_VERSION, "workload": "stream",
                                       "msg_size": 64, "reply": 0, "batch": 1, "rcvbuf": 0,
                                       "ticket": peer.ticket, "sink": bad})
            ack = protocol.recv_frame(sock)
        assert ack["ok"] is False and "sink must be one of discard, copy" in ack["error"]
        session = Session.connect(Case("stream", "sendall", 64), peer.addr, 10.0, peer.ticket)
        try:
            session.run_value(10)
        finally:
            session.close()


MIXED_CELL = """[suite]
name = "u2"
rounds = 2
values = 2
value_time = 0.005
timeout = 30

[[matrix]]
workload = "stream"
strategy = "sendall"
msg_size = 1024
transport = ["loopback", "unix"]
ops = 2000
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="AF_UNIX peer: Linux")
def test_a_resumed_run_from_before_the_cell_rule_keeps_discarding(tmp_path: Path) -> None:
    """A run records that its cells with a TLS or unix case copy throughout (meta.json
    schedule.cell_sink). A run from before that rule, resumed, goes on as it began: its
    loopback case discards, so its rounds stay alike."""
    from test_run import flushbench_cli

    suite = tmp_path / "u2.toml"
    suite.write_text(MIXED_CELL)
    new, old = tmp_path / "new", tmp_path / "old"
    done = flushbench_cli("run", "--suite", str(suite), "--out", str(new), "--pin", "none",
                          "-q")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((new / "meta.json").read_text())["schedule"]["cell_sink"] is True
    sinks = pd.read_csv(new / "table.csv", keep_default_na=False).set_index("case")["peer_sink"]
    assert set(sinks) == {"copy"}  # the loopback case and its twin too
    # the same run as one from before the rule, interrupted before its first trial
    old.mkdir()
    meta = json.loads((new / "meta.json").read_text())
    del meta["schedule"]["cell_sink"]
    (old / "meta.json").write_text(json.dumps(meta))
    (old / "table.csv").write_text((new / "table.csv").read_text().splitlines()[0] + "\n")
    again = flushbench_cli("run", "--resume", str(old), "-q")
    assert again.returncode == 0, again.stderr[-2000:]
    sinks = pd.read_csv(old / "table.csv", keep_default_na=False).set_index("case")["peer_sink"]
    assert sinks["stream-sendall-s1K-p2-nd0-sbauto-loopback"] == "discard"
    assert sinks["stream-sendall-s1K-p2-nd0-sbauto-unix"] == "copy"


@LINUX
@pytest.mark.parametrize(("asked", "said"), [("", "discard"), ("copy", "copy")])
def test_a_driver_cases_connections_ask_for_the_sink_too(asked: str, said: str) -> None:
    """The many connections of a driver case go to the peer's event loop (LoopConn), which
    copies when their hellos ask it to; every byte is confirmed either way."""
    from flushbench.measure.multisession import MultiSession

    case = Case("stream", "sendall", 16384, conns=4, driver="selectors")
    with PeerProcess(sink="discard") as peer:
        session = MultiSession.connect(case, peer.addr, 10.0, peer.ticket, sink=asked)
        try:
            session.run_value(8)
            assert session.values[0].bytes == 4 * 8 * 16384
            eff = session.effective()
            assert eff["peer_sink"] == said and "peer sink" not in eff["opt_mismatch"]
        finally:
            session.close()


def test_a_sink_the_peer_did_not_confirm_is_a_mismatch() -> None:
    """A peer from before it could be asked answers nothing: the case's opt_mismatch says
    so (request-response workloads have no one-way data, so nothing to confirm)."""
    from flushbench.measure.session import with_sink

    stream, rr = Case("stream", "sendall", 1024), Case("rr", "sendall", 64)
    eff = with_sink({"opt_mismatch": ""}, stream, "copy", "")
    assert eff["opt_mismatch"] == "peer sink requested copy, peer said nothing"
    eff = with_sink({"opt_mismatch": "sndbuf requested 1"}, stream, "copy", "discard")
    assert eff["opt_mismatch"] == "sndbuf requested 1; peer sink requested copy, peer said discard"
    assert with_sink({"opt_mismatch": ""}, stream, "copy", "copy")["opt_mismatch"] == ""
    assert with_sink({"opt_mismatch": ""}, rr, "copy", "")["opt_mismatch"] == ""
    assert with_sink({"opt_mismatch": ""}, stream, "", "discard")["peer_sink"] == "discard"
