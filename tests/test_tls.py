"""TLS cases: a real peer process serving TLS, records per message from real TCP_INFO, the
conformance kit over TLS, the run's throwaway CA, and bad input."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flushbench.analysis.cells import cells
from flushbench.case import Case
from flushbench.errors import PeerError, SetupError, UsageError
from flushbench.measure import strategies
from flushbench.measure.session import Session
from flushbench.procs import PeerProcess
from flushbench.run.tlsca import RunCA, check_versions
from flushbench.suites import parse_suite
from flushbench.testing_tls import TlsUnavailable, check_session_tls, check_strategy_tls
from test_run import flushbench_cli


@pytest.fixture(scope="module")
def ca() -> Iterator[RunCA]:
    with RunCA() as run_ca:
        yield run_ca


@pytest.fixture(scope="module")
def tls_peer(ca: RunCA) -> Iterator[PeerProcess]:
    with PeerProcess(tls_cert=ca.server_cert("127.0.0.1")) as peer:
        yield peer


def measure(peer: PeerProcess, ca: RunCA, case: Case,
            values: int = 3) -> tuple[Session, dict[str, Any]]:
    """A session against the real peer process, ``values`` timed values of 50 operations;
    the closed session and what it read back."""
    session = Session.connect(case, peer.addr, 10.0, peer.ticket, ca=ca.ca_path)
    try:
        for _ in range(values):
            session.run_value(50)  # raises unless the peer confirms exactly the bytes sent
        eff = session.effective()
    finally:
        session.close()
    return session, eff


# -- the case -----------------------------------------------------------------------------

def test_ids_change_only_with_tls_on() -> None:
    """A case without TLS keeps its id; TLS adds its version before the transport."""
    plain = Case("stream", "sendall", 64)
    assert plain.id == "stream-sendall-s64-p2-nd0-sbauto-loopback"
    assert Case("stream", "sendall", 64, tls_version="1.2") == plain  # no TLS: one case
    assert Case("stream", "sendall", 64, tls=True).id == \
        "stream-sendall-s64-p2-nd0-sbauto-tls13-loopback"
    assert Case("wwr", "sendall", 64, tls=True, tls_version="1.2", twin=True).id == \
        "wwr-sendall-s64-p2-nd0-sbauto-tls12-loopback-twin"


def test_tls_cases_share_the_cell_of_their_plain_twin() -> None:
    """TLS on is compared with TLS off (axis "tls") inside one cell."""
    cases = [Case("stream", s, 64, tls=t) for s in ("sendall", "makefile") for t in (False, True)]
    (cell,) = cells(cases)
    tls_axis = {(c.case, c.baseline) for c in cell.comparisons if c.axis == "tls"}
    assert tls_axis == {(Case("stream", s, 64, tls=True).id, Case("stream", s, 64).id)
                        for s in ("sendall", "makefile")}
    assert cell.cases[-1].id == "stream-sendall-s64-p2-nd0-sbauto-loopback-twin"


@pytest.mark.parametrize(("text", "want"), [
    ('tls = true\ntls_version = "1.1"', 'tls_version must be "1.2" or "1.3"'),
    ("tls = true\ntls_version = 1.3", 'tls_version must be "1.2" or "1.3" (a string), got 1.3'),
    ('tls = "yes"', "tls must be true or false"),
])
def test_bad_tls_input_is_one_line_at_suite_load(text: str, want: str) -> None:
    """A bad tls or tls_version in a suite: UsageError naming it, before any run."""
    with pytest.raises(UsageError, match="^[^\n]*$") as err:
        parse_suite(f'[[matrix]]\nworkload = "stream"\nstrategy = "sendall"\nmsg_size = 64\n'
                    f"{text}\n")
    assert want in str(err.value)


def test_bad_tls_version_from_the_cli_exits_2_without_traceback(tmp_path: Path) -> None:
    """The CLI prints one line and exits 2."""
    suite = tmp_path / "bad.toml"
    suite.write_text('[[matrix]]\nworkload = "stream"\nstrategy = "sendall"\nmsg_size = 64\n'
                     'tls = true\ntls_version = "1.0"\n')
    proc = flushbench_cli("run", "--suite", str(suite), "--dry-run")
    assert proc.returncode == 2
    assert "tls_version" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_version_openssl_lacks_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TLS version the local OpenSSL does not have: SetupError naming it."""
    check_versions([Case("stream", "sendall", 64, tls=True, tls_version="1.2")])
    monkeypatch.setattr(ssl, "HAS_TLSv1_2", False)  # this host's OpenSSL has both
    with pytest.raises(SetupError, match=r"^tls_version 1\.2 is not available[^\n]*$"):
        check_versions([Case("stream", "sendall", 64, tls=True, tls_version="1.2")])


