"""The architecture maps cannot drift from the tree: every module of bridge/ and adapters/ is
on the module map of docs/architecture.md and of the README, and every path they name exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bridge", "adapters")
_PATH = re.compile(r"`((?:bridge|adapters)/[\w/*.]*)`")
_PACKAGE_INITS = {"bridge/__init__.py", "adapters/__init__.py"}  # named by their package


def _modules() -> set[str]:
    return {
        str(p.relative_to(ROOT))
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
        if "__pycache__" not in p.parts
    }


def _map_rows(text: str, heading: str) -> list[str]:
    """The paths named in the first column of the table under ``heading``."""
    section = text[text.index(heading) :]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else len(section)]
    paths: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            paths += _PATH.findall(line.split("|")[1])
    return paths


def _covered(module: str, named: list[str]) -> bool:
    for path in named:
        if path.endswith("/") and module.startswith(path):
            return True
        if Path(module).match(path) and module.count("/") == path.count("/"):
            return True
    return module in _PACKAGE_INITS and any(p.startswith(module[:-11]) for p in named)


@pytest.mark.parametrize(
    ("doc", "heading"),
    [("docs/architecture.md", "## Module map"), ("README.md", "## Architecture")],
)
def test_the_module_map_matches_the_tree(doc: str, heading: str) -> None:
    named = _map_rows((ROOT / doc).read_text(encoding="utf-8"), heading)
    assert named, f"no module map under {heading} in {doc}"
    for path in named:
        assert list(ROOT.glob(path.rstrip("/"))), f"{doc} names {path}, which does not exist"
    missing = sorted(m for m in _modules() if not _covered(m, named))
    assert missing == [], f"modules missing from the map of {doc}"


def test_the_readme_links_the_architecture_doc() -> None:
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
