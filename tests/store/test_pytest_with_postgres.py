"""The test runner's choice of PostgreSQL server, probed for real (a closed port, the server)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.pytest_with_postgres import (
    COVERAGE_WITHOUT_POSTGRES,
    ENV_SWITCH,
    ENV_URL,
    choose_postgres,
)

ROOT = Path(__file__).resolve().parents[2]


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def test_an_explicit_url_is_used_as_given() -> None:
    url = _closed_port_url()
    choice = choose_postgres({ENV_URL: url}, default_url="postgresql://unused@127.0.0.1:1/x")
    assert (choice.url, choice.required) == (url, False)


def test_an_unset_url_and_a_silent_default_skip_outside_ci_and_fail_in_ci() -> None:
    default = _closed_port_url()
    local = choose_postgres({}, default_url=default)
    assert local.url is None and not local.required
    assert "does not answer" in local.reason and default in local.reason
    assert choose_postgres({"CI": "true"}, default_url=default).required


def test_the_switch_turns_the_probe_off() -> None:
    choice = choose_postgres({ENV_SWITCH: "off"}, default_url=_closed_port_url())
    assert choice.url is None and f"{ENV_SWITCH}=off" in choice.reason


@pytest.mark.postgres
def test_an_answering_default_is_used(postgres_server_url: str) -> None:
    assert choose_postgres({}, default_url=postgres_server_url).url == postgres_server_url


def test_without_postgres_the_runner_says_so_and_scopes_the_gate() -> None:
    env = {"PATH": "/usr/bin:/bin", ENV_SWITCH: "off"}
    out = subprocess.run(
        [sys.executable, "-m", "tests.pytest_with_postgres", "--version"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "PostgreSQL tests skip" in out and COVERAGE_WITHOUT_POSTGRES.name in out


def test_the_scoped_coverage_config_is_pyproject_s_less_exactly_the_postgres_backend() -> None:
    scoped = tomllib.loads(COVERAGE_WITHOUT_POSTGRES.read_text())["tool"]["coverage"]["run"]
    full = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]["run"]
    omit = scoped.pop("omit")
    assert scoped == full
    for pattern in omit:
        matched = sorted(ROOT.glob(pattern))
        assert matched, f"{pattern} matches no file: update {COVERAGE_WITHOUT_POSTGRES.name}"
        assert all(p.parent.name == "postgres" for p in matched)
