"""Selecting cases: every selector must hold (AND), commas are alternatives, key=value reads
the case's fields from its id, and a selector that can never match is a one-line error."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flushbench import cli
from flushbench.case import Case
from flushbench.errors import UsageError
from flushbench.suites import filter_cases, load_suite
from flushbench.suites.selection import check, id_fields, matches

QUICK = load_suite("quick").cases


def test_repeated_filters_and_together() -> None:
    """--filter wwr --filter nd1 is the wwr cases with TCP_NODELAY on, not their union."""
    both = filter_cases(QUICK, ["wwr", "nd1"])
    assert both and all(c.workload == "wwr" and c.nodelay for c in both)
    assert len(both) < len(filter_cases(QUICK, ["wwr"]))


def test_commas_inside_one_selector_are_alternatives() -> None:
    picked = filter_cases(QUICK, ["strategy=sendall,makefile", "workload=rr"])
    assert {c.strategy for c in picked} == {"sendall", "makefile"}
    assert {c.workload for c in picked} == {"rr"}


@pytest.mark.parametrize(("pattern", "holds"), [
    ("workload=stream", lambda c: c.workload == "stream"),
    ("size=16K", lambda c: c.msg_size == 16384),
    ("size=64", lambda c: c.msg_size == 64),
    ("nodelay=on", lambda c: c.nodelay),
    ("nodelay=off", lambda c: not c.nodelay),
    ("sndbuf=auto", lambda c: c.sndbuf == 0),
    ("sndbuf=64K", lambda c: c.sndbuf == 65536),
    ("tls=on", lambda c: c.tls),
    ("transport=unix", lambda c: c.transport == "unix"),
    ("strategy=cork", lambda c: c.strategy == "cork"),
    ("parts=1", lambda c: c.parts == 1),
])
def test_key_value_selects_exactly_the_cases_with_that_field(pattern: str, holds: object) -> None:
    picked = set(filter_cases(QUICK, [pattern]))
    assert picked, f"{pattern} selects nothing in the quick suite"
    assert picked == {c for c in QUICK if holds(c)}  # type: ignore[operator]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Any valid case (the combinations Case refuses are skipped)."""
    fields = draw(st.fixed_dictionaries({
        "workload": st.sampled_from(["stream", "rr", "wwr", "pipeline"]),
        "strategy": st.sampled_from(["sendall", "makefile", "msg_more", "sendmsg"]),
        "msg_size": st.sampled_from([64, 1000, 16384, 1 << 20]), "parts": st.integers(1, 4),
        "nodelay": st.booleans(), "sndbuf": st.sampled_from([0, 1, 4608, 65536]),
        "rcvbuf": st.sampled_from([0, 65536]), "notsent_lowat": st.sampled_from([0, 16384]),
        "buffer": st.sampled_from([0, 8192]), "twin": st.booleans(),
        "transport": st.sampled_from(["loopback", "unix", "emulated", "remote"])}))
    if fields["workload"] == "pipeline":
        fields["batch"] = 16
    try:
        return Case(**fields)
    except UsageError:
        assume(False)
        raise


@given(cases())
def test_fields_read_back_from_any_id(case: Case) -> None:
    """What the id says is what the case holds, for every field a selector can name."""
    fields = id_fields(case.id)
    for name in ("workload", "strategy", "msg_size", "nodelay", "sndbuf", "rcvbuf",
                 "notsent_lowat", "buffer", "transport", "twin", "batch"):
        assert fields[name] == getattr(case, name), name
    assert matches(case.id, [f"size={case.msg_size}", f"sndbuf={case.sndbuf or 'auto'}",
                             f"nodelay={'on' if case.nodelay else 'off'}"])


def test_driver_and_connections_are_read_from_the_id() -> None:
    case = Case("stream", "sendall", 16384, conns=16, driver="trio")
    assert matches(case.id, ["driver=trio", "conns=16"])
    assert not matches(case.id, ["conns=1"])
    twin = dataclasses.replace(case, twin=True)
    assert matches(twin.id, ["twin=yes"]) and not matches(case.id, ["twin=yes"])


@pytest.mark.parametrize(("pattern", "said"), [
    ("nodlay=on", "unknown filter key 'nodlay' (did you mean 'nodelay'?)"),
    ("size=6x", "filter size=6x: '6x' is not a byte count"),
    ("nodelay=maybe", "filter nodelay=maybe: 'maybe' is not on or off"),
])
def test_a_selector_that_cannot_match_is_a_usage_error(pattern: str, said: str) -> None:
    with pytest.raises(UsageError, match=re.escape(said)):
        check([pattern])


def test_named_selectors_fold_into_the_filters(capsys: pytest.CaptureFixture[str]) -> None:
    """--workload/--strategy/--size/--nodelay/--sndbuf narrow the dry run together."""
    assert cli.main(["run", "--dry-run", "--workload", "wwr", "--strategy", "sendall",
                     "--size", "64", "--nodelay", "off", "--sndbuf", "auto",
                     "--format", "json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    ids = [r["case"] for r in rows]
    assert ids and all(i.startswith("wwr-sendall-s64-p2-nd0-sbauto") for i in ids)
    assert cli.main(["run", "--dry-run", "--size", "big"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'big' is not a byte count" in err


def test_a_filter_that_starts_with_a_dash_is_a_pattern(capsys: pytest.CaptureFixture[str],
                                                        ) -> None:
    """``-f -c16-`` selects by a piece of the id, as ``-f=-c16-`` would; ``-f -q`` is still
    a forgotten pattern (argparse's usage error)."""
    import json

    assert cli.main(["run", "--suite", "concurrency", "--dry-run", "-f", "-c16-",
                     "--filter", "-selectors", "--format", "json"]) == 0
    ids = [r["case"] for r in json.loads(capsys.readouterr().out)]
    assert ids and all("-c16-selectors" in i for i in ids)
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--suite", "concurrency", "--dry-run", "-f", "-q"])
    assert exc.value.code == 2
    assert "expected one argument" in capsys.readouterr().err
