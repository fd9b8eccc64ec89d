"""The store knows no provider: nothing under bridge/store imports adapters or names Stripe
(what an event means comes from bridge.normalized, the PaymentIntent rule from bridge.holds)."""

from __future__ import annotations

import ast
from pathlib import Path

STORE = Path(__file__).resolve().parents[2] / "bridge" / "store"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_store_modules_import_nothing_from_adapters_or_stripe() -> None:
    files = sorted(STORE.rglob("*.py"))
    assert len(files) > 10
    offending = {
        str(f.relative_to(STORE)): sorted(
            n for n in _imports(f) if n.split(".")[0] in ("adapters", "stripe")
        )
        for f in files
    }
    assert {f: names for f, names in offending.items() if names} == {}
