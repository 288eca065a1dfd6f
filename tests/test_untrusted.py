"""Run files from another machine are hostile until checked: sizes before allocation."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flushbench import cli
from flushbench.case import Case
from flushbench.errors import ResultsError
from flushbench.results import load_samples, sample_path
from flushbench.untrusted import check_size, load_npz
from synthetic import write_paired_run, write_run


def forged_npz(path: Path, shape: tuple[int, ...], dtype: str = "<i8") -> None:
    """A samples file whose one member's header claims ``shape`` but holds no data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False,
                                                  "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("lat_ns.npy", header.getvalue())  # magic, length, header; no data


def test_a_header_claiming_2_to_the_40_values_is_refused(tmp_path: Path) -> None:
    """The 246-byte attack: refused by its header, before any allocation."""
    path = tmp_path / "forged.npz"
    forged_npz(path, (1 << 40,))
    assert path.stat().st_size < 400
    with pytest.raises(ResultsError, match=r"forged\.npz: lat_ns\.npy claims 8796093022208 "
                                           r"bytes, over the"):
        load_npz(path)


def test_a_header_larger_than_its_data_is_refused(tmp_path: Path) -> None:
    """Within the caps but more than the member holds: truncated or forged."""
    path = tmp_path / "short.npz"
    forged_npz(path, (1000,))
    with pytest.raises(ResultsError, match="claims 8000 bytes but holds"):
        load_npz(path)


def test_a_zip_bomb_is_refused_by_the_cap(tmp_path: Path) -> None:
    """Compressed zeros that inflate past the per-array cap are not inflated."""
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, lat_ns=np.zeros(1 << 18, dtype=np.int64))  # 2 MiB of zeros
    assert path.stat().st_size < 20_000
    with pytest.raises(ResultsError, match="over the 1048576-byte limit per array"):
        load_npz(path, array_cap=1 << 20)


def test_pickles_and_other_members_are_refused(tmp_path: Path) -> None:
    """Object arrays (pickles) and members that are not .npy arrays never load."""
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, lat_ns=np.array([object()], dtype=object))
    with pytest.raises(ResultsError, match="holds Python objects"):
        load_npz(pickled)
    other = tmp_path / "other.npz"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(ResultsError, match="not a .npy array"):
        load_npz(other)


def test_good_samples_still_load(tmp_path: Path) -> None:
    """What flushbench writes comes back whole."""
    path = tmp_path / "ok.npz"
    lat = np.arange(10_000, dtype=np.int64)
    np.savez_compressed(path, lat_ns=lat, values_s_per_msg=np.ones(3))
    data = load_npz(path)
    assert np.array_equal(data["lat_ns"], lat) and data["values_s_per_msg"].tolist() == [1] * 3


def test_an_oversized_text_file_is_refused_before_reading(tmp_path: Path) -> None:
    """meta.json and the CSV files have a size cap."""
    path = tmp_path / "meta.json"
    path.write_bytes(b" " * 2048)
    check_size(path, cap=4096)
    with pytest.raises(ResultsError, match="2048 bytes, over the 1024-byte limit"):
        check_size(path, cap=1024)


