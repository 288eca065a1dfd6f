"""Faults mid-case: the peer crashes, stalls or resets. That case fails with a reason; the
run finishes the others, exits non-zero, and stays loadable."""

from __future__ import annotations

from pathlib import Path

import pytest

import flushbench
from test_run import flushbench_cli

SUITE = """
[suite]
name = "faults"
rounds = 2
values = 2
warmups = 1
value_time = 0.05
timeout = 8

[[matrix]]
workload = "rr"
strategy = "sendall"
nodelay = true
msg_size = [100, 200, 300]
ops = 300

[[matrix]]
workload = "stream"
strategy = "sendall"
msg_size = [4096, 65536]
ops = 2000

[[matrix]]
workload = "stream"
strategy = "asyncio"
msg_size = 32768
ops = 2000

[[matrix]]
workload = "file"
strategy = "sendfile"
msg_size = 1048576
ops = 100
"""

# (fault spec, victim case, the reason the table must give)
FAULTS = {
    # the victim's A/A twin has the same workload and size, so the fault strikes whichever of
    # the two gets to its 4th GO first; the other then finds the peer gone
    "crash": ("crash:rr:200:4", "rr-sendall-s200-p2-nd1-sbauto-loopback",
              ("the peer closed the connection", "the peer reset the connection",
               "cannot connect to the peer")),
    "stall": ("stall:stream:65536:3", "stream-sendall-s64K-p2-nd0-sbauto-loopback",
              ("no progress for 2 s",)),
    # asyncio makes the socket non-blocking and socket.sendfile() would select() forever:
    # both must still be bounded
    "stall-asyncio": ("stall:stream:32768:3", "stream-asyncio-s32K-p2-nd0-sbauto-loopback",
                      ("no progress for 2 s",)),
    "stall-sendfile": ("stall:file:1048576:3", "file-sendfile-s1M-nd0-sbauto-loopback",
                       ("no progress for 2 s",)),
    "reset": ("reset:rr:200:3", "rr-sendall-s200-p2-nd1-sbauto-loopback",
              ("the peer reset the connection", "the peer closed the connection")),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_a_fault_fails_only_its_case(kind: str, tmp_path: Path) -> None:
    """The victim case records why it failed; every other case finishes normally."""
    spec, victim, reasons = FAULTS[kind]
    suite = tmp_path / "faults.toml"
    suite.write_text(SUITE)
    out = tmp_path / "run"
    proc = flushbench_cli("run", "--suite", str(suite), "--out", str(out), "--quiet",
                          env={"FLUSHBENCH_PEER_FAULT": spec}, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "2 of 14 case(s) failed" in proc.stderr  # the victim and its A/A twin
    frame = flushbench.load(out).set_index("case")
    assert len(frame) == 14
    failed = frame[frame["error"] != ""]
    assert list(failed.index) == [victim, victim + "-twin"]
    assert any(r in failed.loc[victim, "error"] for r in reasons), failed.loc[victim, "error"]
    ok = frame[frame["error"] == ""]
    assert (ok["msgs_per_s"] > 0).all() and ok["lat_p50_us"].notna().all()
