"""Run files from another machine are hostile until checked: sizes before allocation."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from flushbench import cli
from flushbench.case import Case
from flushbench.errors import ResultsError
from flushbench.results import sample_path
from flushbench.untrusted import check_size, load_npz
from synthetic import write_run


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
