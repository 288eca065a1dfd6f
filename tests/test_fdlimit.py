"""The file-descriptor limit for many connections, in child processes with lowered limits."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

resource = pytest.importorskip("resource")

CHILD = textwrap.dedent("""
    import resource, socket, sys
    from flushbench.errors import SetupError
    from flushbench.measure import fdlimit
    soft, hard = int(sys.argv[1]), int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        now = fdlimit.ensure(int(sys.argv[3]), "the client")
    except SetupError as exc:
        print("ERROR", exc)
        sys.exit(2)
    socks = [socket.socket() for _ in range(int(sys.argv[3]))]  # they fit now
    print("OK", now, len(socks))
""")


def child(soft: int, hard: int, conns: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD, str(soft), str(hard), str(conns)],
                          capture_output=True, text=True, timeout=60)


def test_soft_limit_raised_up_to_the_hard_one() -> None:
    got = child(256, 4096, 1000)
    assert got.returncode == 0, got.stderr
    _, now, made = got.stdout.split()
    assert int(made) == 1000 and 1064 <= int(now) <= 4096


def test_hard_limit_too_low_is_one_line_saying_how_to_raise_it() -> None:
    got = child(256, 512, 1000)
    assert got.returncode == 2 and "Traceback" not in got.stderr
    line = got.stdout.strip()
    assert line.count("\n") == 0
    assert "1000 connections need 1064 open files" in line
    assert "the client may open at most 512" in line and "ulimit -Hn 1064" in line


def test_enough_already_changes_nothing() -> None:
    got = child(2048, 4096, 100)
    assert got.returncode == 0 and got.stdout.split()[1] == "2048"