def test_the_report_gives_one_line_for_a_forged_samples_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`flushbench report` on a run with the forged file: exit 2, one line, no traceback."""
    case = Case("rr", "sendall", 64)
    run = write_run(tmp_path / "results", "m", "r", [case])
    forged_npz(sample_path(run, case.id), (1 << 40,))
    code = cli.main(["report", str(run), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("flushbench: error: ") and "claims 8796093022208 bytes" in err
    assert "Traceback" not in err


# -- the commands on hostile run directories (issue 12, items 6 and 7) ---------------------

def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run flushbench in-process; it must fail with one line and exit 2. Returns the line."""
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("flushbench: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    """Two small runs of interleaved rounds (verdicts, trials, samples, A/A twins)."""
    cases = [Case("rr", "sendall", 64), Case("rr", "makefile", 64)]
    return [write_paired_run(tmp_path / "results", m, "r", cases) for m in ("a", "b")]


def commands(run: Path, other: Path, out: Path) -> list[list[str]]:
    return [["show", str(run)], ["report", str(run), "--out", str(out / "report")],
            ["compare", str(other), str(run), "--out", str(out / "cmp")]]


def edit_meta(run: Path, change: Any) -> Path:
    path = run / "meta.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    change(meta)
    path.write_text(json.dumps(meta), encoding="utf-8")
    return path


def test_deeply_nested_meta_json_is_one_line(runs: list[Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 6: 100,000 nested arrays in meta.json gave a RecursionError; now one line."""
    path = runs[0] / "meta.json"
    text = path.read_text(encoding="utf-8").rstrip()
    path.write_text(text[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}",
                    encoding="utf-8")
    for argv in commands(runs[0], runs[1], tmp_path):
        line = cli_error(capsys, *argv)
        assert f"{path} is corrupt or truncated (maximum recursion depth" in line


WRONG_TYPES = {
    "client is text": (lambda m: m.update(client="a string"),
                       "client must be an object, got text"),
    "suite is an array": (lambda m: m.update(suite=["quick"]),
                          "suite must be an object, got an array"),
    "run id is an object": (lambda m: m.update(run_id={"a": 1}),
                            "run_id must be text or null, got an object"),
    "a sysctl is an array": (lambda m: m["client"]["sysctls"].update(x=[1]),
                             "client.sysctls.x must be text, a number, true/false or null, "
                             "got an array"),
    "an interface is text": (lambda m: m["peer"].update(interfaces={"lo": "up"}),
                             "peer.interfaces.lo must be an object, got text"),
    "a comparison is a number": (lambda m: m["schedule"].update(comparisons=[1]),
                                 "schedule.comparisons[0] must be an array of 3 items, got a "
                                 "whole number"),
    "a comparison is null": (lambda m: m["schedule"].update(comparisons=[None]),
                             "schedule.comparisons[0] must be an array of 3 items, got null"),
    "min_effect is text": (lambda m: m["schedule"].update(min_effect="3 %"),
                           "schedule.min_effect must be a number or null, got text"),
    "a calibration row lacks its figure": (
        lambda m: m.update(calibration={"ratios": [{"metric": "x", "tool": "iperf3"}]}),
        "calibration.ratios[0].flushbench is missing"),
    "a calibration figure is text": (
        lambda m: m.update(calibration={"ratios": [{k: "1" for k in (
            "metric", "flushbench", "reference", "tool", "ratio", "case")}]}),
        "calibration.ratios[0].flushbench must be a number, got text"),
    "schema_version is true": (lambda m: m.update(schema_version=True),
                               "has no schema_version; it is not a flushbench run"),
}


@pytest.mark.parametrize("name", sorted(WRONG_TYPES))
def test_meta_json_fields_of_the_wrong_type_are_one_line(
        name: str, runs: list[Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 6: `"client": "a string"` gave AttributeError; every field flushbench reads is
    type-checked, and show, report and compare give one line naming the file and field."""
    change, words = WRONG_TYPES[name]
    path = edit_meta(runs[0], change)
    for argv in commands(runs[0], runs[1], tmp_path):
        line = cli_error(capsys, *argv)
        assert line.startswith(f"flushbench: error: {path}") and words in line, line


def test_an_integer_of_5000_digits_in_meta_json_is_one_line(
        runs: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Python refuses to read integers over 4300 digits with a ValueError: one line too."""
    path = runs[0] / "meta.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"run_id": "r"',
                                                             '"run_id": ' + "7" * 5000))
    assert "7" * 5000 in path.read_text(encoding="utf-8")
    line = cli_error(capsys, "show", str(runs[0]))
    assert f"{path} is corrupt or truncated (Exceeds the limit (4300 digits)" in line


def outside_samples(tmp_path: Path) -> Path:
    """A samples file outside any run, that a traversal would read."""
    path = tmp_path / "outside" / "evil.npz"
    path.parent.mkdir()
    np.savez(path, lat_ns=np.arange(10, dtype=np.int64))
    return path


TRAVERSAL = "../../../../outside/evil"  # from results/a/r/samples/


@pytest.mark.parametrize("bad_id", [TRAVERSAL, "ABSOLUTE", "..", "a/b", "x y", "rr`x", "x" * 201])
def test_case_ids_that_would_leave_the_samples_folder_are_refused(
        bad_id: str, runs: list[Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 7: a case id of table.csv like ../../x (or an absolute path) opened .npz files
    outside the run; ids are now [A-Za-z0-9._-] and a bad one refuses the table by name."""
    evil = outside_samples(tmp_path)
    bad_id = str(evil.with_suffix("")) if bad_id == "ABSOLUTE" else bad_id
    if bad_id == TRAVERSAL:  # the traversal would reach the file
        assert (runs[0] / "samples" / f"{bad_id}.npz").resolve() == evil.resolve()
    table = runs[0] / "table.csv"
    frame = pd.read_csv(table, dtype=str, keep_default_na=False)
    frame.loc[1, "case"] = bad_id
    frame.to_csv(table, index=False)
    before = evil.stat().st_atime_ns
    for argv in commands(runs[0], runs[1], tmp_path):
        line = cli_error(capsys, *argv)
        assert line.startswith(f"flushbench: error: {table}: row 2: case ") \
            and "is not a case id (letters, digits, '.', '_' and '-' only)" in line, line
    assert evil.stat().st_atime_ns == before


@pytest.mark.parametrize(("name", "column"), [("trials.csv", "case"),
                                              ("verdicts.csv", "case"),
                                              ("verdicts.csv", "baseline")])
def test_case_ids_of_trials_and_verdicts_are_checked_too(
        name: str, column: str, runs: list[Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The same rule for every file that names a case."""
    path = runs[0] / name
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[0, column] = TRAVERSAL
    frame.to_csv(path, index=False)
    line = cli_error(capsys, "show", str(runs[0]))
    assert line.startswith(f"flushbench: error: {path}: row 1: {column} {TRAVERSAL!r}")


def test_a_samples_file_linked_out_of_the_folder_is_refused(
        runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 7: the resolved samples path must lie inside samples/ (a symbolic link in a
    copied run may point anywhere)."""
    evil = outside_samples(tmp_path)
    link = sample_path(runs[0], "rr-makefile-s64-p2-nd0-sbauto-loopback")
    link.unlink()
    link.symlink_to(evil)
    for argv in commands(runs[0], runs[1], tmp_path)[1:]:  # show does not read samples
        line = cli_error(capsys, *argv)
        assert line == (f"flushbench: error: {link} leads outside {runs[0] / 'samples'} (a "
                        "symbolic link); samples are read only from the run's own samples "
                        "folder"), line
    with pytest.raises(ResultsError, match="is not a case id"):
        load_samples(runs[0], TRAVERSAL)


NOT_NUMBERS = [("table.csv", "msg_size", "64 bytes", "row 1: msg_size is '64 bytes', not a "
                "number"),
               ("table.csv", "msg_size", "", "row 1: msg_size is empty"),
               ("table.csv", "parts", "-2", "row 1: parts is -2, not a whole number"),
               ("table.csv", "sndbuf", "1e300", "row 1: sndbuf is 1e+300, not a whole number"),
               # found by the fuzz target: pandas raised OverflowError past 64 bits
               ("table.csv", "parts", "9" * 400, "row 1: parts is '9999999999"),
               ("table.csv", "throughput_bps", "[/x]", "row 1: throughput_bps is '[/x]', not a"),
               ("trials.csv", "round", "first", "row 1: round is 'first', not a number"),
               ("trials.csv", "round", "0.5", "row 1: round is 0.5, not a whole number"),
               ("verdicts.csv", "ratio", "1.2x", "row 1: ratio is '1.2x', not a number"),
               ("verdicts.csv", "rounds", "inf", "row 1: rounds is inf, not a whole number")]


@pytest.mark.parametrize(("name", "column", "value", "words"), NOT_NUMBERS)
def test_a_number_that_is_not_one_refuses_the_file(
        name: str, column: str, value: str, words: str, runs: list[Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Text in a number column (which later code would format or sum) is one line naming
    the file, the row and the column; 'nan' still reads as a missing figure."""
    path = runs[0] / name
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[0, column] = value
    frame.to_csv(path, index=False)
    argvs = commands(runs[0], runs[1], tmp_path)
    for argv in argvs[:2] if name == "verdicts.csv" else argvs:  # compare reads no verdicts
        line = cli_error(capsys, *argv)
        assert line.startswith(f"flushbench: error: {path}: {words}"), line
    frame.loc[0, column] = "nan" if column not in ("msg_size", "round") else "64"
    frame.to_csv(path, index=False)
    assert cli.main(["show", str(runs[0])]) == 0


def test_a_case_listed_twice_refuses_the_table(runs: list[Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    table = runs[0] / "table.csv"
    frame = pd.read_csv(table, dtype=str, keep_default_na=False)
    pd.concat([frame, frame.iloc[[0]]]).to_csv(table, index=False)
    line = cli_error(capsys, "show", str(runs[0]))
    assert line.startswith(f"flushbench: error: {table}: case {frame['case'][0]!r} appears "
                           "more than once")


@pytest.mark.parametrize(("array", "words"), [
    (np.zeros((3, 2)), "is a 2-dimensional array of float64"),
    (np.array(["abc"]), "is a 1-dimensional array of <U3"),
    (np.array([1 + 2j]), "is a 1-dimensional array of complex128"),
    (np.float64(3.0), "is a 0-dimensional array of float64")])
def test_samples_hold_1_dimensional_arrays_of_numbers_only(tmp_path: Path, array: np.ndarray,
                                                           words: str) -> None:
    """Strings, complex numbers, tables and scalars are not samples (later code would fail
    on them with a traceback)."""
    path = tmp_path / "odd.npz"
    np.savez(path, lat_ns=array)
    with pytest.raises(ResultsError, match=f"lat_ns.npy {re.escape(words)}; samples are "):
        load_npz(path)


def test_a_member_that_inflates_past_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    """The size the zip records for a member bounds what is inflated (its header included)."""
    path = tmp_path / "big.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("lat_ns.npy", b"\0" * (3 << 20))
    with pytest.raises(ResultsError, match="inflates to 3145728 bytes, over the 1048576-byte"):
        load_npz(path, array_cap=1 << 20)
