"""The Python API: ``flushbench.load(path, latest=…)`` and ``load_run()`` on real run folders,
the public schema (unit-explicit names, ``<NA>`` for what was not set, nullable dtypes,
``run``/``machine``/``suite``/``created``), runs of older layouts, the column table in
docs/api.md, and ``show --all --format`` exporting the same columns."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest

import flushbench
from flushbench import cli, schema
from flushbench.case import Case
from flushbench.errors import ResultsError, UsageError
from flushbench.results import COLUMNS, TABLE, read_meta, read_table
from synthetic import make_meta, small_cases, write_run

ROOT = Path(__file__).resolve().parents[1]
# The oldest layout flushbench wrote (the committed results/epyc-2core-vm/20261121-161013-quick,
# schema 1): no twin, TLS, driver or host-speed columns.
OLD_COLUMNS = (
    "case,workload,strategy,nodelay,sndbuf,rcvbuf,notsent_lowat,msg_size,parts,reply,batch,"
    "buffer,transport,throughput_bps,msgs_per_s,rate_rsd,lat_mean_us,lat_p50_us,lat_p90_us,"
    "lat_p99_us,lat_p999_us,lat_max_us,lat_samples,send_calls_per_msg,segs_per_msg,retrans,"
    "rtt_us,cpu_s_per_gb_client,cpu_s_per_gb_peer,nodelay_eff,sndbuf_eff,rcvbuf_eff,"
    "notsent_lowat_eff,opt_mismatch,msgs,bytes,values,loops,duration_s,error").split(",")
CASES = [Case("stream", "sendall", 1024), Case("stream", "sendall", 1024, sndbuf=65536),
         Case("rr", "makefile", 64, nodelay=True, buffer=4096, reply=16),
         Case("stream", "sendall", 1024, tls=True, tls_version="1.2"),
         Case("stream", "sendall", 16384, conns=4, driver="threads")]


def _run(root: Path, machine: str, run_id: str, created: str | None,
         cases: list[Case] | None = None, suite: str = "synthetic") -> Path:
    meta = make_meta(machine, run_id, created=created)
    meta["suite"]["name"] = suite
    return write_run(root, machine, run_id, cases or CASES[:2], meta=meta)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Four runs on two machines, created in an order their paths do not tell."""
    root = tmp_path / "results"
    _run(root, "alpha", "r1", "2026-11-21T16:10:13+0000", suite="quick")
    _run(root, "alpha", "r2", "2026-12-02T06:04:46+0000", suite="tls")
    _run(root, "beta", "r0", "2026-12-02T15:49:06+01:00", suite="smoke")  # 14:49 UTC
    _run(root, "beta", "undated", None)
    return root


def test_load_reads_every_run_with_run_machine_suite_and_created(tree: Path) -> None:
    frame = flushbench.load(tree)
    assert list(frame.columns[:2]) == ["run", "machine"]
    assert list(frame.columns[-3:]) == ["suite", "created", "run_dir"]
    assert list(frame.drop_duplicates("run_dir")["run"]) == ["r1", "r2", "r0", "undated"]
    assert list(frame.drop_duplicates("run_dir")["machine"]) == ["alpha", "alpha", "beta", "beta"]
    assert str(frame["created"].dtype) == "datetime64[ns, UTC]"
    created = frame.drop_duplicates("run")[["run", "created", "suite"]].set_index("run")
    assert created.loc["r0", "created"] == pd.Timestamp("2026-12-02 14:49:06", tz="UTC")
    assert created.loc["r1", "created"] == pd.Timestamp("2026-11-21 16:10:13", tz="UTC")
    assert pd.isna(created.loc["undated", "created"])
    assert created.loc["r2", "suite"] == "tls" and created.loc["r1", "suite"] == "quick"
    assert len(frame) == 4 * 2


def test_latest_keeps_the_newest_runs_by_their_creation_time(tree: Path) -> None:
    newest = flushbench.load(tree, latest=True)
    assert set(newest["run"]) == {"r0"} and len(newest) == 2  # 14:49 UTC beats 06:04
    two = flushbench.load(tree, latest=2)
    assert list(two.drop_duplicates("run")["run"]) == ["r2", "r0"]  # in the order found
    assert set(flushbench.load(tree, latest=10)["run"]) == {"r1", "r2", "r0", "undated"}
    assert set(flushbench.load(tree / "alpha", latest=True)["run"]) == {"r2"}
    # several paths, one run named twice: read once
    both = flushbench.load([tree / "alpha", tree / "alpha" / "r2"], latest=False)
    assert list(both.drop_duplicates("run")["run"]) == ["r1", "r2"] and len(both) == 4


