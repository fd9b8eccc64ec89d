"""The modules of bridge/ and adapters/ import each other without a cycle.

Every import statement counts, wherever it is: at module level, inside a function (deferred,
but still a dependency) and under ``if TYPE_CHECKING`` (a dependency of the types). Importing
``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``, so it is an edge to each of those
packages too, except those the importing module is itself inside (they are already loaded).

One distinction keeps this honest for ``bridge/__init__.py``: it loads its public names on
first access (module ``__getattr__``), and declares them to the type checker under
``TYPE_CHECKING``. Those declarations are edges of the package's *names* (the node
``bridge:names``, which ``from bridge import Bridge`` depends on), not of its initialization
(the node ``bridge``, which importing any ``bridge.*`` submodule runs). The last test checks
that the lazy names are exactly the declared ones, and that importing an adapter loads neither
the service nor the store.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bridge

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bridge", "adapters")
LAZY_PACKAGES = {"bridge"}  # packages whose public names load on first access


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the import nodes under a top-level ``if TYPE_CHECKING:``."""
    ids: set[int] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
            ids.update(id(node) for node in ast.walk(stmt))
    return ids


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """Project modules named by one import statement (and ``from x import submodule``)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        parent = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parent, *([base] if base else [])])
    yield base
    for alias in node.names:
        if f"{base}.{alias.name}" in MODULES:
            yield f"{base}.{alias.name}"
        elif base in LAZY_PACKAGES:
            yield f"{base}:names"


def _edges(module: str, target: str) -> Iterator[str]:
    """``target`` and the packages importing it initializes that ``module`` is not inside."""
    name = target.partition(":")[0]
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        package = ".".join(parts[:i])
        inside = module == package or module.startswith(package + ".")
        if package in MODULES and not inside:
            yield package
    if target != name:
        yield target


def import_graph() -> dict[str, set[str]]:
    """module (or ``package:names``) → the project modules it imports."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = _type_checking_nodes(tree) if module in LAZY_PACKAGES else set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            source = f"{module}:names" if id(node) in typing_only else module
            for target in _targets(module, node):
                graph.setdefault(source, set()).update(
                    e for e in _edges(module, target) if e != source
                )
    for package in LAZY_PACKAGES:
        graph.setdefault(f"{package}:names", set()).add(package)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_of_bridge_and_adapters_is_acyclic() -> None:
    graph = import_graph()
    assert {"bridge.service", "bridge.app", "adapters.base"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_graph_sees_function_level_and_type_checking_imports() -> None:
    graph = import_graph()
    assert "bridge.app" in graph["bridge.service"]  # Bridge.web_app imports it when called
    assert "bridge.service" in graph["bridge:names"]  # Bridge is declared under TYPE_CHECKING
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("package", sorted(LAZY_PACKAGES))
def test_lazy_public_names_are_exactly_the_declared_ones(package: str) -> None:
    assert package == "bridge"
    declared: dict[str, str] = {}
    tree = ast.parse(MODULES[package].read_text(encoding="utf-8"))
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
            for node in ast.walk(stmt):
                if isinstance(node, ast.ImportFrom) and node.module:
                    declared.update((alias.name, node.module) for alias in node.names)
    assert sorted(declared) == sorted(bridge.__all__)
    for name, home in declared.items():
        assert getattr(bridge, name) is getattr(sys.modules[home], name)


def test_importing_an_adapter_loads_neither_the_service_nor_the_store() -> None:
    probe = (
        "import sys, adapters.stripe, adapters.payment_kit; "
        "print(sorted(m for m in sys.modules if m.startswith('bridge')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    loaded = set(ast.literal_eval(out))
    assert "bridge.events" in loaded
    assert not loaded & {"bridge.service", "bridge.store", "bridge.dispatch", "bridge.app"}


def test_no_module_imports_by_name_at_run_time_except_the_lazy_packages() -> None:
    for module, path in MODULES.items():
        if module not in LAZY_PACKAGES:
            text = path.read_text(encoding="utf-8")
            assert "import_module" not in text and "__import__" not in text, module
