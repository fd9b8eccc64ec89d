"""Webhook signatures: the Stripe timestamped-HMAC scheme and Standard Webhooks.

Two schemes, both HMAC-SHA256 over the *raw* body bytes (never a re-serialized body):

* **Stripe / Blocklet Server** (``Stripe-Signature`` inbound, ``X-Webhook-Signature`` outbound):
  ``t=<unix>,v1=<hex>[,v1=<hex>...]``, keyed with the whole secret string (``whsec_...``)
  encoded as UTF-8, over ``b"<t>." + body``.
* **Standard Webhooks** (https://www.standardwebhooks.com, default outbound scheme):
  ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<b64> [v1,<b64>...]``,
  keyed with the base64-decoded part of ``whsec_<base64>``, over ``b"<id>.<ts>." + body``.

During secret rotation one signature per secret is emitted and verification accepts a match
against any configured secret. Error messages never contain a secret or an expected signature.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Sequence

from bridge.errors import SignatureError

__all__ = [
    "STANDARD_WEBHOOKS_SECRET_PREFIX",
    "STRIPE_SCHEME_HEADER",
    "generate_endpoint_secret",
    "hmac_sha256",
    "parse_signature_header",
    "sign_timestamped_hmac",
    "standard_webhook_headers",
    "stripe_scheme_headers",
    "verify_timestamped_hmac",
]

STANDARD_WEBHOOKS_SECRET_PREFIX = "whsec_"
STRIPE_SCHEME_HEADER = "X-Webhook-Signature"

_ENDPOINT_SECRET_BYTES = 32


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    """Split a ``t=<unix>,v1=<hex>[,v1=<hex>]...`` header into ``(t, [v1, ...])``.

    Other schemes (``v0``, unknown keys) are ignored; empty items (a trailing comma) too.

    Raises:
        SignatureError: an item without ``=``, no ``t``, more than one ``t``, a ``t`` that is
            not a non-negative decimal integer, or no ``v1`` signature at all.
    """
    timestamps: list[str] = []
    signatures: list[str] = []
    for raw_item in header.split(","):
        item = raw_item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise SignatureError("malformed signature header")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value)
    if len(timestamps) != 1:
        raise SignatureError("signature header needs exactly one timestamp (t=)")
    t_text = timestamps[0]
    # str.isdigit() alone accepts non-ASCII digits; int() alone accepts "+5", " 5" and "1_0".
    if not (t_text.isascii() and t_text.isdigit()) or len(t_text) > 15:
        raise SignatureError("signature header timestamp is not an integer")
    if not signatures:
        raise SignatureError("signature header has no v1 signature")
    return int(t_text), signatures


# hashlib releases the GIL while it hashes 2,048 bytes or more in one call (CPython's
# HASHLIB_GIL_MINSIZE). For a 3 KB webhook body the release costs more than the hash: on a busy
# service the event loop then waits for the GIL to come back from the SQLite writer thread,
# which took it meanwhile. Fed in smaller pieces the hash keeps the GIL for the few
# microseconds it takes (bench/PERFORMANCE.md, "Measurements behind the code").
_GIL_KEEPING_CHUNK = 2000


@functools.lru_cache(maxsize=256)
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 state with ``key`` absorbed and no message yet: copied per message, so
    the key's two padded blocks are hashed once per secret, not once per request."""
    return hmac.new(key, digestmod=hashlib.sha256)


def hmac_sha256(key: bytes, data: bytes, prefix: bytes = b"") -> hmac.HMAC:
    """HMAC-SHA256 of ``prefix + data`` (without joining them), computed without releasing
    the GIL (see above)."""
    mac = _keyed(key).copy()
    if prefix:
        mac.update(prefix)
    view = memoryview(data)
    for start in range(0, len(view), _GIL_KEEPING_CHUNK):
        mac.update(view[start : start + _GIL_KEEPING_CHUNK])
    return mac


def _hex_hmac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac_sha256(secret.encode("utf-8"), body, f"{timestamp}.".encode()).hexdigest()


def _require_secrets(secrets: Sequence[str]) -> None:
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of strings, not a single string")
    if not secrets or any(not s for s in secrets):
        raise ValueError("at least one non-empty signing secret is required")


def verify_timestamped_hmac(
    body: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance_s: int,
    now: float,
) -> int:
    """Verify a Stripe-scheme signature header over the raw ``body``; return its timestamp.

    Accepts when any ``v1`` signature matches any secret (constant-time comparison) and the
    timestamp is at most ``tolerance_s`` seconds away from ``now`` in either direction.

    Raises:
        SignatureError: missing header, malformed header (see :func:`parse_signature_header`),
            no matching signature, or a timestamp outside the tolerance.
        ValueError: ``secrets`` is empty or holds an empty string (a configuration bug).
    """
    _require_secrets(secrets)
    if not header:
        raise SignatureError("missing signature header")
    timestamp, candidates = parse_signature_header(header)
    # Compare bytes: compare_digest refuses str holding non-ASCII, which a header can carry.
    candidate_bytes = [c.encode("utf-8", "surrogateescape") for c in candidates]
    matched = False
    for secret in secrets:
        expected = _hex_hmac(secret, timestamp, body).encode("ascii")
        for candidate in candidate_bytes:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("no signature matches the payload")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError("signature timestamp is outside the tolerance")
    return timestamp


def sign_timestamped_hmac(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """Build a ``t=<timestamp>,v1=<hex>[,v1=<hex>...]`` header: one ``v1`` per secret, in order.

    Raises:
        ValueError: ``secrets`` is empty or holds an empty string.
    """
    _require_secrets(secrets)
    parts = [f"t={timestamp}"]
    parts.extend(f"v1={_hex_hmac(secret, timestamp, body)}" for secret in secrets)
    return ",".join(parts)


def stripe_scheme_headers(timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """Outbound headers for an endpoint with ``signature: stripe``.

    Raises:
        ValueError: ``secrets`` is empty or holds an empty string.
    """
    return {STRIPE_SCHEME_HEADER: sign_timestamped_hmac(body, secrets, timestamp)}


def generate_endpoint_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    key = _secrets.token_bytes(_ENDPOINT_SECRET_BYTES)
    return STANDARD_WEBHOOKS_SECRET_PREFIX + base64.b64encode(key).decode("ascii")


@functools.lru_cache(maxsize=1024)
def _standard_webhooks_key(secret: str) -> bytes:
    if not secret.startswith(STANDARD_WEBHOOKS_SECRET_PREFIX):
        raise ValueError("Standard Webhooks secret must start with 'whsec_'")
    encoded = secret[len(STANDARD_WEBHOOKS_SECRET_PREFIX) :]
    # Tolerate missing padding, as the reference libraries do; extra "=" is ignored by b64decode.
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("Standard Webhooks secret is not valid base64 after 'whsec_'") from None
    if not key:
        raise ValueError("Standard Webhooks secret has an empty key")
    return key


def standard_webhook_headers(
    msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]
) -> dict[str, str]:
    """Standard Webhooks headers: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

    ``webhook-signature`` holds one space-separated ``v1,<base64>`` per secret (rotation).

    Raises:
        ValueError: ``secrets`` is empty, or a secret is not ``whsec_<base64 key>``
            (the message never quotes the secret).
    """
    _require_secrets(secrets)
    prefix = f"{msg_id}.{timestamp}.".encode()
    signatures = []
    for secret in secrets:
        digest = hmac_sha256(_standard_webhooks_key(secret), body, prefix).digest()
        signatures.append("v1," + base64.b64encode(digest).decode("ascii"))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }
