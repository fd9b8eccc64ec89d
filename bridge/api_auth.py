"""Who is calling the admin API: an admin key (``Authorization: Bearer``) or the Payment Kit
app itself (a Blocklet component signature, how ``@blocklet/payment-js`` calls).

The component signature is checked as ``@blocklet/sdk``'s ``verifySig`` checks it
(:func:`bridge.blocklet.verify_component`): the signed text is ``{iat, exp, body, query,
method, url}`` with ``body`` the parsed JSON body (``{}`` when there is none), ``query`` the
parsed query string (values as strings), ``url`` the path only; an expired signature, one
from another key or one over another method, path, query or body is refused. It is accepted
only when ``sources.payment_kit.app_public_key`` is configured.

:func:`authenticate` is a pure decision over the request's parts: no aiohttp, no clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bridge.blocklet import verify_component
from bridge.errors import RequestError, SignatureError

__all__ = ["Caller", "authenticate", "is_component_signed"]


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller. ``id`` is stable and secret-free: ``key:<digest of the key>``
    or ``app:<app public key>`` (plus ``:<x-component-did>`` when the SDK sends one)."""

    kind: Literal["admin_key", "app"]
    id: str


def _unauthorized(message: str) -> RequestError:
    return RequestError(message, status=401, error_type="unauthorized")


def _bearer(auth: str, admin_keys: Sequence[bytes]) -> Caller:
    scheme, _, token = auth.partition(" ")
    given = token.strip().encode()
    found: bytes | None = None
    for key in admin_keys:  # every key compared: timing reveals nothing
        if hmac.compare_digest(given, key):
            found = key
    if scheme.lower() != "bearer" or not given or found is None:
        raise _unauthorized("missing or invalid admin API key")
    return Caller("admin_key", "key:" + hashlib.sha256(found).hexdigest()[:16])


def _reject_constant(name: str) -> None:
    raise ValueError(name)  # NaN / Infinity: JSON.parse refuses them


def _component(
    headers: Mapping[str, str],
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    body: bytes,
    app_public_key: str,
    now: float,
) -> Caller:
    try:
        # The stdlib parser keeps what JSON.parse keeps (big ints, lone surrogates).
        parsed = json.loads(body, parse_constant=_reject_constant) if body.strip() else None
    except (ValueError, RecursionError):
        raise RequestError("body must be JSON") from None
    try:
        verify_component(
            headers,
            body=parsed,
            method=method,
            path=path,
            query=query,
            public_key=app_public_key,
            now=now,
        )
    except SignatureError as exc:
        raise _unauthorized(f"component signature refused: {exc}") from None
    did = headers.get("x-component-did", "")
    return Caller("app", f"app:{app_public_key}" + (f":{did}" if did else ""))


def is_component_signed(headers: Mapping[str, str]) -> bool:
    """True when the request is to be checked as a component signature (it carries
    ``x-component-sig`` and no ``Authorization``): only then is its body part of the check."""
    return "Authorization" not in headers and bool(headers.get("x-component-sig"))


def authenticate(
    headers: Mapping[str, str],
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    body: bytes,
    admin_keys: Sequence[bytes],
    app_public_key: str | None,
    now: float,
) -> Caller:
    """The caller of one admin request. ``headers`` must look names up case-insensitively
    (aiohttp's ``CIMultiDict``); ``path`` is the raw path without the query string.

    An ``Authorization`` header is checked as a Bearer admin key (and nothing else); without
    one, an ``x-component-sig`` header is checked as the app's component signature. ``body``
    is only looked at for the latter (:func:`is_component_signed`): callers may pass ``b""``
    otherwise, so an unauthenticated Bearer request is refused before its body is read.

    Raises:
        RequestError: 404 when neither admin keys nor an app key are configured (the API is
            off); 401 (``unauthorized``) for a missing, wrong, expired or forged credential;
            400 when a signed body is not JSON.
    """
    if not admin_keys and app_public_key is None:
        raise RequestError("not found", status=404, error_type="not_found")
    if app_public_key is None or not is_component_signed(headers):
        return _bearer(headers.get("Authorization", ""), admin_keys)
    return _component(
        headers,
        method=method,
        path=path,
        query=query,
        body=body,
        app_public_key=app_public_key,
        now=now,
    )
