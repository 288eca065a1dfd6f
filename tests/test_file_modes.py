"""Files and folders flushbench writes get the mode the umask allows (not mkstemp's 0600),
and under sudo they are handed to SUDO_UID/SUDO_GID. Real files, a real umask, real chown
(as root; skipped otherwise)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from flushbench import files
from flushbench.report.export import write_records
from flushbench.results import RunWriter, atomic_write, write_json
from synthetic import make_meta, small_cases, write_run

UID, GID = 12345, 12346  # no such user: the chown itself is what is checked
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def umask() -> Iterator[None]:
    """Each test sets its own umask; the process's is restored afterwards."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def no_sudo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUDO_UID", raising=False)
    monkeypatch.delenv("SUDO_GID", raising=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def tree(top: Path) -> list[Path]:
    return [top, *sorted(top.rglob("*"))]


def test_the_umask_is_read_without_changing_it(umask: None) -> None:
    for mask in (0o022, 0o077, 0o002, 0o027):
        os.umask(mask)
        assert files.current_umask() == mask and files.file_mode() == 0o666 & ~mask
        assert os.umask(mask) == mask  # still set


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o027])
def test_atomic_write_gives_the_umask_mode_not_0600(tmp_path: Path, umask: None,
                                                    no_sudo: None, mask: int) -> None:
    os.umask(mask)
    text, data = tmp_path / "a.json", tmp_path / "b.bin"
    write_json(text, {"x": 1})
    with atomic_write(data, "wb") as fh:
        fh.write(b"\0")
    for path in (text, data):
        assert mode(path) == 0o666 & ~mask, oct(mode(path))
    text.chmod(0o600)
    write_json(text, {"x": 2})  # a rewrite gets the umask's mode again
    assert mode(text) == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin"]  # no temp left


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o027])
def test_a_whole_run_gets_the_umask_modes(tmp_path: Path, umask: None, no_sudo: None,
                                          mask: int) -> None:
    os.umask(mask)
    run = write_run(tmp_path / "results", "m", "r", small_cases()[:4])
    writer = RunWriter.reopen(run)  # --resume: the samples folder is made again if gone
    writer.write_pyperf("{}")
    paths = tree(tmp_path / "results")
    assert {p.name for p in paths} >= {"results", "m", "r", "samples", "table.csv",
                                       "meta.json", "pyperf.json"}
    assert any(p.suffix == ".npz" for p in paths)
    for path in paths:
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        assert mode(path) == want, f"{path}: {oct(mode(path))} instead of {oct(want)}"


def test_make_dirs_makes_each_missing_folder_with_the_umask_mode(
        tmp_path: Path, umask: None, no_sudo: None) -> None:
    os.umask(0o027)
    deep = files.make_dirs(tmp_path / "a" / "b" / "c")
    assert deep.is_dir()
    for folder in (tmp_path / "a", tmp_path / "a" / "b", deep):
        assert mode(folder) == 0o750
    assert files.make_dirs(deep) == deep  # an existing folder is fine


def test_an_export_file_gets_the_umask_mode(tmp_path: Path, umask: None, no_sudo: None) -> None:
    os.umask(0o002)
    out = tmp_path / "records.json"
    write_records(pd.DataFrame({"case": ["a"], "x": [1.0]}), "json", out)
    assert mode(out) == 0o664 and out.read_text().startswith("[")


def test_without_root_sudo_variables_change_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_UID", str(UID))
    monkeypatch.setenv("SUDO_GID", str(GID))
    assert files.sudo_owner() == ((UID, GID) if ROOT else None)
    for bad in ("", "x", "-1"):
        monkeypatch.setenv("SUDO_UID", bad)
        assert files.sudo_owner() is None
    monkeypatch.delenv("SUDO_UID")
    assert files.sudo_owner() is None


needs_root = pytest.mark.skipif(not ROOT, reason="chown to another user needs root (run the "
                                "tests as root, e.g. under sudo, to check the sudo path)")


@needs_root
def test_under_sudo_a_run_is_handed_to_the_sudo_user(tmp_path: Path, umask: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_UID", str(UID))
    monkeypatch.setenv("SUDO_GID", str(GID))
    os.umask(0o022)
    meta = make_meta("m", "r")
    run = write_run(tmp_path / "results", "m", "r", small_cases()[:4], meta=meta)
    RunWriter.reopen(run).write_pyperf("{}")
    for path in tree(tmp_path / "results"):
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (UID, GID), path
        assert mode(path) == (0o755 if path.is_dir() else 0o644), path
    assert tmp_path.stat().st_uid == 0  # a folder that was there before keeps its owner


@needs_root
def test_under_sudo_a_report_and_its_charts_are_the_sudo_users(
        tmp_path: Path, umask: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """flushbench report under sudo: the report folder, its pages and every chart."""
    from flushbench.report.document import build_report

    run = write_run(tmp_path / "results", "m", "r", small_cases()[:4])
    monkeypatch.setenv("SUDO_UID", str(UID))
    monkeypatch.setenv("SUDO_GID", str(GID))
    os.umask(0o022)
    build_report([run], tmp_path / "report")
    made = tree(tmp_path / "report")
    assert any(p.suffix == ".png" for p in made) and any(p.name == "index.html" for p in made)
    for path in made:
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (UID, GID), path
        assert mode(path) == (0o755 if path.is_dir() else 0o644), path


@needs_root
def test_under_sudo_only_what_flushbench_made_changes_owner(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_UID", str(UID))
    monkeypatch.setenv("SUDO_GID", str(GID))
    existing = tmp_path / "mine.json"
    existing.write_text("old")
    write_records(pd.DataFrame({"case": ["a"]}), "json", existing)  # the user's own file
    assert existing.stat().st_uid == 0
    new = tmp_path / "new.csv"
    write_records(pd.DataFrame({"case": ["a"]}), "csv", new)
    assert (new.stat().st_uid, new.stat().st_gid) == (UID, GID)
    (tmp_path / "there").mkdir()
    files.make_dirs(tmp_path / "there" / "a" / "b")
    assert (tmp_path / "there").stat().st_uid == 0
    assert (tmp_path / "there" / "a").stat().st_uid == UID
    assert (tmp_path / "there" / "a" / "b").stat().st_uid == UID


@needs_root
def test_as_plain_root_files_stay_root_s(tmp_path: Path, no_sudo: None) -> None:
    write_json(tmp_path / "x.json", {})
    files.make_dirs(tmp_path / "d")
    assert (tmp_path / "x.json").stat().st_uid == 0 and (tmp_path / "d").stat().st_uid == 0
