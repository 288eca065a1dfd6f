"""Stored runs are untrusted input: a fuzz target over a real run's files (issue 12).

A small real run — three cells of a committed quick run, with their table rows, trials,
verdicts, samples and pyperf.json — is cut out of ``results/`` once per session. Each example
copies it, damages one file (meta.json, table.csv, trials.csv, verdicts.csv, a samples file or
pyperf.json: structure-aware edits with hostile text and numbers, or plain byte damage) and
runs the real commands in-process through ``flushbench.cli.main``. Every outcome is exit 0, or
exit 2 with exactly one line that names the damaged file; never a traceback, and never a
control character on the terminal. The report target also reads README.md with a Markdown
parser and index.html with an HTML parser: no raw HTML, no link but the charts.

Examples: FLUSHBENCH_FUZZ_EXAMPLES for ``show`` and ``compare`` (default 40, a few seconds
each way), FLUSHBENCH_FUZZ_REPORT_EXAMPLES for ``report`` and ``compare --out`` (default 8;
each draws every chart). ``nox -s fuzz`` runs 10,000 and 300 (noxfile.FUZZ_EXAMPLES), each
target in FLUSHBENCH_FUZZ_SHARDS shards, one per CPU under pytest-xdist.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from flushbench import cli

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "results" / "epyc-2core-vm" / "20261202-060446-quick",
           ROOT / "results" / "epyc-2core-vm" / "20261202-060729-quick"]
KEEP = ["stream-sendall-s128K-p2-nd0-sbauto-loopback",
        "stream-sendall-s128K-p2-nd0-sbauto-loopback-twin",
        "stream-sendall-s128K-p2-nd0-sb1-loopback", "stream-makefile-s128K-p2-nd0-sbauto-loopback",
        "stream-makefile-s128K-p2-nd0-sb1-loopback", "wwr-sendall-s64-p2-nd0-sbauto-loopback",
        "wwr-sendall-s64-p2-nd0-sbauto-loopback-twin", "wwr-sendall-s64-p2-nd1-sbauto-loopback",
        "wwr-makefile-s64-p2-nd0-sbauto-loopback", "wwr-makefile-s64-p2-nd1-sbauto-loopback",
        "file-sendall-s1M-nd0-sbauto-loopback", "file-sendall-s1M-nd0-sbauto-loopback-twin",
        "file-sendfile-s1M-nd0-sbauto-loopback"]
EXAMPLES = int(os.environ.get("FLUSHBENCH_FUZZ_EXAMPLES", "40"))
REPORT_EXAMPLES = int(os.environ.get("FLUSHBENCH_FUZZ_REPORT_EXAMPLES", "8"))
# Each target runs as SHARDS tests of EXAMPLES / SHARDS examples (rounded up), so that
# pytest-xdist can spread them over the CPUs (nox -s fuzz: one shard per CPU).
SHARDS = max(1, int(os.environ.get("FLUSHBENCH_FUZZ_SHARDS", "1")))
FILES = ["meta.json", "table.csv", "trials.csv", "verdicts.csv", "samples", "pyperf.json"]
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # all but "\n"


def fuzz(examples: int) -> Callable[[Any], Any]:
    return settings(max_examples=examples, deadline=None, derandomize=False,
                    suppress_health_check=list(HealthCheck))


# -- the small real run -------------------------------------------------------------------

def cut(source: Path, dest: Path) -> Path:
    """``source``'s files restricted to the cases in KEEP (and the comparisons among them)."""
    (dest / "samples").mkdir(parents=True)
    for name in ("table.csv", "trials.csv"):
        frame = pd.read_csv(source / name, dtype=str, keep_default_na=False)
        frame[frame["case"].isin(KEEP)].to_csv(dest / name, index=False)
    verdicts = pd.read_csv(source / "verdicts.csv", dtype=str, keep_default_na=False)
    verdicts[verdicts["case"].isin(KEEP) & verdicts["baseline"].isin(KEEP)].to_csv(
        dest / "verdicts.csv", index=False)
    meta = json.loads((source / "meta.json").read_text(encoding="utf-8"))
    meta["schedule"]["comparisons"] = [c for c in meta["schedule"]["comparisons"]
                                       if c[0] in KEEP and c[1] in KEEP]
    (dest / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    suite = json.loads((source / "pyperf.json").read_text(encoding="utf-8"))
    suite["benchmarks"] = [b for b in suite["benchmarks"]
                           if b.get("metadata", {}).get("name") in KEEP]
    (dest / "pyperf.json").write_text(json.dumps(suite), encoding="utf-8")
    for case in KEEP:
        shutil.copy(source / "samples" / f"{case}.npz", dest / "samples")
    return dest


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The run to damage and the reference it is compared with, cut from committed runs."""
    root = tmp_path_factory.mktemp("stored")
    return (cut(SOURCES[0], root / "m" / "fuzzed"), cut(SOURCES[1], root / "m" / "reference"))


def test_the_pristine_run_is_shown_compared_and_reported(pristine: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    """The undamaged cut-out is a good run: every command exits 0 and says something."""
    run, ref = pristine
    for argv in (["show", str(run)], ["compare", str(ref), str(run)],
                 ["report", str(run), "--out", str(tmp_path / "r")]):
        code, out, err = invoke(argv)
        assert code == 0 and "Traceback" not in err, (argv, err)
        assert "sendfile" in out + err or argv[0] == "report", argv
    md = (tmp_path / "r" / "README.md").read_text(encoding="utf-8")
    assert "sendfile" in md and len(list((tmp_path / "r" / "charts").glob("*.png"))) >= 8


# -- running the commands -----------------------------------------------------------------

def invoke(argv: list[str]) -> tuple[int, str, str]:
    """``flushbench ARGV`` in this process: (exit code, stdout, stderr). An exception that
    escapes main() is what a user would see as a traceback: it fails the example. Warnings
    go to stderr as a user would see them (once per place, as Python's default does)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        code = cli.main(argv)
    for warning in caught:
        event(f"warning: {warning.category.__name__}: {str(warning.message)[:50]}")
        err.write(warnings.formatwarning(warning.message, warning.category, warning.filename,
                                         warning.lineno, ""))
    return code, out.getvalue(), err.getvalue()


def check(argv: list[str], damaged: str, may_fail: bool = True) -> int:
    code, out, err = invoke(argv)
    assert "Traceback" not in out + err, err
    assert not CONTROL.search(out + err), repr(CONTROL.search(out + err))
    if code == 2 and may_fail:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("flushbench: error: "), err
        assert damaged in lines[0], (damaged, lines[0])
        event(f"{argv[0]}: error")
    else:
        assert code == 0, (code, err)
        event(f"{argv[0]}: ok")
    return code


# -- damage -------------------------------------------------------------------------------

HOSTILE = ["[/x]", "[link=https://evil.example]click[/link]", "[bold red]x", "\x1b[2J\x1b[H",
           "\x1b]0;pwned\x07", "\x1b]8;;https://evil.example\x1b\\x\x1b]8;;\x1b\\", "a\rb",
           "a\nb\n# heading\n", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
           "[x](javascript:alert(1))", "`", "``x`", "**", "a|b", "$x$", "=1+1", "@SUM(A1)",
           "../../x", "/etc/passwd", ".", "..", "", " ", "nan", "inf", "-inf", "-1", "0",
           "1e308", "1e400", "9" * 400, "\ud800", "\u202e", "\x00", "\x85", "x" * 300, "é",
           "&amp;", "True", "twin", "A/A", "stream", "better", "throughput_bps"]
TEXT = st.one_of(st.sampled_from(HOSTILE),
                 st.text(st.characters(exclude_categories=()), max_size=12),
                 st.integers().map(str),
                 st.floats(allow_nan=True, allow_infinity=True).map(repr))
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8)
DTYPES = ["<i8", "<f8", "<f4", "|u1", "|b1", "<c16", "<U3", "O", "<M8[s]", ">i4", "<f2"]


def damage_bytes(path: Path, data: st.DataObject) -> str:
    """Plain damage to any file: truncated, a byte flipped, bytes inserted or swapped for
    others, emptied, deleted, or a directory in its place."""
    kind = data.draw(st.sampled_from(["truncate", "flip", "insert", "replace", "empty",
                                      "delete", "directory"]))
    blob = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(blob[:data.draw(st.integers(0, max(len(blob) - 1, 0)))])
    elif kind == "flip" and blob:
        at = data.draw(st.integers(0, len(blob) - 1))
        path.write_bytes(blob[:at] + bytes([blob[at] ^ data.draw(st.integers(1, 255))])
                         + blob[at + 1:])
    elif kind == "insert":
        at = data.draw(st.integers(0, len(blob)))
        path.write_bytes(blob[:at] + data.draw(st.binary(min_size=1, max_size=16)) + blob[at:])
    elif kind == "replace":
        path.write_bytes(data.draw(st.binary(max_size=64)))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "delete":
        path.unlink()
    else:
        path.unlink()
        path.mkdir()
    return kind


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def damage_json(path: Path, data: st.DataObject) -> str:
    """A value anywhere in the document replaced, a key dropped or added, or nesting deep
    enough for a RecursionError."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    kind = data.draw(st.sampled_from(["set", "drop", "add", "deep"]))
    where = data.draw(st.sampled_from(_paths(doc)[1:] or [()]))
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    if kind == "deep":
        depth = data.draw(st.sampled_from([50, 900, 5000, 100_000]))
        text = json.dumps(doc)
        path.write_text(text[:-1] + f', "deep": {"[" * depth}{"]" * depth}}}', encoding="utf-8")
        return kind
    if kind == "set" and where:
        parent[where[-1]] = data.draw(JSON)
    elif kind == "drop" and where:
        del parent[where[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(TEXT)] = data.draw(JSON)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return kind


def damage_csv(path: Path, data: st.DataObject) -> str:
    """A cell (the header included) replaced by hostile text or a number, a column or row
    dropped, a row repeated, or a field too many; written back as valid CSV."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    kind = data.draw(st.sampled_from(["cell", "cell", "cell", "drop_column", "drop_row",
                                      "repeat_row", "extra_field"]))
    i = data.draw(st.integers(0, len(rows) - 1))
    j = data.draw(st.integers(0, len(rows[0]) - 1))
    if kind == "cell":
        rows[i][j] = data.draw(TEXT)
    elif kind == "drop_column":
        rows = [r[:j] + r[j + 1:] for r in rows]
    elif kind == "drop_row" and i:
        del rows[i]
    elif kind == "repeat_row":
        rows.insert(i + 1, list(rows[i]))
    else:
        rows[i].append(data.draw(TEXT))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8", "surrogatepass"))
    return kind