def test_a_certificate_that_fails_to_build_is_one_line(ca: RunCA) -> None:
    """trustme refusing a name becomes a one-line SetupError."""
    with pytest.raises(SetupError, match=r"^cannot make the peer's TLS certificate[^\n]*$"):
        ca.server_cert("not a host name")


# -- a real peer process --------------------------------------------------------------------

def test_peer_process_serves_a_tls_case(tls_peer: PeerProcess, ca: RunCA) -> None:
    """Exact bytes through TLS 1.3 to a real peer; the handshake is timed apart."""
    session, eff = measure(tls_peer, ca, Case("rr", "sendall", 1000, tls=True, nodelay=True))
    assert eff["tls_cipher"].startswith("TLSv1.3 ") and eff["tls_record_bytes"] == 22
    assert eff["tls_handshake_us"] > 0
    assert eff["nodelay_eff"] is True  # set on the TCP socket under the TLS layer
    assert len(session.values) == 3 and all(v.bytes == 50_000 for v in session.values)


@pytest.mark.parametrize(("strategy", "parts", "records"), [
    ("sendall", 2, 2.0), ("coalesce", 2, 1.0), ("makefile", 2, 1.0), ("send", 3, 3.0),
    ("asyncio", 2, 2.0),
])
def test_records_per_message_from_tcp_info(tls_peer: PeerProcess, ca: RunCA, strategy: str,
                                           parts: int, records: float) -> None:
    """tcpi_bytes_sent over the messages, less their bytes, is 22 bytes per record: one per
    part written separately, one for a coalesced message. No handshake byte is in a value."""
    case = Case("stream", strategy, 64, parts=parts, tls=True)
    session, _ = measure(tls_peer, ca, case)
    for value in session.values:
        assert value.tls_bytes == value.msgs * 22 * records, session.values


def test_tls_12_is_selectable(tls_peer: PeerProcess, ca: RunCA) -> None:
    """tls_version 1.2 negotiates TLS 1.2 (AES-GCM: 29 bytes per record)."""
    session, eff = measure(tls_peer, ca, Case("stream", "sendall", 64, tls=True,
                                              tls_version="1.2"))
    assert eff["tls_cipher"].startswith("TLSv1.2 ") and "GCM" in eff["tls_cipher"]
    assert eff["tls_record_bytes"] == 29
    assert all(v.tls_bytes == v.msgs * 29 * 2 for v in session.values)


def test_a_peer_without_a_certificate_refuses_tls(ca: RunCA) -> None:
    """A TLS hello to a peer started without a certificate: a clear refusal."""
    with PeerProcess() as peer, pytest.raises(PeerError, match="serves no TLS"):
        Session.connect(Case("stream", "sendall", 64, tls=True), peer.addr, 5.0, peer.ticket,
                        ca=ca.ca_path)


# -- the conformance kit over TLS ----------------------------------------------------------

@pytest.mark.parametrize("name", strategies.BUILTIN)
def test_conformance_kit_over_tls(name: str) -> None:
    """Every strategy that claims TLS passes the kit through TLS (and a TLS Session against
    the peer's handler); the others are refused with their reason."""
    cls = strategies.REGISTRY[name]
    if cls.tls_unavailable:
        with pytest.raises(TlsUnavailable, match=f"^strategy '{name}' is unavailable over TLS"):
            check_strategy_tls(cls)
        return
    check_strategy_tls(cls)
    for _, eff in check_session_tls(cls):
        assert eff["tls_cipher"].startswith("TLSv1.3 ")


