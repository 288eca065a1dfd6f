"""Bad input: one line naming the file or field and what is expected, a non-zero exit,
no traceback, and no long work started first."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from flushbench import cli
from flushbench.measure import strategies
from flushbench.results import RunWriter


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    err = capsys.readouterr().err
    return code, err


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def suite_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return str(path)


def a_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    writer = RunWriter.create(run_dir, {"run_id": "r1", "machine_id": "m1"})
    writer.add_case({"case": "stream-sendall-s64-p2-nd0-sbauto-loopback", "workload": "stream",
                     "strategy": "sendall", "msg_size": 64, "throughput_bps": 1e9, "error": ""})
    return run_dir


CASES = {
    "unknown suite": (["run", "--suite", "nope"], "flushbench: error: unknown suite 'nope'; "
                      "expected a .toml file or one of: concurrency, full, quick, smoke, tls, wan"),
    "unknown option": (["run", "--bogus"],
                       "flushbench: error: unrecognized arguments: --bogus "
                       "(see 'flushbench --help')"),
    "bad pin": (["run", "--pin", "cpu0"], "flushbench run: error: argument --pin: --pin 'cpu0': "
                "expected client=N,peer=M (see 'flushbench run --help')"),
    "no match": (["run", "--suite", "smoke", "--filter", "zzz"],
                 "flushbench: error: no case of suite 'smoke' matches --filter zzz; see "
                 "'flushbench run --dry-run'"),
    "missing suite file": (["run", "--suite", "/no/such.toml"],
                           "flushbench: error: suite file /no/such.toml does not exist"),
    "bad loops file": (["run", "--suite", "smoke", "--loops-file", "/no/loops.json"],
                       "flushbench: error: --loops-file /no/loops.json: cannot read it "
                       "([Errno 2] No such file or directory: '/no/loops.json')"),
    "missing run": (["show", "/no/such/run"], "flushbench: error: /no/such/run does not exist"),
    "resume with suite": (["run", "--resume", "/tmp", "--suite", "smoke"],
                          "flushbench: error: --resume measures the rest as the run it resumes "
                          "was measured (suite, filters, directory, rounds, values, seed, loops, "
                          "pinning, congestion control, peer, peer sink, transport); drop the "
                          "other run options"),
    "bad plugin": (["run", "--strategy-plugin", "nocolon"],
                   "flushbench: error: --strategy-plugin 'nocolon': expected module:Class"),
    "peer and link": (["run", "--peer", "127.0.0.1:1", "--link", "delay=1ms"],
                      "flushbench: error: --peer and --link exclude each other: a run goes to "
                      "a remote agent or to an emulated host"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_mistakes_are_one_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each CLI mistake gives exactly its one-line message and exit code 2."""
    argv, expected = CASES[name]
    code, err = run_cli(capsys, *argv)
    assert code == 2
    assert one_line(err) == expected


SUITE_ERRORS = {
    "malformed toml": ("[[matrix]\n", "is not valid TOML"),
    "unknown key": ("[[matrix]]\nworkload='stream'\nstrategy='sendall'\nmsg_size=64\nfoo=1\n",
                    "[[matrix]] #1 has unknown key 'foo'; expected some of workload, strategy"),
    "unknown strategy": ("[[matrix]]\nworkload='stream'\nstrategy='sendal'\nmsg_size=64\n",
                         "unknown strategy 'sendal' (did you mean 'sendall'?); expected one "
                         "of asyncio, coalesce, cork"),
    "sendfile on stream": ("[[matrix]]\nworkload='stream'\nstrategy='sendfile'\nmsg_size=64\n",
                           "strategy 'sendfile' does not run the stream workload; it runs file"),
    "bad type": ("[[matrix]]\nworkload='rr'\nstrategy='send'\nmsg_size=64\nnodelay='yes'\n",
                 "nodelay must be true or false, got 'yes'"),
}


