"""Importing didx: every module imports in a fresh interpreter, the import graph of the ``didx.*`` modules has no
cycle, and ``import didx`` loads no estimator module beyond the few it imports eagerly."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import didx

PACKAGE_DIR = Path(didx.__file__).parent

# What ``import didx`` loads of didx.estimators: the foundation estimators bound eagerly in didx/__init__.py (did2x2,
# twfe, ols) and the regression helpers they import. Every other estimator is lazy (didx.registry).
EAGER_ESTIMATOR_MODULES = {
    "didx.estimators",
    "didx.estimators.regression",
    "didx.estimators.regression.collapse",
    "didx.estimators.regression.common",
    "didx.estimators.regression.ols",
    "didx.estimators.regression.twfe",
    "didx.estimators.regression.twobytwo",
}


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name -> (file, is a package)."""
    out = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """The didx modules a module imports at run time: top-level, inside functions and classes, relative or
    absolute. Imports under ``if TYPE_CHECKING:`` are left out (they never run)."""

    def __init__(self, name: str, is_package: bool, modules: set[str]) -> None:
        self.package = name if is_package else name.rpartition(".")[0]
        self.modules = modules
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        self._add(module)
        for alias in node.names:  # ``from didx.pkg import module``
            self._add(f"{module}.{alias.name}")

    def _add(self, module: str) -> None:
        if module in self.modules:
            self.found.add(module)


def import_graph() -> dict[str, set[str]]:
    """Module -> the didx modules it imports (run-time imports only)."""
    modules = _modules()
    graph = {}
    for name, (path, is_package) in modules.items():
        visitor = _Imports(name, is_package, set(modules))
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        graph[name] = visitor.found - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_graph_sees_every_kind_of_import() -> None:
    """The graph builder itself: function-level and relative imports count, TYPE_CHECKING ones do not."""
    graph = import_graph()
    # a function-level import (EventStudyResult.plot imports the plot module)
    assert "didx.results.plot" in graph["didx.results.event"]
    # ``from didx import datasets`` in the package's __init__
    assert "didx.datasets" in graph["didx"]
    # a cycle is found and reported as a path
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    src = "from . import sibling\nfrom .sub import leaf\nif TYPE_CHECKING:\n    from didx import hidden\n"
    visitor = _Imports("didx.pkg.mod", False, {"didx.pkg.sibling", "didx.pkg.sub", "didx.pkg.sub.leaf", "didx"})
    visitor.visit(ast.parse(src))
    assert visitor.found == {"didx.pkg.sibling", "didx.pkg.sub", "didx.pkg.sub.leaf"}


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    code = (
        "import importlib, json, pkgutil, didx\n"
        "names = [m.name for m in pkgutil.walk_packages(didx.__path__, 'didx.')]\n"
        "failed = {}\n"
        "for name in names:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed[name] = repr(exc)\n"
        "print(json.dumps({'names': names, 'failed': failed}))\n"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout)
    assert out["failed"] == {}
    assert set(out["names"]) == set(_modules()) - {"didx"}


def test_import_didx_loads_only_the_eager_estimators() -> None:
    code = "import json, sys, didx; print(json.dumps(sorted(m for m in sys.modules if m.startswith('didx.'))))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout))
    estimators = {m for m in loaded if m == "didx.estimators" or m.startswith("didx.estimators.")}
    assert estimators <= EAGER_ESTIMATOR_MODULES, sorted(estimators - EAGER_ESTIMATOR_MODULES)
    assert "didx.comparison" not in loaded and "didx.registry" in loaded


def test_layers_import_only_downwards() -> None:
    """The rules of docs/design.md ("What each layer may import"): the foundation (``didx._*``, linalg,
    inference, results) never imports an estimator, the comparison or the CLI; estimators never import the
    comparison or the CLI; the registry imports nothing but errors and validation at run time (estimator modules
    are named as strings and imported when first used)."""
    graph = import_graph()
    top = ("didx.comparison", "didx.comparison_runners", "didx.cli")
    bad = []
    for mod, deps in graph.items():
        foundation = (mod.startswith(("didx.linalg", "didx.inference", "didx.results"))
                      or (mod.rpartition(".")[2].startswith("_") and mod.count(".") == 1))
        for dep in deps:
            if foundation and (dep.startswith("didx.estimators") or dep in top or dep == "didx.registry"):
                bad.append(f"{mod} -> {dep}")
            if mod.startswith("didx.estimators") and dep in top:
                bad.append(f"{mod} -> {dep}")
    assert not bad, "imports against the layering: " + "; ".join(sorted(bad))
    assert graph["didx.registry"] <= {"didx._errors", "didx._validate"}, graph["didx.registry"]