def test_sendmsg_and_msg_more_are_unavailable_over_tls() -> None:
    """Over TLS they are left out with a reason; everything else runs."""
    out = {n for n in strategies.BUILTIN if strategies.REGISTRY[n].tls_unavailable}
    assert out == {"sendmsg", "msg_more"}
    reason = strategies.unavailable_over(Case("stream", "sendmsg", 64, tls=True))
    assert reason is not None and reason.startswith("unavailable over TLS: ")
    assert strategies.unavailable_over(Case("stream", "cork", 64, tls=True)) is None
    over_unix = strategies.unavailable_over(Case("stream", "sendall", 64, tls=True,
                                                 transport="unix"))
    assert str(over_unix).startswith("unavailable over unix: TLS runs over TCP")
    assert "send()" in strategies.REGISTRY["sendfile"].tls_note


def test_list_says_what_changes_over_tls() -> None:
    """`flushbench list` names the TLS reason or note under the strategies it concerns."""
    proc = flushbench_cli("list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    at = {line.split()[0]: i for i, line in enumerate(lines) if line.startswith("  ")
          and not line.startswith("   ")}
    assert lines[at["sendmsg"] + 1].strip().startswith("unavailable over TLS: ssl.SSLSocket")
    assert "falls back to send()" in lines[at["sendfile"] + 1]
    assert lines[at["sendall"] + 1].startswith("  makefile")


# -- a real run ----------------------------------------------------------------------------

TWO_CASES = """
[suite]
name = "tls2"
rounds = 2
values = 2
warmups = 0
value_time = 0.01
timeout = 30

[[matrix]]
workload = "stream"
strategy = ["sendall", "coalesce"]
msg_size = 64
tls = true
ops = 500
"""


def _run(tmp_path: Path, env: dict[str, str] | None = None, code: int = 0) -> tuple[Path, Path]:
    suite, out, tmp = tmp_path / "tls2.toml", tmp_path / "run", tmp_path / "tmp"
    suite.write_text(TWO_CASES)
    tmp.mkdir()
    proc = flushbench_cli("run", "--suite", str(suite), "--out", str(out), "--quiet",
                          env={"TMPDIR": str(tmp), **(env or {})})
    assert proc.returncode == code, proc.stderr[-3000:]
    return out, tmp


@pytest.mark.slow
def test_a_tls_run_writes_the_tls_columns_and_no_key(tmp_path: Path) -> None:
    """Records per message in table.csv; the CA's fingerprint in meta.json; no key or
    certificate in the run; the private CA directory removed."""
    out, tmp = _run(tmp_path)
    table = pd.read_csv(out / "table.csv").set_index("case")
    assert (table["error"].isna()).all() and table["tls"].all()
    sendall = table.loc["stream-sendall-s64-p2-nd0-sbauto-tls13-loopback"]
    assert sendall["tls_records_per_msg"] == 2.0 and sendall["tls_overhead_bytes_per_msg"] == 44
    coalesce = table.loc["stream-coalesce-s64-p2-nd0-sbauto-tls13-loopback"]
    assert coalesce["tls_records_per_msg"] == 1.0 and coalesce["tls_record_bytes"] == 22
    assert str(coalesce["tls_cipher"]).startswith("TLSv1.3 ") and coalesce["tls_handshake_us"] > 0
    assert (table["peer_sink"] == "copy").all()  # the peer decrypts: it copies
    meta = json.loads((out / "meta.json").read_text())
    assert len(meta["tls_ca_sha256"]) == 64
    for path in out.rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes() and b"CERTIFICATE" not in \
                path.read_bytes(), path
    assert not list(tmp.glob("flushbench-tls-*"))