@pytest.mark.parametrize("name", sorted(SUITE_ERRORS))
def test_bad_suite_files_are_one_line(name: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed or impossible suite file names the file and the field, exit 2."""
    text, fragment = SUITE_ERRORS[name]
    path = suite_file(tmp_path, text)
    code, err = run_cli(capsys, "run", "--suite", path, "--dry-run")
    assert code == 2
    line = one_line(err)
    assert line.startswith("flushbench: error: ")
    assert fragment in line
    assert path in line


def test_cork_where_tcp_cork_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """On a platform without TCP_CORK, a cork case is refused before anything runs."""
    monkeypatch.delattr("socket.TCP_CORK")
    path = suite_file(tmp_path, "[[matrix]]\nworkload='wwr'\nstrategy='cork'\nmsg_size=64\n")
    code, err = run_cli(capsys, "run", "--suite", path)
    assert code == 2
    assert one_line(err) == (f"flushbench: error: {path}: wwr-cork-s64-p2-nd0-sbauto-loopback: "
                             "strategy 'cork' cannot run here: TCP_CORK does not exist on this "
                             "platform")
    assert strategies.REGISTRY["cork"].unavailable()


def test_unwritable_output_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An output directory that cannot be created is refused with the reason."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, err = run_cli(capsys, "run", "--suite", "smoke", "--out", str(blocker / "run"))
    assert code == 2
    assert one_line(err) == (f"flushbench: error: output directory {blocker / 'run'} is not "
                             "writable: Not a directory")


def test_existing_run_is_not_overwritten(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """--out pointing at an existing run is refused, pointing at --resume."""
    run_dir = a_run(tmp_path)
    code, err = run_cli(capsys, "run", "--suite", "smoke", "--out", str(run_dir))
    assert code == 2
    assert one_line(err) == (f"flushbench: error: {run_dir} already holds a run; choose another "
                             f"--out or --resume {run_dir}")


def test_corrupt_meta(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A truncated meta.json is named as corrupt."""
    run_dir = a_run(tmp_path)
    meta = run_dir / "meta.json"
    meta.write_text(meta.read_text()[:20])
    code, err = run_cli(capsys, "show", str(run_dir))
    assert code == 2
    line = one_line(err)
    assert line.startswith(f"flushbench: error: {meta} is corrupt or truncated (")
    assert line.endswith("); rerun or delete the run")


def test_newer_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run from a newer schema asks for an upgrade instead of misreading it."""
    run_dir = a_run(tmp_path)
    meta_path = run_dir / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["schema_version"] = 99
    meta_path.write_text(json.dumps(meta))
    code, err = run_cli(capsys, "show", str(run_dir))
    assert code == 2
    assert one_line(err) == (f"flushbench: error: {meta_path} was written with schema 99, this "
                             "flushbench reads up to 2: upgrade flushbench (pip install -U "
                             "flushbench)")


def test_table_that_is_not_ours(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A table.csv without our columns is refused by name."""
    run_dir = a_run(tmp_path)
    (run_dir / "table.csv").write_text("a,b\n1,2\n")
    code, err = run_cli(capsys, "show", str(run_dir))
    assert code == 2
    assert one_line(err) == (f"flushbench: error: {run_dir / 'table.csv'} lacks column(s) case, "
                             "workload, strategy; it is not a flushbench table")


def test_missing_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run directory without table.csv is named."""
    run_dir = a_run(tmp_path)
    (run_dir / "table.csv").unlink()
    code, err = run_cli(capsys, "show", str(run_dir))
    assert code == 2
    assert one_line(err) == f"flushbench: error: {run_dir}: table.csv is missing"


# -- run text on the terminal (issue 12, item 4) --------------------------------------------

MARKUP = "[/x] [link=https://evil.example]click[/link] [bold red]loud"
ESCAPES = ("\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]8;;https://evil.example\x1b\\x\x1b]8;;\x1b\\"
           " \rback\x9b")
SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own colours: the only escape allowed


def hostile_runs(tmp_path: Path) -> list[Path]:
    """Two runs of interleaved rounds whose machine ids, CPU names, strategy names, errors
    and option notes hold rich markup and terminal escape sequences."""
    from flushbench.case import Case
    from synthetic import host, make_meta, write_paired_run

    cases = [Case("rr", "sendall", 64), Case("rr", "makefile", 64), Case("stream", "sendall", 64)]
    runs = []
    for i, name in enumerate(("a", "b")):
        meta = make_meta(f"m{name}{MARKUP}{ESCAPES}", "r", client=host(
            cpu=f"CPU {i} {MARKUP}{ESCAPES}", kernel=f"6.{i} {ESCAPES}"))
        run = write_paired_run(tmp_path / name, "m", "r", cases, meta=meta)
        table = run / "table.csv"
        frame = pd.read_csv(table, dtype=str, keep_default_na=False)
        frame.loc[frame["strategy"] == "makefile", "strategy"] = f"make{MARKUP}{ESCAPES}"
        frame.loc[0, "opt_mismatch"] = f"odd {MARKUP}{ESCAPES}"
        frame.loc[2, "error"] = f"PeerError: {MARKUP}{ESCAPES}"
        frame.to_csv(table, index=False, quoting=csv.QUOTE_ALL)  # a bare \r stays in its cell
        runs.append(run)
    return runs


def test_run_text_is_neither_markup_nor_escape_codes(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 4: a '[/x]' made compare and show exit 1 with rich's MarkupError, and ESC
    sequences reached the terminal byte for byte. Now show, show --all and compare exit 0,
    print the markup as text and every control character escaped."""
    a, b = hostile_runs(tmp_path)
    for argv in (["show", str(a)], ["show", "--all", str(a)], ["compare", str(a), str(b)]):
        code = cli.main(argv)
        captured = capsys.readouterr()
        text = captured.out + captured.err
        assert code == 0, captured.err
        assert "Traceback" not in text and "\x1b" not in text and "\r" not in text
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text), argv
        assert "[/x]" in text and "\\x1b[2J" in text, argv
        assert "PeerError: [/x]" in text or argv[1] != "--all", text