@pytest.mark.parametrize("latest", [0, -1, 1.5, "1", [1]])
def test_a_bad_latest_is_one_usage_error(tree: Path, latest: object) -> None:
    with pytest.raises(UsageError, match="latest must be True, False or a whole number") \
            as info:
        flushbench.load(tree, latest=latest)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_no_runs_is_one_results_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(ResultsError) as info:
            flushbench.load(path, latest=True)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_load_run_reads_exactly_one_run(tree: Path) -> None:
    run = tree / "alpha" / "r2"
    one = flushbench.load_run(run)
    pd.testing.assert_frame_equal(one, flushbench.load(run))
    with pytest.raises(ResultsError, match="is not a run directory") as info:
        flushbench.load_run(tree / "alpha")
    assert "\n" not in str(info.value)


def test_a_broken_run_in_a_folder_is_skipped_with_a_warning(tree: Path) -> None:
    bad = tree / "beta" / "r0"
    (bad / "meta.json").write_text("{ truncated")
    with pytest.warns(UserWarning, match=r"skipped .*r0: .*corrupt"):
        frame = flushbench.load(tree, latest=True)
    assert set(frame["run"]) == {"r2"}  # the next newest
    with pytest.raises(ResultsError, match="corrupt"):
        flushbench.load(bad)  # named itself: an error


def test_unset_options_are_na_and_every_column_has_its_dtype(tmp_path: Path) -> None:
    run = _run(tmp_path, "m", "r", "2026-12-02T06:04:46+0000", cases=CASES)
    loaded = flushbench.load(run)
    frame = loaded.set_index("case")
    auto, fixed, rr, tls, driver = (c.id for c in CASES)
    assert frame["sndbuf"].isna()[[auto, rr, tls, driver]].all()
    assert frame.loc[fixed, "sndbuf"] == 65536
    for col in ("rcvbuf", "notsent_lowat"):
        assert frame[col].isna().all(), col
    assert frame["buffer"].isna()[[auto, fixed, tls, driver]].all()
    assert frame.loc[rr, "buffer"] == 4096 and frame.loc[rr, "reply"] == 16
    assert frame["reply"].isna()[[auto, fixed, tls, driver]].all()
    assert frame.loc[tls, "tls_version"] == "1.2" and frame["tls_version"].isna().sum() == 4
    assert frame.loc[driver, "driver"] == "threads" and frame["driver"].isna().sum() == 4
    assert frame.loc[driver, "conns"] == 4 and (frame.drop(index=driver)["conns"] == 1).all()
    dtypes = {c.name: c.dtype for c in (*schema.PUBLIC, schema.RUN_DIR)}
    assert list(loaded.columns) == list(dtypes)
    for name, dtype in loaded.dtypes.items():
        assert str(dtype) == dtypes[str(name)], name
    assert str(frame["host_speed_mloops_s"].dtype) == "Float64"
    assert (frame["host_speed_mloops_s"] > 0).all()


def test_public_names_are_unit_explicit_views_of_the_stored_columns(tmp_path: Path) -> None:
    run = _run(tmp_path, "m", "r", "2026-12-02T06:04:46+0000", cases=CASES)
    stored, public = read_table(run, read_meta(run)), flushbench.load(run)
    assert [c.source for c in schema.PUBLIC if c.source] == COLUMNS  # each stored column once
    assert schema.RENAMED == {"throughput_bps": "throughput_bit_s", "retrans": "retrans_segs",
                              "host_speed": "host_speed_mloops_s",
                              "conn_min_bps": "conn_min_bit_s", "conn_max_bps": "conn_max_bit_s"}
    assert not set(schema.RENAMED) & set(public.columns)
    for old, new in schema.RENAMED.items():
        assert stored[old].astype("Float64").equals(public[new].astype("Float64")), new
    assert (public["throughput_bit_s"] == public["msgs_per_s"] * public["msg_size"] * 8) \
        .all()


def test_hostile_cells_cannot_break_the_public_dtypes() -> None:
    """Int64 columns come only from stored columns the reader checks to be whole numbers
    (0 to 2**53), so a 1.5 in a file is refused there, never a crash here; a created that is
    no ISO date is NaT."""
    ints = {c.source for c in schema.PUBLIC if c.dtype == "Int64"}
    assert ints <= set(schema.WHOLE_COLUMNS)
    for created in ("now", "2026-02-30", "99999-01-01", "2500-01-01", "", 17, None):
        assert schema.created_at({"created": created}) is None, created
    assert schema.created_at({"created": "2026-11-21 16:10:13"}) == \
        pd.Timestamp("2026-11-21 16:10:13", tz="UTC")  # no offset: UTC