@pytest.mark.slow
def test_a_resumed_tls_run_logs_the_new_ca(tmp_path: Path) -> None:
    """--resume makes a new throwaway CA (no key is ever kept): meta.json keeps the first
    part's fingerprint and logs the resume with the new one; the CA dir goes again."""
    out, tmp = _run(tmp_path)
    first = json.loads((out / "meta.json").read_text())["tls_ca_sha256"]
    done = flushbench_cli("run", "--resume", str(out), "--quiet", env={"TMPDIR": str(tmp)})
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tls_ca_sha256"] == first
    [entry] = meta["resumed"]
    assert len(entry["tls_ca_sha256"]) == 64 and entry["tls_ca_sha256"] != first
    assert entry["created"][:4].isdigit()
    assert not list(tmp.glob("flushbench-tls-*"))
    shown = flushbench_cli("show", str(out), "--format", "json")  # the logged run still loads
    assert shown.returncode == 0 and json.loads(shown.stdout), shown.stderr[-2000:]


@pytest.mark.slow
def test_the_ca_directory_goes_also_after_a_failing_case(tmp_path: Path) -> None:
    """The peer crashes in every TLS case (it is restarted for each visit, with its
    certificate): each case fails with the reason, the run ends, the CA dir goes."""
    out, tmp = _run(tmp_path, {"FLUSHBENCH_PEER_FAULT": "crash:stream:64:3"}, code=1)
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 6 and trials["error"].str.contains("peer").all(), trials["error"]
    assert not list(tmp.glob("flushbench-tls-*"))


REPORT_SUITE = """
[suite]
name = "tlsreport"
rounds = 2
values = 2
warmups = 0
value_time = 0.01
timeout = 30

[[matrix]]
workload = "stream"
strategy = ["sendall", "makefile", "sendmsg"]
msg_size = 64
tls = [false, true]
ops = 500

[[matrix]]
workload = "wwr"
strategy = "sendall"
nodelay = [false, true]
msg_size = 64
tls = true
ops = 100
"""


@pytest.mark.slow
def test_report_has_the_three_tls_sections(tmp_path: Path) -> None:
    """A run with TLS on and off: the report shows the three sections, their charts, the
    records per message, and the cases left out over TLS with the reason."""
    suite, out, report = tmp_path / "rep.toml", tmp_path / "run", tmp_path / "report"
    suite.write_text(REPORT_SUITE)
    proc = flushbench_cli("run", "--suite", str(suite), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "meta.json").read_text())
    assert [why for _, why in meta["skipped"]] == \
        ["unavailable over TLS: " + strategies.REGISTRY["sendmsg"].tls_unavailable]
    verdicts = pd.read_csv(out / "verdicts.csv")
    assert {"tls", "strategy", "nodelay", "A/A"} <= set(verdicts["axis"])
    proc = flushbench_cli("report", str(out), "--out", str(report))
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (report / "README.md").read_text()
    for title in ("### TLS: makefile against sendall", "### The cost of TLS per strategy",
                  "### The Nagle trap over TLS"):
        assert title in text
    assert "| 64 B | `sendall TLS 1.3` | stream | 2 | 44 |" in text
    assert "| 64 B | `makefile TLS 1.3` | stream | 1 | 22 |" in text
    assert "left out as unavailable over TLS" in text
    charts = {p.name.split("-tls-")[-1] for p in (report / "charts").glob("*-tls-*.png")}
    assert charts == {"makefile.png", "cost.png", "nagle.png"}


def test_stored_runs_without_tls_columns_still_load() -> None:
    """Committed runs (no tls columns) load: tls false, the TLS figures empty."""
    import flushbench

    root = Path(__file__).resolve().parents[1] / "results"
    runs = sorted(root.glob("*/*/meta.json"))
    if not runs:
        pytest.skip("no committed runs in this checkout")
    frame = flushbench.load(runs[0].parent)
    assert not frame["tls"].any() and frame["tls_records_per_msg"].isna().all()


def test_workers_and_peer_import_no_ssl_until_a_tls_case() -> None:
    """ssl (and never trustme) is imported in measure/ only where a TLS case runs."""
    import subprocess
    import sys

    code = ("import sys, flushbench.measure.visit, flushbench.measure.peer, "
            "flushbench.measure.session; print(sorted(m for m in ('ssl', 'trustme') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"
