"""The package's layers, read from the source with ast and checked in a fresh interpreter.

    measure/   inside worker and peer processes: the standard library and pyperf only, and
               nothing of flushbench above it (base modules: errors, case, metadata)
    analysis/  stored runs -> numbers: never report, run, cli, matplotlib or rich
    report/    numbers -> text and pixels: never run or cli
    no import cycle anywhere (imports inside functions count too)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "flushbench"
HEAVY = {"numpy", "pandas", "scipy", "matplotlib", "rich"}
BASE = {"flushbench", "flushbench.errors", "flushbench.case", "flushbench.metadata"}
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, absolute (flushbench.x.y or a top-level library)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # `from . import x` imports the submodule x
            found.update(f"{module}.{a.name}" for a in node.names
                         if f"{module}.{a.name}" in MODULES)
    return found


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _internal(name: str) -> set[str]:
    return {m for m in IMPORTS[name] if m in MODULES and m != name}


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_layout_is_there() -> None:
    """The packages the design names exist (a guard against testing an empty tree)."""
    for package in ("measure", "run", "analysis", "report", "remote", "netlab", "suites"):
        assert f"flushbench.{package}" in MODULES, package
    assert len(MODULES) > 40


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _in(m, "flushbench.measure")))
def test_measure_imports_only_stdlib_pyperf_and_base(name: str) -> None:
    """measure/ runs in every worker and peer: stdlib, pyperf and the base modules only;
    the uvloop and trio drivers their optional loop (imported only when that driver runs)."""
    optional = DRIVER_LOOPS.get(name, ())
    for module in IMPORTS[name]:
        top = module.split(".")[0]
        if top == "flushbench":
            assert module in BASE or _in(module, "flushbench.measure"), \
                f"{name} imports {module}, a layer above measure"
        else:
            # _typeshed exists only for type checkers (imported under TYPE_CHECKING)
            assert top in sys.stdlib_module_names or top in ("pyperf", "_typeshed", *optional), \
                f"{name} imports {module}: measure/ takes the standard library and pyperf only"


DRIVER_LOOPS = {"flushbench.measure.drivers.aio": ("uvloop",),
                "flushbench.measure.drivers.trio_driver": ("trio",)}


def test_optional_loops_are_imported_only_by_their_drivers() -> None:
    """Opening a worker never imports uvloop or trio (the drivers package imports them
    only when one of those drivers is opened)."""
    code = ("import sys, flushbench.measure.visit, flushbench.measure.drivers; "
            "print(sorted(m for m in ('uvloop', 'trio', 'asyncio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _in(m, "flushbench.analysis")))
def test_analysis_never_imports_report_run_cli_or_drawing(name: str) -> None:
    """analysis/ turns stored runs into numbers; words and pixels are report's job."""
    for module in IMPORTS[name]:
        assert module.split(".")[0] not in ("matplotlib", "rich"), f"{name} imports {module}"
        for upper in ("report", "run", "cli", "commands", "remote", "netlab"):
            assert not _in(module, f"flushbench.{upper}"), f"{name} imports {module}"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _in(m, "flushbench.report")))
def test_report_never_imports_run_or_cli(name: str) -> None:
    """report/ renders numbers; it never starts runs or parses command lines."""
    for module in IMPORTS[name]:
        for upper in ("run", "cli", "commands", "remote", "netlab"):
            assert not _in(module, f"flushbench.{upper}"), f"{name} imports {module}"


@pytest.mark.parametrize("name", ["flushbench.case", "flushbench.errors", "flushbench.metadata",
                                  "flushbench.suites", "flushbench.suites.files",
                                  "flushbench.suites.matrix"])
def test_base_modules_import_nothing_above_them(name: str) -> None:
    """case, errors, metadata and suites sit under every layer."""
    for module in _internal(name):
        assert module in BASE or _in(module, "flushbench.suites"), f"{name} imports {module}"
    assert not {m.split(".")[0] for m in IMPORTS[name]} & HEAVY


def test_no_import_cycle() -> None:
    """No module reaches itself through imports (a package's own __init__ aside)."""
    edges = {n: {m for m in _internal(n) if not (MODULES[m].name == "__init__.py"
                                                 and n.startswith(m + "."))}
             for n in MODULES}
    cycles = []
    for start in MODULES:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, cycles[:3]


def test_no_module_over_the_size_limit() -> None:
    """Modules stay small (split by concern; the limit only catches drift)."""
    long = {n: c for n, p in MODULES.items()
            if (c := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long


@pytest.mark.parametrize("entry", ["flushbench.measure.visit", "flushbench.measure.peer",
                                   "flushbench.measure.aiosession"])
def test_worker_and_peer_start_without_heavy_libraries(entry: str) -> None:
    """Importing a worker or peer entry point loads none of numpy, pandas, scipy, matplotlib,
    rich (checked in a fresh interpreter, as pyperf starts them)."""
    code = (f"import sys, {entry}; "
            f"print(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout
