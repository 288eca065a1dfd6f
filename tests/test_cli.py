"""Command-line conventions: help for a bare command, short flags, help text on every
option, "did you mean" for names, where a report goes by default, a finished resume."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flushbench import cli
from flushbench.case import Case
from flushbench.errors import UsageError
from flushbench.measure import strategies
from flushbench.netlab.linkspec import LinkSpec
from flushbench.suites import load_suite
from synthetic import write_paired_run, write_run
from test_run import flushbench_cli


def test_a_bare_command_prints_help_with_examples_and_exit_codes(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: flushbench")
    assert "examples:" in out and "flushbench run -s smoke" in out
    assert "130  interrupted" in out and "case ids read workload-strategy" in out


def test_short_flags_mean_the_long_ones() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["run", "-s", "smoke", "-o", "x", "-q", "-f", "rr-*", "-f", "nd1"])
    assert (args.suite, args.out, args.quiet, args.filter) == \
        ("smoke", Path("x"), True, ["rr-*", "nd1"])
    assert parser.parse_args(["report", "r", "-o", "d"]).out == Path("d")
    assert parser.parse_args(["compare", "a", "b", "-o", "f"]).output == Path("f")  # data
    assert parser.parse_args(["compare", "a", "b", "--out", "d"]).out == Path("d")  # docs
    assert parser.parse_args(["show", "r", "-f", "rr"]).filter == ["rr"]
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["-V"])
    assert info.value.code == 0


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def test_every_option_has_help_text() -> None:
    missing = [f"{p.prog} {a.dest}" for p in _parsers(cli.build_parser()) for a in p._actions
               if not isinstance(a, argparse._SubParsersAction) and not a.help]
    assert missing == []


@pytest.mark.parametrize(("call", "said"), [
    (lambda: load_suite("smok"), "unknown suite 'smok' (did you mean 'smoke'?)"),
    (lambda: strategies.get("sendal"), "unknown strategy 'sendal' (did you mean 'sendall'?)"),
    (lambda: LinkSpec.parse("wan-20m"), "unknown link profile 'wan-20m' (did you mean "
                                        "'wan-20ms'?)"),
])
def test_unknown_names_get_a_did_you_mean(call: object, said: str) -> None:
    with pytest.raises(UsageError) as info:
        call()  # type: ignore[operator]
    assert str(info.value).startswith(said) and "\n" not in str(info.value)


def test_no_guess_when_nothing_is_close() -> None:
    with pytest.raises(UsageError) as info:
        load_suite("zzzzzz")
    assert "did you mean" not in str(info.value)


def test_one_runs_report_goes_into_the_run(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Never over results/report by default: one run's report lands in RUN/report; several
    runs (or a folder of runs) need --out, in one line."""
    run = write_run(tmp_path / "results", "m", "r", [Case("rr", "sendall", 64)])
    assert cli.main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "report" / "index.html")
    assert (run / "report" / "README.md").is_file()
    assert cli.main(["report", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flushbench: error: several runs (or a folder of runs) need --out")
    assert err.count("\n") == 1


@pytest.mark.slow
def test_resuming_a_finished_run_says_there_is_nothing_left(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = flushbench_cli("run", "-s", "smoke", "-f", "rr-*", "--rounds", "2", "--values", "1",
                           "-q", "-o", str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    again = flushbench_cli("run", "--resume", str(out), "-q")
    assert again.returncode == 0, again.stderr[-2000:]
    said = again.stdout + again.stderr
    assert f"nothing left to run: {out} is finished" in said


def test_show_writes_data_to_stdout_and_in_formats_for_programs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``show RUN > f`` puts the table in f; ``--format json|csv|md`` give the verdicts as
    records naming run and machine (``--all``: the table), ``-o FILE`` writes there."""
    import io
    import json

    import pandas as pd

    from flushbench.suites import load_suite

    run = write_paired_run(tmp_path, "m", "r", load_suite("smoke").cases)
    assert cli.main(["show", str(run)]) == 0
    shown = capsys.readouterr()
    assert "each case / its baseline" in shown.out and "m/r" in shown.out
    assert "each case / its baseline" not in shown.err
    assert cli.main(["show", str(run), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    verdicts = pd.read_csv(run / "verdicts.csv")
    assert len(records) == len(verdicts) > 0
    assert {r["run"] for r in records} == {"r"} and {r["machine"] for r in records} == {"m"}
    assert {"case", "baseline", "axis", "metric", "ratio", "ci_low", "ci_high",
            "verdict"} <= set(records[0])
    assert cli.main(["show", str(run), "--format", "csv", "-f", "rr-*"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(frame) > 0 and frame["case"].str.startswith("rr-").all()
    out = tmp_path / "table.md"
    assert cli.main(["show", str(run), "--all", "--format", "md", "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    lines = out.read_text().splitlines()
    assert lines[0].startswith("| run | machine | case |")
    assert len(lines) == 2 + len(pd.read_csv(run / "table.csv"))


def test_markdown_and_json_keep_hostile_text_inert() -> None:
    import json

    import pandas as pd

    from flushbench.report.export import render

    frame = pd.DataFrame({"case": ["a|b\x1b[2Jc\nd"], "ratio": [float("nan")]})
    md = render(frame, "md")
    assert "\x1b" not in md and "a\\|b" in md and md.count("\n") == 3
    assert json.loads(render(frame, "json")) == [{"case": "a|b\x1b[2Jc\nd", "ratio": None}]


def test_a_corrupt_run_in_a_folder_is_skipped_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flushbench.suites import load_suite

    root = tmp_path / "results"
    good = write_paired_run(root, "m", "good", load_suite("smoke").cases)
    bad = write_paired_run(root, "m", "bad", load_suite("smoke").cases)
    (bad / "meta.json").write_text("{ truncated")
    assert cli.main(["show", str(root)]) == 0
    shown = capsys.readouterr()
    assert "m/good" in shown.out and "m/bad" not in shown.out
    said = " ".join((shown.err + shown.out).split())  # rich may fold the warning's line
    assert f"warning: skipped {bad}: {bad / 'meta.json'} is corrupt or truncated" in said
    assert cli.main(["show", str(bad)]) == 2  # named directly: an error, as before
    assert capsys.readouterr().err.startswith("flushbench: error: ")
    assert cli.main(["report", str(root), "-o", str(tmp_path / "rep")]) == 0
    assert "skipped" in capsys.readouterr().err and (tmp_path / "rep" / "index.html").is_file()
    assert good.is_dir()


def test_a_link_suite_on_loopback_says_so_and_dry_run_shows_the_runs_ids(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "-s", "wan", "--dry-run"]) == 0
    shown = capsys.readouterr()
    said = " ".join((shown.err + shown.out).split())
    assert "suite wan is meant for an emulated link" in said and "--link wan-20ms" in said
    assert "-loopback\t" in shown.out
    assert cli.main(["run", "-s", "wan", "--link", "wan-20ms", "--dry-run"]) == 0
    shown = capsys.readouterr()
    assert "meant for an emulated link" not in shown.err + shown.out
    ids = [line.split("\t")[0] for line in shown.out.splitlines() if "\t" in line]
    assert ids and all(i.endswith(("-emulated", "-emulated-twin")) for i in ids)


@pytest.mark.parametrize(("line", "offered"), [
    ("flushbench sh", {"show"}),
    ("flushbench run --suite sm", {"smoke"}),
    ("flushbench run --strategy sendm", {"sendmsg"}),
    ("flushbench show --nodelay o", {"on", "off"}),
])
def test_shell_completion_offers_commands_suites_and_strategies(
        tmp_path: Path, line: str, offered: set[str]) -> None:
    """argcomplete's protocol, as bash drives it: the words come back through the file."""
    import subprocess
    import sys

    out = tmp_path / "words"
    env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
           "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}
    proc = subprocess.run([sys.executable, "-m", "flushbench"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    words = {w.strip() for w in out.read_text().replace("\x0b", "\n").split("\n") if w.strip()}
    assert words == offered


def test_ctrl_c_while_a_class_is_defined_is_an_interrupt(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C can land while a command's lazy import defines a class; Python then raises a
    RuntimeError caused by the KeyboardInterrupt (from ``__set_name__``). That is an
    interrupt: exit 130 and one line, no traceback (tests/test_interrupt.py hit it)."""
    from flushbench import commands

    class Interrupting:
        def __set_name__(self, owner: type, name: str) -> None:
            raise KeyboardInterrupt

    def interrupted_import(args: object) -> int:
        type("Obj", (), {"fields": Interrupting()})  # as `class Obj: fields = ...` does
        return 0

    def broken(args: object) -> int:
        raise RuntimeError("a real bug")

    monkeypatch.setitem(commands.COMMANDS, "show", interrupted_import)
    assert cli.main(["show", "."]) == 130
    assert capsys.readouterr().err.strip() == "flushbench: interrupted"
    monkeypatch.setitem(commands.COMMANDS, "show", broken)
    with pytest.raises(RuntimeError, match="a real bug"):  # other errors are not hidden
        cli.main(["show", "."])


# a child python that imports this checkout's flushbench
SRC_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}

LATE_CTRL_C = """
import _thread, sys
from flushbench import cli
def main(argv=None):
    print("finished", file=sys.stderr)
    _thread.interrupt_main()  # SIGINT's handler runs at the next check: outside main()'s try
    return {code}
cli.main = main
cli.entry()
"""


@pytest.mark.parametrize("code", [0, 130])
def test_a_ctrl_c_outside_mains_try_exits_130_in_one_line(code: int) -> None:
    """A Ctrl-C pending as main() returns (seen once in a full check: a run stopped by
    Ctrl-C said so, then died by SIGINT, exit -2, with a traceback) is an interrupt:
    exit 130 and one line."""
    proc = subprocess.run([sys.executable, "-c", LATE_CTRL_C.format(code=code)], env=SRC_ENV,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.splitlines() == ["finished", "flushbench: interrupted"]


LEAVING = """
import atexit, sys
from flushbench import cli
class Witness:
    def __del__(self):
        print("finalized", file=sys.stderr)
witness = Witness()
atexit.register(lambda: print("atexit ran", file=sys.stderr))
def main(argv=None):
    print("partial line", end="")  # stdout is a pipe: block-buffered, not yet written
    return {code}
cli.main = main
cli.entry()
"""


@pytest.mark.parametrize("code", [0, 2, 130])
def test_an_interrupted_exit_skips_finalization_but_not_atexit(code: int) -> None:
    """Exit 130 leaves without the interpreter's finalization (once it aborted there, exit
    -6, after an early Ctrl-C) yet runs the atexit handlers and flushes stdout; other exits
    finalize as usual."""
    proc = subprocess.run([sys.executable, "-c", LEAVING.format(code=code)], env=SRC_ENV,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == "partial line"
    finalized = [] if code == 130 else ["finalized"]
    assert proc.stderr.splitlines() == ["atexit ran", *finalized]
