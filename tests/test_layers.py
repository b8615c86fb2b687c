"""Layer rules and the engine's shape, checked on the source itself.

- the import-linter contracts in pyproject.toml (``[tool.importlinter]``): the engine (``aurora_tui.core``)
  imports nothing of the console (textual, the app, screens, widgets); widgets do not import screens;
- importing the whole engine in a fresh interpreter loads no textual;
- screens and widgets do not import the app (they talk to it through what they are given);
- no import cycle among the engine's modules;
- the engine does not print (it logs and publishes events), and its modules and functions stay small.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aurora_tui"
CORE = PACKAGE / "core"
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 80


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- import-linter -----------------------------------------------------------------------------------


def test_import_linter_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    if not lint_imports.exists():
        pytest.skip(f"import-linter is not installed ({lint_imports} missing): pip install -e '.[test]'")
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"lint-imports failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"


# --- the engine loads no console ---------------------------------------------------------------------

_IMPORT_ALL_OF_CORE = """
import importlib, json, pkgutil, sys
import aurora_tui.core as core

def fail(name):
    raise SystemExit(f"cannot import {name}")

for info in pkgutil.walk_packages(core.__path__, core.__name__ + ".", onerror=fail):
    importlib.import_module(info.name)
loaded = sorted(sys.modules)
print(json.dumps({
    "core": [n for n in loaded if n.startswith("aurora_tui.core")],
    "textual": [n for n in loaded if n == "textual" or n.startswith("textual.")],
    "console": [n for n in loaded if n.split(".")[:2] in (["aurora_tui", "app"], ["aurora_tui", "screens"], ["aurora_tui", "widgets"])],
}))
"""


def test_importing_all_of_core_loads_no_textual():
    result = subprocess.run([sys.executable, "-c", _IMPORT_ALL_OF_CORE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])
    expected = {_module_name(p) for p in _python_files(CORE)}
    assert expected <= set(loaded["core"]), f"not imported: {sorted(expected - set(loaded['core']))}"
    assert loaded["textual"] == [], f"importing aurora_tui.core loaded textual: {loaded['textual'][:10]}"
    assert loaded["console"] == [], f"importing aurora_tui.core loaded console modules: {loaded['console']}"


# --- screens and widgets do not import the app -------------------------------------------------------


def _imported_names(path: Path) -> list[tuple[int, str]]:
    """Every module an import statement in ``path`` names (anywhere in the file, TYPE_CHECKING blocks and
    function bodies included), made absolute; for ``from X import a`` both ``X`` and ``X.a``."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def test_screens_and_widgets_do_not_import_the_app():
    """Expected to fail until the console refactor lands: screens and widgets must get what they need
    (state, callbacks) from the app through messages and arguments, not by importing ``aurora_tui.app``."""
    offenders = sorted({
        f"{_rel(path)}:{line}: imports aurora_tui.app"
        for folder in (PACKAGE / "screens", PACKAGE / "widgets")
        for path in _python_files(folder)
        for line, name in _imported_names(path)
        if name == "aurora_tui.app" or name.startswith("aurora_tui.app.")
    })
    assert offenders == [], "screens/widgets import aurora_tui.app:\n" + "\n".join(offenders)


# --- no import cycle in the engine -------------------------------------------------------------------


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:  # iterative Tarjan: no recursion limit to meet
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}, "b": set()}) == [["a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_core_modules():
    """Every import grimp finds counts: module level, inside functions and under ``if TYPE_CHECKING``
    (a cycle hidden behind a lazy or type-only import is still a cycle in the design)."""
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter: pip install -e '.[test]'")
    graph = grimp.build_graph("aurora_tui", cache_dir=None)
    core = {m for m in graph.modules if m == "aurora_tui.core" or m.startswith("aurora_tui.core.")}
    assert "aurora_tui.core.engine" in core
    edges = {m: {t for t in graph.find_modules_directly_imported_by(m) if t in core} for m in core}
    described = []
    for cycle in _cycles(edges):
        lines = []
        for importer in cycle:
            for imported in sorted(edges[importer] & set(cycle)):
                details = graph.get_import_details(importer=importer, imported=imported)
                where = ", ".join(f"l.{d['line_number']}: {d['line_contents']}" for d in details)
                lines.append(f"    {importer} -> {imported} ({where})")
        described.append(" <-> ".join(cycle) + "\n" + "\n".join(lines))
    assert described == [], "import cycles among aurora_tui.core modules:\n" + "\n".join(described)


# --- the engine's shape ------------------------------------------------------------------------------


def test_core_never_prints():
    """The engine logs (logging) and publishes events; it never writes to stdout, which may be the
    console's terminal."""
    calls = [
        f"{_rel(path)}:{node.lineno}"
        for path in _python_files(CORE)
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]
    assert calls == [], "print() in aurora_tui/core:\n" + "\n".join(calls)


def test_core_modules_are_at_most_700_lines():
    long = [
        f"{_rel(path)}: {n} lines"
        for path in _python_files(CORE)
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert long == [], f"aurora_tui/core modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(long)


def test_core_functions_are_at_most_80_lines():
    long = [
        f"{_rel(path)}:{node.lineno} {node.name}(): {n} lines"
        for path in _python_files(CORE)
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES  # type: ignore[operator]
    ]
    assert long == [], f"aurora_tui/core functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)