def _array(data: st.DataObject) -> np.ndarray:
    dtype = np.dtype(data.draw(st.sampled_from(DTYPES)))
    shape = data.draw(st.sampled_from([(), (0,), (1,), (5,), (3, 2), (64,)]))
    count = int(np.prod(shape))
    if dtype.kind in "OU":
        return np.array([data.draw(TEXT) for _ in range(count)], dtype=dtype).reshape(shape)
    raw = data.draw(st.binary(min_size=count * dtype.itemsize,
                              max_size=count * dtype.itemsize))
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def damage_samples(path: Path, data: st.DataObject, outside: Path) -> str:
    """An array swapped for another dtype, shape or values (pickles and strings among them),
    an array dropped, a member added, a forged header, a symbolic link out of samples/, or
    plain byte damage."""
    kind = data.draw(st.sampled_from(["array", "drop", "member", "forged", "symlink", "bytes"]))
    if kind == "bytes":
        return damage_bytes(path, data)
    if kind == "symlink":
        path.unlink()
        path.symlink_to(outside)
        return kind
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    name = data.draw(st.sampled_from(sorted(arrays)))
    if kind == "array":
        arrays[name] = _array(data)
    elif kind == "drop":
        del arrays[name]
    if kind == "forged":
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {
            "descr": "<i8", "fortran_order": False,
            "shape": (data.draw(st.sampled_from([1 << 40, 1 << 24, 10])),)})
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"{name}.npy", header.getvalue())
        return kind
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub, as in results.py
    if kind == "member":
        with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as zf:
            warnings.simplefilter("ignore")  # "Duplicate name": wanted here
            zf.writestr(data.draw(st.sampled_from(["x.npy", "../x.npy", "a/b.npy", "x.txt",
                                                   "lat_ns.npy"])), data.draw(st.binary()))
    return kind


def damage(run: Path, data: st.DataObject, outside: Path) -> tuple[Path, str]:
    """Damage one file of ``run``; returns it and what was done."""
    which = data.draw(st.sampled_from(FILES))
    if which == "samples":
        path = run / "samples" / f"{data.draw(st.sampled_from(KEEP))}.npz"
        kind = damage_samples(path, data, outside)
    else:
        path = run / which
        structured = data.draw(st.integers(0, 3)) > 0
        if not structured:
            kind = damage_bytes(path, data)
        elif which.endswith(".json"):
            kind = damage_json(path, data)
        else:
            kind = damage_csv(path, data)
    event(f"{which}: {kind}")
    return path, kind


@contextlib.contextmanager
def damaged_copy(pristine: tuple[Path, Path], data: st.DataObject):  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        run = Path(tmp) / "m" / "fuzzed"
        shutil.copytree(pristine[0], run)
        outside = pristine[1] / "samples" / f"{KEEP[0]}.npz"
        path, _ = damage(run, data, outside)
        yield run, path, Path(tmp)


def _named(path: Path) -> str:
    """What an error about ``path`` must name: the file, or the samples folder's file."""
    return path.name


# -- the targets --------------------------------------------------------------------------

@pytest.mark.parametrize("shard", range(SHARDS))
@fuzz(-(-EXAMPLES // SHARDS))
@given(data=st.data())
def test_stored_run_fuzz_show_and_compare(pristine: tuple[Path, Path], shard: int,
                                          data: st.DataObject) -> None:
    """show --all and compare (terminal) on a damaged run: exit 0, or exit 2 with one
    line naming the damaged file; no traceback and no control character on the terminal."""
    with damaged_copy(pristine, data) as (run, path, _):
        may_fail = path.name != "pyperf.json"  # nothing reads pyperf.json: never an error
        for argv in (["show", "--all", str(run)], ["compare", str(pristine[1]), str(run)]):
            check(argv, _named(path), may_fail)


class Tags(HTMLParser):
    """Every tag and attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "p",
             "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "details", "summary",
             "figure", "figcaption", "a", "img", "div", "code", "strong"}


def check_documents(out: Path) -> None:
    """README.md: no raw HTML, links only to charts/; index.html: only the page's own tags,
    links and images only to charts/; neither holds a control character."""
    md = (out / "README.md").read_text(encoding="utf-8")
    page = (out / "index.html").read_text(encoding="utf-8")
    assert not CONTROL.search(md) and not CONTROL.search(page)
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    for token in tokens:
        assert token.type != "html_block", token.content
        for child in token.children or []:
            assert child.type != "html_inline", child.content
            if child.type in ("link_open", "image"):
                target = str(child.attrs.get("href") or child.attrs.get("src"))
                assert target.startswith("charts/"), target
    tags = Tags()
    tags.feed(page)
    for tag, attrs in tags.tags:
        assert tag in PAGE_TAGS, tag
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            if name in ("href", "src"):
                assert str(value).startswith("charts/"), (tag, value)


@pytest.mark.parametrize("shard", range(SHARDS))
@fuzz(-(-REPORT_EXAMPLES // SHARDS))
@given(data=st.data())
def test_stored_run_fuzz_report(pristine: tuple[Path, Path], shard: int,
                                data: st.DataObject) -> None:
    """report and compare --out on a damaged run: as above, and the documents written hold
    no raw HTML, no foreign link and no control character."""
    with damaged_copy(pristine, data) as (run, path, tmp):
        may_fail = path.name != "pyperf.json"
        for argv in (["report", str(run), "--out", str(tmp / "report")],
                     ["compare", str(pristine[1]), str(run), "--out", str(tmp / "cmp")]):
            if check(argv, _named(path), may_fail) == 0:
                check_documents(Path(argv[-1]))
