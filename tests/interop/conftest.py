"""The npm side of the interop tests: ``node`` and the packages pinned in package-lock.json.

``js_modules`` installs them with ``install.sh`` (``npm ci``) when node_modules is missing or
was installed from another package-lock.json (a digest stamp), so a fresh clone installs once
and later runs reuse it. Without ``node``/``npm`` the tests skip, unless ``CI`` is set: in CI
a missing node is a failure.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_STAMP = HERE / "node_modules" / ".paybridge-lock.sha256"


def _lock_digest() -> str:
    return hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()


def _installed() -> bool:
    return _STAMP.is_file() and _STAMP.read_text().strip() == _lock_digest()


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` binary, with the pinned packages installed beside this file."""
    found = shutil.which("node")
    if found is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are required for the interop tests in CI")
        pytest.skip("node/npm are not installed (with CI set this is a failure)")
    if not _installed():
        subprocess.run([str(HERE / "install.sh")], check=True, timeout=600)
    return found