def test_run_text_makes_no_escape_codes_on_a_real_terminal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal rich adds colours, and nothing else: no live hyperlink from
    [link=...], no clear screen, no window title; the words stay visible."""
    from rich.console import Console

    from flushbench.report import terminal

    a, b = hostile_runs(tmp_path)
    screen = io.StringIO()
    monkeypatch.setattr(terminal, "console", Console(file=screen, force_terminal=True,
                                                     color_system="truecolor", width=200))
    monkeypatch.setenv("FORCE_COLOR", "1")  # compare's own console, on stdout
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main(["show", "--all", str(a)]) == 0
    assert cli.main(["compare", str(a), str(b)]) == 0
    shown = screen.getvalue() + capsys.readouterr().out
    assert SGR.search(shown), "not rendered as for a terminal"
    plain = SGR.sub("", shown)
    assert "\x1b" not in plain and "\r" not in plain and "\x07" not in plain
    assert "[link=https://evil.example]click[/link]" in plain.replace("\n", "")
    assert "\\x1b]8;;https://evil.example" in plain.replace("\n", "")


@pytest.mark.parametrize("sink", ["tee /etc/passwd", 1, ["copy"], None])
def test_a_resumed_runs_peer_sink_is_checked(sink: object) -> None:
    """meta.json's peer_sink goes to the peer's command line on a resume: anything but
    'discard' or 'copy' stops the resume with one line, before a peer starts."""
    from flushbench.errors import UsageError
    from flushbench.run.options import RunOptions, prepare_suite
    from flushbench.suites import load_suite

    meta = {"schedule": {"rounds": 2}, "peer_sink": sink,
            "suite": {"source": Path(load_suite("smoke").path).read_text()}, "filters": []}
    with pytest.raises(UsageError) as info:
        prepare_suite(RunOptions(resume=Path("/runs/x")), meta)
    assert str(info.value).startswith("/runs/x/meta.json: peer_sink is neither")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cc", ["bbr; rm -rf /", 7, "ünïcode"])
def test_a_resumed_runs_congestion_control_is_checked(cc: object) -> None:
    """meta.json may come from anywhere: a schedule.cc that is not a congestion control's
    name stops the resume with one line, before any socket is touched."""
    from flushbench.errors import UsageError
    from flushbench.run.options import RunOptions, prepare_suite
    from flushbench.suites import load_suite

    meta = {"schedule": {"rounds": 2, "cc": cc},
            "suite": {"source": Path(load_suite("smoke").path).read_text()}, "filters": []}
    with pytest.raises(UsageError) as info:
        prepare_suite(RunOptions(resume=Path("/runs/x")), meta)
    assert str(info.value).startswith("/runs/x/meta.json: schedule.cc is not a congestion "
                                      "control's name")
    assert "\n" not in str(info.value)
