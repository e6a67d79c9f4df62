"""The layering docs/architecture.md describes holds in the code: no import cycles between the package's modules
(module-level and TYPE_CHECKING imports alike; imports inside functions are lazy by design), and the layers below
the hook import no Airflow."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_onedrive"
#: Modules that may import Airflow at module level (everything else works in a plain Python process).
AIRFLOW_SIDE = ("compat", "hooks", "operators", "sensors", "triggers")


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def top_level_imports(path: Path) -> set[str]:
    """Modules imported outside function bodies (so TYPE_CHECKING blocks count, lazy imports do not)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.ImportFrom) and child.module and not child.level:
                names.add(child.module)
                names.update(f"{child.module}.{alias.name}" for alias in child.names)
            elif isinstance(child, ast.Import):
                names.update(alias.name for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return names


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: {m for m in top_level_imports(path) if m in found and m != name} for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            strong(v)
    return found


def test_no_module_imports_one_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_transfers_never_import_the_facade():
    graph = import_graph()
    for name, imported in graph.items():
        if name.startswith("airflow_provider_onedrive.transfers"):
            assert "airflow_provider_onedrive.drive" not in imported, name


def test_layers_below_the_hook_import_no_airflow():
    offenders = []
    for name, path in modules().items():
        layer = name.split(".")[1] if "." in name else ""
        if layer in AIRFLOW_SIDE:
            continue
        airflow = [m for m in top_level_imports(path) if m == "airflow" or m.startswith("airflow.")]
        if airflow:
            offenders.append((name, airflow))
    assert offenders == []
