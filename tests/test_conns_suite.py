"""Driver cases (many connections) in suites: ids, checks at load, cells and verdict axes."""

from __future__ import annotations

from pathlib import Path

import pytest

from flushbench.analysis.cells import cells
from flushbench.case import DRIVERS, MAX_CONNS, Case
from flushbench.errors import UsageError
from flushbench.measure import drivers
from flushbench.run.options import RunOptions, prepare_suite
from flushbench.suites import load_suite, parse_suite

HEAD = "[[matrix]]\nworkload='stream'\nstrategy='sendall'\nmsg_size=16384\n"


def test_ids_gain_a_suffix_only_with_a_driver() -> None:
    assert Case("stream", "sendall", 16384).id == "stream-sendall-s16K-p2-nd0-sbauto-loopback"
    assert Case("stream", "sendall", 16384, conns=256, driver="uvloop").id == \
        "stream-sendall-s16K-p2-nd0-sbauto-c256-uvloop-loopback"
    assert Case("rr", "sendall", 64, conns=1, driver="threads").id.endswith(
        "-c1-threads-loopback")


@pytest.mark.parametrize("extra, message", [
    ("conns=0\ndriver='threads'", f"conns must be 1..{MAX_CONNS} connections, got 0"),
    (f"conns={MAX_CONNS + 1}\ndriver='trio'", f"conns must be 1..{MAX_CONNS}"),
    ("conns=8", "conns = 8 needs a driver to run them"),
    ("driver='gevent'", "unknown driver 'gevent'; expected one of threads"),
    ("driver='threads'\ntls=true", "TLS cases run one connection"),
    ("driver='threads'\ntransport='unix'", "driver cases run over TCP"),
])
def test_bad_driver_cases_fail_with_one_line(extra: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_suite(HEAD + extra, where="c.toml")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_file_workload_has_no_driver() -> None:
    with pytest.raises(UsageError, match="runs the stream and rr workloads, not file"):
        Case("file", "sendall", 1 << 20, driver="threads")


def _suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_a_driver_that_cannot_drive_the_strategy_is_an_error_at_load(tmp_path: Path) -> None:
    path = _suite(tmp_path, HEAD.replace("'sendall'", "'makefile'") + "driver='selectors'")
    with pytest.raises(UsageError) as info:
        prepare_suite(RunOptions(suite=str(path)))
    text = str(info.value)
    assert "driver selectors writes with sendall, coalesce only" in text
    assert "use driver threads" in text and "\n" not in text
    path = _suite(tmp_path, HEAD.replace("'sendall'", "'asyncio'") + "driver='threads'")
    with pytest.raises(UsageError, match="use driver asyncio or uvloop"):
        prepare_suite(RunOptions(suite=str(path)))


def test_a_driver_not_installed_is_skipped_with_the_hint(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Where trio is missing (here: looked up under a name no package has), its cases are
    skipped with pip's hint and the rest run."""
    monkeypatch.setitem(drivers.OPTIONAL, "trio", "flushbench_no_such_module")
    path = _suite(tmp_path, HEAD + "conns=4\ndriver=['threads', 'trio']")
    suite = prepare_suite(RunOptions(suite=str(path)))
    assert [c.driver for c in suite.cases] == ["threads"]
    (case_id, why), = suite.skipped
    assert case_id.endswith("-c4-trio-loopback")
    assert "flushbench_no_such_module is not installed (pip install 'flushbench[loops]')" in why


def test_the_concurrency_suite_compares_each_driver_with_threads() -> None:
    suite = load_suite("concurrency")
    assert {c.conns for c in suite.cases} == {1, 16, 256, 1000}
    assert {c.driver for c in suite.cases} == set(DRIVERS)
    assert {c.workload for c in suite.cases} == {"stream", "rr"}
    groups = cells(suite.cases)
    assert len(groups) == 8  # 2 workloads x 4 connection counts
    for cell in groups:
        assert len({c.conns for c in cell.cases}) == 1
        driver_axis = [c for c in cell.comparisons if c.axis == "driver"]
        assert len(driver_axis) == len(DRIVERS) - 1
        assert all(c.baseline.endswith("-threads-loopback") for c in driver_axis)
        twin, = [c for c in cell.cases if c.twin]
        assert twin.driver == "threads"
