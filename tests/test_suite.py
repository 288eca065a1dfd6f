"""Suite files: expansion to a sorted list of cases, stable ids, filters, clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flushbench.case import Case
from flushbench.errors import UsageError
from flushbench.suites import available_suites, expand, filter_cases, load_suite, parse_suite

GOOD = """
[suite]
name = "t"
rounds = 4
values = 2

[[matrix]]
workload = "stream"
strategy = ["sendall", "makefile"]
nodelay = [false, true]
msg_size = [1024, 64]

[[matrix]]
workload = "wwr"
strategy = "sendall"
msg_size = 64
"""


def test_matrix_expands_to_the_product_sorted() -> None:
    """Each [[matrix]] is a product of its lists; the union is sorted and de-duplicated."""
    suite = parse_suite(GOOD + GOOD.split("[[matrix]]", 1)[1].join(["[[matrix]]", ""]))
    ids = [c.id for c in suite.cases]
    assert len(ids) == 9 and len(set(ids)) == 9
    assert ids == [c.id for c in sorted(suite.cases, key=Case.sort_key)]
    assert ids[0] == "stream-makefile-s64-p2-nd0-sbauto-loopback"
    assert suite.rounds == 4 and suite.values == 2


def test_ids_are_stable_and_readable() -> None:
    """An id names every parameter that differs from the default, in a fixed order."""
    case = Case("stream", "sendall", msg_size=131072, sndbuf=1, nodelay=True)
    assert case.id == "stream-sendall-s128K-p2-nd1-sb1-loopback"
    case = Case("pipeline", "makefile", msg_size=64, batch=16, buffer=65536, rcvbuf=4096,
                notsent_lowat=16384, reply=8)
    assert case.id == "pipeline-makefile-s64-p2-nd0-sbauto-rb4K-lw16K-r8-k16-b64K-loopback"
    assert Case("file", "sendfile", msg_size=1 << 20).id == "file-sendfile-s1M-nd0-sbauto-loopback"


@given(st.integers(8, 1 << 24), st.integers(1, 4), st.booleans(), st.integers(0, 1 << 20))
def test_case_roundtrips_through_dict(size: int, parts: int, nodelay: bool, sndbuf: int) -> None:
    """A case survives to_dict/from_dict (how it reaches a worker) with the same id."""
    case = Case("rr", "sendmsg", msg_size=size, parts=parts, nodelay=nodelay, sndbuf=sndbuf)
    again = Case.from_dict(case.to_dict())
    assert again == case and again.id == case.id


def test_reply_defaults_follow_the_workload() -> None:
    """rr echoes the request size, wwr and pipeline answer one byte, stream nothing."""
    assert Case("rr", "sendall", msg_size=100).reply_size == 100
    assert Case("rr", "sendall", msg_size=100, reply=7).reply_size == 7
    assert Case("wwr", "sendall", msg_size=64).reply_size == 1
    assert Case("stream", "sendall", msg_size=64).reply_size == 0


@pytest.mark.parametrize("text, message", [
    ("[[matrix]]\nworkload='stream'\nstrategy='sendall'\nmsg_size=64\nnodelayy=true",
     "unknown key 'nodelayy'"),
    ("[[matrix]]\nworkload='flood'\nstrategy='sendall'\nmsg_size=64", "unknown workload 'flood'"),
    ("[[matrix]]\nworkload='stream'\nstrategy='sendall'", "needs 'msg_size'"),
    ("[[matrix]]\nworkload='stream'\nstrategy='sendall'\nmsg_size=2", "too small for 2 parts"),
    ("[[matrix]]\nworkload='wwr'\nstrategy='sendall'\nmsg_size=64\nparts=1", "parts must be >= 2"),
    ("[[matrix]]\nworkload='stream'\nstrategy='sendall'\nmsg_size=[]", "is an empty list"),
    ("[[matrix]]\nworkload='stream'\nstrategy='sendall'\nmsg_size='big'", "msg_size must be"),
    ("[suite]\nrounds=0\n[[matrix]]\nworkload='rr'\nstrategy='send'\nmsg_size=64",
     "rounds must be >= 1"),
    ("[suite]\nprocesses=2\n[[matrix]]\nworkload='rr'\nstrategy='send'\nmsg_size=64",
     "processes is gone: every case is now measured once per round"),
    ("[suite]\nspeed=1\n[[matrix]]\nworkload='rr'\nstrategy='send'\nmsg_size=64",
     "unknown key 'speed'"),
    ("[suite]\nname='x'", "needs at least one [[matrix]]"),
    ("[suite]\ncc='BBR!'\n[[matrix]]\nworkload='rr'\nstrategy='send'\nmsg_size=64",
     "[suite] cc must name a TCP congestion control like \"cubic\""),
    ("[suite]\ncc=1\n[[matrix]]\nworkload='rr'\nstrategy='send'\nmsg_size=64",
     "[suite] cc has the wrong type"),
    ("[[matrix]]\nworkload='rr'\nstrategy='send'\nmsg_size=64\nbatch=4",
     "batch is for the pipeline workload"),
    ("[[matrix]\nbroken", "is not valid TOML"),
])
def test_bad_suites_fail_with_one_line(text: str, message: str) -> None:
    """Every malformed suite gives a one-line error naming the file and the field."""
    with pytest.raises(UsageError) as info:
        parse_suite(text, where="bad.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("bad.toml")
    assert "\n" not in str(info.value)


def test_filters_take_globs_substrings_and_alternatives() -> None:
    """--filter keeps ids matching a glob or containing a substring; commas mean 'or'."""
    cases = expand([{"workload": ["stream", "rr"], "strategy": ["sendall", "send"],
                     "msg_size": 64}])
    assert len(filter_cases(cases, ["rr-*"])) == 2
    assert len(filter_cases(cases, ["sendall"])) == 2
    assert len(filter_cases(cases, ["rr-send-*,stream-sendall"])) == 2
    assert filter_cases(cases, None) == cases


def test_shipped_suites_load_and_meet_their_brief() -> None:
    """smoke, quick and full load; smoke has the trap both ways, one stream and one rr."""
    suites = available_suites()
    assert {"smoke", "quick", "full"} <= set(suites)
    smoke = load_suite("smoke")
    wwr = [c for c in smoke.cases if c.workload == "wwr"]
    assert {c.nodelay for c in wwr} == {False, True}
    assert any(c.workload == "stream" for c in smoke.cases)
    assert any(c.workload == "rr" for c in smoke.cases)
    quick = load_suite("quick")
    assert {c.sndbuf for c in quick.cases} >= {0, 1, 65536}
    sizes = {c.msg_size for c in quick.cases if c.workload == "stream"}
    assert min(sizes) == 64 and max(sizes) == 1 << 20
    assert quick.rounds >= 10  # paired verdicts need rounds
    # both sides of TCP_NODELAY on a small stream
    small = [c for c in quick.cases if c.workload == "stream" and c.msg_size in (64, 1024)]
    assert {c.nodelay for c in small} == {False, True}
    # the quick suite's verdicts do not hang on the host's congestion control (BBR makes
    # each loopback connection its own speed): CUBIC on every connection in the suites that
    # publish verdicts; smoke (and wan, over an emulated link) keep the host's
    assert quick.cc == "cubic" and smoke.cc == ""
    assert {load_suite(n).cc for n in ("tls", "full", "concurrency")} == {"cubic"}
    assert load_suite("wan").cc == ""
    assert parse_suite("[suite]\ncc = 'reno'\n[[matrix]]\nworkload = 'rr'\n"
                       "strategy = 'send'\nmsg_size = 64").cc == "reno"
    full = load_suite("full")
    assert len(full.cases) > len(quick.cases)


def test_unknown_suite_names_the_choices() -> None:
    """An unknown suite name lists the suites there are."""
    with pytest.raises(UsageError, match="unknown suite 'nope'.*quick"):
        load_suite("nope")
    with pytest.raises(UsageError, match="does not exist"):
        load_suite("/no/such/file.toml")
