"""SECURITY.md names a test for each promise it makes: every ``test_file.py::test_name`` it
cites exists, so a promise cannot outlive the test that shows it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CITED = re.compile(r"`(test_[a-z0-9_]+\.py)::(test_[a-z0-9_]+)`")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_security_doc_cites_only_tests_that_exist() -> None:
    cited = _CITED.findall((ROOT / "SECURITY.md").read_text(encoding="utf-8"))
    assert cited, "SECURITY.md cites no test"
    for filename, name in cited:
        matches = list((ROOT / "tests").rglob(filename))
        assert matches, f"SECURITY.md cites {filename}, which does not exist"
        assert any(name in _test_names(m) for m in matches), f"{filename}::{name} does not exist"
