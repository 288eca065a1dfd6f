"""What a user gets from ``pip install flushbench``: the suites and link profiles ship as
package data, and the version is written once (pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import flushbench
from flushbench.suites import available_suites, load_suite

ROOT = Path(__file__).resolve().parents[1]


def test_version_comes_from_the_package_metadata() -> None:
    """``flushbench.__version__`` is the installed distribution's version."""
    assert flushbench.__version__ == metadata.version("flushbench")
    assert "0.1.0" not in (ROOT / "src/flushbench/__init__.py").read_text()  # written once


def test_named_suites_are_found_outside_a_checkout(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The named suites load from any working directory (they are package data)."""
    monkeypatch.chdir(tmp_path)
    assert {"smoke", "quick", "full", "wan"} <= set(available_suites())
    assert len(load_suite("smoke").cases) > 0


@pytest.mark.slow
def test_the_wheel_carries_suites_profiles_and_types(tmp_path: Path) -> None:
    """A built wheel holds every suite, the link profiles and py.typed (no source checkout)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, timeout=300,
                   capture_output=True)
    wheel = next(tmp_path.glob("flushbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for suite in ("smoke", "quick", "full", "wan"):
        assert f"flushbench/suites/{suite}.toml" in names
    assert "flushbench/netlab/profiles.toml" in names
    assert "flushbench/py.typed" in names
    modules = {n for n in names if n.endswith(".py")}
    sources = {str(f.relative_to(ROOT / "src")) for f in (ROOT / "src/flushbench").rglob("*.py")}
    assert modules == sources  # every module, and nothing stale from an old build/ directory
    assert not any(n.startswith("tests/") for n in names)
