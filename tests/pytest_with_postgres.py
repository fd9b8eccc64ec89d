"""Which PostgreSQL server the tests use, and ``make test``'s runner that says so.

``PAYBRIDGE_TEST_POSTGRES_URL`` names the server. Unset, the documented default
(:data:`DEFAULT_URL`) is used if it answers, so a fresh clone on a machine with a local
PostgreSQL tests both backends without any setup. ``PAYBRIDGE_TEST_POSTGRES=off`` skips the
probe (the PostgreSQL tests skip). Under ``CI`` a missing server fails the PostgreSQL tests
instead of skipping them, so CI cannot silently test less.

Run as ``python -m tests.pytest_with_postgres PYTEST_ARGS...``: it runs pytest with the server
it found; without one (outside CI) the coverage gate is scoped to the code that can run (the
PostgreSQL backend is left out, see :data:`COVERAGE_WITHOUT_POSTGRES`), and it prints why.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg

ENV_URL = "PAYBRIDGE_TEST_POSTGRES_URL"
ENV_SWITCH = "PAYBRIDGE_TEST_POSTGRES"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
COVERAGE_WITHOUT_POSTGRES = Path(__file__).with_name("coverage-without-postgres.toml")
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class PostgresChoice:
    """The server the PostgreSQL tests use (``url``), or None and ``reason`` they cannot."""

    url: str | None
    reason: str
    required: bool  # under CI a missing server is a failure, not a skip


async def _answers(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=PROBE_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def probe(url: str) -> str | None:
    """None when a PostgreSQL server accepts a connection at ``url``, else why not."""
    return asyncio.run(_answers(url))


def choose_postgres(env: Mapping[str, str], default_url: str = DEFAULT_URL) -> PostgresChoice:
    """The explicit URL, else ``default_url`` if it answers (unless the probe is switched off)."""
    required = bool(env.get("CI"))
    url = env.get(ENV_URL)
    if url:
        return PostgresChoice(url, f"{ENV_URL} is set", required)
    if env.get(ENV_SWITCH) == "off":
        return PostgresChoice(None, f"{ENV_SWITCH}=off: the default server is not probed", required)
    failure = probe(default_url)
    if failure is None:
        return PostgresChoice(default_url, f"{ENV_URL} is unset; {default_url} answers", required)
    return PostgresChoice(
        None, f"{ENV_URL} is unset and {default_url} does not answer ({failure})", required
    )


def main(argv: list[str]) -> int:
    """Run pytest with ``argv`` against the chosen server; say what is and is not tested."""
    choice = choose_postgres(os.environ)
    env = dict(os.environ)
    args = [sys.executable, "-m", "pytest", *argv]
    if choice.url:
        env[ENV_URL] = choice.url
        note = f"PostgreSQL tests run ({choice.reason})."
    elif choice.required:
        note = f"CI is set and PostgreSQL is missing: its tests fail ({choice.reason})."
    else:
        args.append(f"--cov-config={COVERAGE_WITHOUT_POSTGRES}")
        note = (
            f"PostgreSQL tests skip ({choice.reason}), so the coverage gate leaves out the "
            f"PostgreSQL backend ({COVERAGE_WITHOUT_POSTGRES.name}). Start PostgreSQL at "
            f"{DEFAULT_URL} or set {ENV_URL} to test it."
        )
    print(f"paybridge: {note}", flush=True)
    code = subprocess.run(args, env=env, check=False).returncode
    print(f"paybridge: {note}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
