"""Sessions: check (default: lint, typing, tests), bench, report, compare, perf, fuzz.

    pip install nox && nox -s bench     # quick suite on loopback: a run and its report
    pip install nox && nox -s check     # lint, typing and tests (what CI runs)
"""

from __future__ import annotations

import os
import shutil
import subprocess

import nox

nox.options.sessions = ["check"]
nox.options.reuse_existing_virtualenvs = True

# Tools some tests use, by the binary they need and the Debian package that has it.
# Installed only when running as root with apt-get (CI); elsewhere those tests skip.
SYSTEM_TOOLS = {"ip": "iproute2", "tc": "iproute2", "chromium": "chromium",
                "iperf3": "iperf3", "sockperf": "sockperf"}


def _ensure_system_tools(session: nox.Session) -> None:
    missing = sorted({pkg for tool, pkg in SYSTEM_TOOLS.items() if not shutil.which(tool)})
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        session.log(f"not root or no apt-get: tests needing {', '.join(missing)} will skip")
        return
    session.log(f"installing {', '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                   check=True, env=env)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite; fails on zero collected tests (pytest exit 5)."""
    _ensure_system_tools(session)
    session.install("-e", ".[test,loops]")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def bench(session: nox.Session) -> None:
    """Run the quick suite on loopback (posargs go to `flushbench run`) and report it."""
    session.install("-e", ".[loops]")
    session.run("flushbench", "run", "--report", *session.posargs)


# The runs the published report shows, the reference first: two back-to-back quick runs in
# interleaved rounds, the TLS (and Unix socket) run, then the emulated-WAN run and the harness
# calibration (older runs stay committed and load, but are not part of the report).
PUBLISHED = ["results/epyc-2core-vm/20261204-142250-quick",
             "results/epyc-2core-vm/20261204-142519-quick",
             "results/epyc-2core-vm/20261204-143457-tls",
             "results/epyc-2core-vm/20261204-144552-concurrency",
             "results/epyc-2core-vm/20261121-161435-wan",
             "results/epyc-2core-vm/20261202-154304-calibration"]


@nox.session
def report(session: nox.Session) -> None:
    """Rebuild results/report from the published runs (posargs: RUN... [--out DIR]), and
    with chromium on PATH its screenshots at 1280 x 800 and 390 x 844 (the layout test's
    Chromium driver, run as a script)."""
    session.install("-e", ".[test]")
    session.run("flushbench", "report", *(session.posargs or [*PUBLISHED, "--out",
                                                              "results/report"]))
    if not session.posargs and shutil.which("chromium"):
        session.run("python", "tests/test_report_layout.py", "results/report/index.html",
                    "1280x800:results/report/screenshot.png",
                    "390x844:results/report/screenshot-390.png")


@nox.session
def compare(session: nox.Session) -> None:
    """nox -s compare -- RUN_A RUN_B [RUN_C ...] [--out DIR]"""
    session.install("-e", ".")
    if len(session.posargs) < 2:
        session.error("usage: nox -s compare -- RUN_A RUN_B [...] [--out DIR]")
    session.run("flushbench", "compare", *session.posargs)


# What `nox -s perf` runs, script by script: the fast settings.
PERF_FAST = {
    "overhead": ["--fast"],  # pyperf --fast
    "wall": [],  # smoke and quick, once each
    "repeat": ["--filter", "stream-*", "--filter", "file-*"],  # the throughput cases only
    "breakdown": ["--suite", "smoke"],
    "verdicts": ["--fast"],  # one run, three cells; `-- verdicts` alone: the README's figures
    "connections": ["--procs", "2"],  # is a stream's speed a property of its connection?
    "iperf": ["--rounds", "3"],  # the best single stream against iperf3, round by round
    "harness_loop": ["--conns", "3"],  # the timed loop against a plain one, one connection
    "copy_alignment": ["--values", "3"],  # memcpy by where it lands; coalesce placed or not
    "peer_sink": ["--pairs", "1"],  # the peer dropping stream data, or copying it
}


@nox.session
def perf(session: nox.Session) -> None:
    """Measure the harness itself with bench/bench_{overhead,wall,repeat,breakdown,verdicts,
    connections,iperf,harness_loop,copy_alignment,peer_sink}.py.

        nox -s perf                         # all ten in turn, fast settings (PERF_FAST)
        nox -s perf -- breakdown            # one script, with its own defaults (quick suite)
        nox -s perf -- repeat --suite smoke # one script; the rest goes to it (see --help)
        nox -s perf -- verdicts -o v.json   # A/A false positives, power, repeatability
    """
    session.install("-e", ".")
    _ensure_system_tools(session)  # iperf3 for bench_iperf.py
    if not session.posargs:
        for name, args in PERF_FAST.items():
            session.run("python", f"bench/bench_{name}.py", *args)
        return
    name, *args = session.posargs
    if name not in PERF_FAST:
        session.error(f"usage: nox -s perf [-- {'|'.join(PERF_FAST)} [ARGS...]]")
    session.run("python", f"bench/bench_{name}.py", *args)


# Examples per fuzz target in `nox -s fuzz` (CI runs a few dozen): the agent's control
# protocol and stored runs (show and compare of a damaged run), and the report of a damaged
# run (fewer: each example draws every chart).
FUZZ_EXAMPLES = {"FLUSHBENCH_FUZZ_EXAMPLES": "10000", "FLUSHBENCH_FUZZ_REPORT_EXAMPLES": "300"}


@nox.session
def fuzz(session: nox.Session) -> None:
    """Fuzz the agent's control protocol and stored runs (FUZZ_EXAMPLES; the environment
    overrides them), one pytest-xdist worker and one shard of each stored-run target per CPU
    (10,000 examples took 1 h 33 min in one process here). nox -s fuzz -- -k stored_run:
    the stored-run targets only."""
    session.install("-e", ".[test]", "pytest-xdist")
    workers = str(max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                             else os.cpu_count() or 1)))
    env = {name: os.environ.get(name, default) for name, default in FUZZ_EXAMPLES.items()}
    env["FLUSHBENCH_FUZZ_SHARDS"] = os.environ.get("FLUSHBENCH_FUZZ_SHARDS", workers)
    session.run("pytest", "-q", "-n", workers, "--hypothesis-show-statistics",
                "tests/test_agent_fuzz.py", "tests/test_fuzz_runs.py", *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the sources, tests and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "bench", "noxfile.py")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict over the package (settings in pyproject.toml)."""
    session.install("-e", ".[typing,loops]")
    session.run("mypy", *(session.posargs or []))


@nox.session
def check(session: nox.Session) -> None:
    """The README's check command: lint, typing, then the tests (CI runs exactly this)."""
    session.notify("lint")
    session.notify("typing")
    session.notify("tests")
