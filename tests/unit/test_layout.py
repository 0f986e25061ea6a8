"""The layout a newcomer navigates: no module of ``shared`` imports another that imports it
back (directly or round a longer loop), and no private name crosses a module boundary."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> list[tuple[str, list[str]]]:
    """Every ``shared`` module ``path`` imports (at any depth: a lazy import inside a function
    is an import too), with the names taken from it."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.startswith("shared")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("shared"):
            names = [alias.name for alias in node.names]
            # "from shared.logic import calendar" imports the module shared.logic.calendar
            submodules = [f"{node.module}.{name}" for name in names if f"{node.module}.{name}" in modules]
            found += [(module, []) for module in submodules]
            found.append((node.module, [n for n in names if f"{node.module}.{n}" not in modules]))
    return found


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    paths = {_module_name(p): p for p in (ROOT / "shared").rglob("*.py")}
    modules = set(paths)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    private: list[tuple[str, str, str]] = []
    for name, path in paths.items():
        for target, names in _imports(path, modules):
            if target in modules and target != name:
                graph[name].add(target)
                private += [(name, target, n) for n in names if n.startswith("_")]
    return graph, private


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_two_modules_of_shared_import_each_other() -> None:
    # Given every import in shared/, lazy ones included
    graph, _ = _graph()
    # Then no loop of imports exists: each module can be read before the ones that use it
    assert _cycles(graph) == []


def test_no_private_name_is_imported_across_modules() -> None:
    _, private = _graph()
    assert private == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_the_loop_finder_finds_loops(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    # The check above can fail: a two-module and a three-module loop are found, a chain is not
    assert _cycles(graph) == expected