def test_a_run_of_the_oldest_layout_is_migrated(tmp_path: Path) -> None:
    """Schema 1, the first table layout and an offset without a colon still load, with the
    defaults of what they lacked."""
    run = _run(tmp_path, "old", "r", "2026-11-21T16:10:13+0000", cases=small_cases())
    full = pd.read_csv(run / TABLE)
    full[OLD_COLUMNS].to_csv(run / TABLE, index=False)
    meta = json.loads((run / "meta.json").read_text())
    meta["schema_version"] = 1
    (run / "meta.json").write_text(json.dumps(meta))
    assert "twin" not in (run / TABLE).read_text().splitlines()[0]
    frame = flushbench.load(run)
    assert list(frame.columns) == [*schema.NAMES, "run_dir"] and len(frame) == len(full)
    assert not frame["twin"].any() and not frame["tls"].any()
    assert (frame["conns"] == 1).all()
    for col in ("driver", "tls_version", "tls_cipher", "host_speed_mloops_s", "jain_fairness",
                "conn_min_bit_s", "cpu_share_client"):
        assert frame[col].isna().all(), col
    assert str(frame["host_speed_mloops_s"].dtype) == "Float64"
    assert frame["throughput_bit_s"].tolist() == pytest.approx(full["throughput_bps"].tolist())
    assert frame["created"].iloc[0] == pd.Timestamp("2026-11-21 16:10:13", tz="UTC")


def test_the_committed_runs_load_in_the_public_schema() -> None:
    results = ROOT / "results"
    if not any(results.glob("*/*/meta.json")):
        pytest.skip("no committed runs in this checkout")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        every = flushbench.load(results)
        newest = flushbench.load(results, latest=True)
    assert (every.dtypes != object).all()  # noqa: E721 - host_speed was object once
    assert newest["run"].nunique() == 1 and not newest["case"].duplicated().any()
    assert newest["created"].iloc[0] == every["created"].max()
    assert (every[every["sndbuf"].notna()]["sndbuf"] > 0).all()


def test_docs_api_md_holds_the_column_table_of_the_schema() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- columns: begin .*?-->\n(.*?)<!-- columns: end -->", text, re.S)
    assert found, "docs/api.md lacks the column table's markers"
    assert found.group(1) == schema.markdown_table(), \
        "docs/api.md's column table is stale: python -m flushbench.schema prints it"
    assert schema.markdown_table() in (schema.__doc__ or "")
    assert "| `throughput_bit_s` | Float64 | bit/s |" in found.group(1)


def test_the_readme_loads_the_latest_run_and_points_to_the_api_doc() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'flushbench.load("results", latest=True)' in readme
    assert "docs/api.md" in readme


def test_dir_lists_the_public_names_and_they_resolve() -> None:
    names = dir(flushbench)
    for name in flushbench.__all__:
        assert name in names and getattr(flushbench, name) is not None, name
    assert {"load", "load_run", "Strategy", "AsyncStrategy", "ResultsError"} <= set(names)
    assert not {"Any", "TYPE_CHECKING", "annotations"} & set(names)
    assert flushbench.ResultsError is ResultsError and flushbench.UsageError is UsageError
    with pytest.raises(AttributeError):
        flushbench.no_such_name  # noqa: B018


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_show_all_exports_the_public_schema(tmp_path: Path, fmt: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(tmp_path, "m", "r", "2026-12-02T06:04:46+0000", cases=CASES)
    assert cli.main(["show", str(run), "--all", "--format", fmt]) == 0
    out = capsys.readouterr().out
    loaded = flushbench.load(run).drop(columns="run_dir")
    if fmt == "json":
        records = json.loads(out)
        assert list(records[0]) == list(loaded.columns)
        assert records[0]["created"] == "2026-12-02T06:04:46+00:00"
        assert records[0]["sndbuf"] is None and records[1]["sndbuf"] == 65536
        assert records[0]["tls_version"] is None and records[0]["msg_size"] == 1024
    else:
        lines = out.splitlines()
        assert lines[0] == ",".join(loaded.columns)
        assert lines[1].endswith(",synthetic,2026-12-02T06:04:46+00:00")
        frame = pd.read_csv(pd.io.common.StringIO(out))
        assert frame["throughput_bit_s"].tolist() == \
            pytest.approx(loaded["throughput_bit_s"].astype(float).tolist())
