"""Console test helpers: sign in through the real form, read the CSRF token from a page."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_KEY

__all__ = ["csrf_of", "field_of", "signin"]


def field_of(html: str, name: str) -> str:
    """The value of the (first) hidden input ``name`` in ``html``."""
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no {name} field in the page"
    return match.group(1)


def csrf_of(html: str) -> str:
    return field_of(html, "csrf")


async def signin(client: TestClient[Any, Any], key: str = ADMIN_KEY) -> str:
    """Sign in with ``key``; returns the session's CSRF token (from the overview's forms)."""
    form = await client.get("/console/signin")
    token = field_of(await form.text(), "signin_csrf")
    resp = await client.post(
        "/console/signin",
        data={"key": key, "signin_csrf": token, "next": "/console/"},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    page = await client.get("/console/events")
    assert page.status == 200
    return csrf_of(await page.text())
