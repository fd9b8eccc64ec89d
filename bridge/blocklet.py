"""Blocklet component signatures (both ways), JS-identical stable JSON, and the Payment Kit
webhook-event body that paybridge POSTs to ``signature: blocklet`` endpoints.

What ArcBlock's code does (read from the npm packages ``@blocklet/sdk@1.17.12``
``lib/util/verify-sign.js`` + ``lib/middlewares/component.js``, ``@ocap/wallet@1.30.24``,
``@ocap/mcrypto@1.30.24`` ``signer/ed25519`` + ``hasher/sha3``, ``@ocap/util`` and
``json-stable-stringify@1.3.0``):

* The signer builds ``{iat, exp, body, query, method, url}``: ``iat`` = now (unix s),
  ``exp = iat + 300``, ``body`` = the JSON body (``{}`` when there is none), ``query`` = the
  parsed query string (``qs``), ``method`` lower-case, ``url`` the path only. It serializes it
  with ``json-stable-stringify`` (keys sorted by UTF-16 code units, compact, values formatted
  by ``JSON.stringify``) and calls ``wallet.sign(text)``. The wallet type is
  ``{role: APPLICATION, pk: ED25519, hash: SHA3}`` and ``sign(data, hashBeforeSign = true)``
  **hashes first**: SHA3-256 of the text's UTF-8 bytes (``toUint8Array`` of a non-hex,
  non-base58 string is its UTF-8), then Ed25519 (RFC 8032, ``@noble/ed25519``) over the
  32-byte *digest*, not over the text. The signature is ``0x`` + hex of its 64 bytes.
* Headers: ``x-component-sig``, ``x-component-sig-iat``, ``x-component-sig-exp``,
  ``x-component-sig-version: "1"`` (``SIG_VERSION.DEFAULT``).
* ``verifySig``: no ``x-component-sig`` → 400; ``iat``/``exp`` are ``Number(header)``; a NaN,
  ``exp < floor(now)`` or a signature that does not verify → 401. ``iat`` is not checked
  against the clock and the version header is not checked. When ``x-path-prefix`` is present
  and the path does not start with it, the check is retried with ``prefix + path`` (the
  component was mounted under a prefix the signer saw).
* Keys: ``BLOCKLET_APP_PK`` = ``0x`` + hex of the 32-byte public key; ``BLOCKLET_APP_SK`` =
  ``0x`` + hex of 64 bytes (seed, then public key); the signer uses the first 32 bytes.

Python and JS must serialize the same value to the same bytes. :func:`stable_stringify`
reproduces ``json-stable-stringify`` + ``JSON.stringify``: numbers as JS prints doubles
(``1.0`` → ``1``, ``1e21`` → ``1e+21``, ``1e-7``, ints beyond 2**53 rounded to the double JS
would parse), no ``ensure_ascii``, ``/`` and U+2028 unescaped, lone surrogates as ``\\udxxx``.
Limitation: query strings are compared flat (``{key: value}``); ``qs`` would nest bracketed
keys (``a[b]=1``) and turn repeated keys into arrays, which this module does not reproduce.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bridge.errors import ConfigError, SignatureError
from bridge.events import Event

__all__ = [
    "COMPONENT_SIG_HEADERS",
    "SIG_VERSION",
    "component_signed_text",
    "generate_secret_key",
    "parse_public_key",
    "parse_secret_key",
    "public_key_of",
    "sign_component",
    "stable_stringify",
    "to_payment_kit_event",
    "verify_component",
]

SIG_VERSION = "1"
COMPONENT_SIG_HEADERS = (
    "x-component-sig",
    "x-component-sig-iat",
    "x-component-sig-exp",
    "x-component-sig-version",
)
_MAX_SAFE_INT = 2**53
_NUMBER_RE = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_ESCAPE_RE = re.compile('["\\\\\x00-\x1f\ud800-\udfff]')
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
_SHORT_ESCAPES["\t"] = "\\t"


# --- stable JSON, byte-identical to json-stable-stringify + JSON.stringify -------------------


def _js_float(x: float) -> str:
    """``Number.prototype.toString()`` for a double (ECMA-262 Number::toString, radix 10)."""
    if math.isnan(x) or math.isinf(x):
        return "null"  # JSON.stringify(NaN / Infinity)
    if x == 0:
        return "0"  # also -0
    if x < 0:
        return "-" + _js_float(-x)
    # repr() is the shortest round-tripping decimal, as JS's; only the layout differs.
    _, digit_tuple, exponent = Decimal(repr(x)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent += len(digit_tuple) - len(digits)
    k = len(digits)
    n = k + exponent  # value = 0.<digits> * 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def _js_int(i: int) -> str:
    if -_MAX_SAFE_INT < i < _MAX_SAFE_INT:
        return str(i)
    try:  # JSON.parse turns a large integer into the nearest double
        return _js_float(float(i))
    except OverflowError:
        return "null"  # beyond the double range: Infinity


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return _SHORT_ESCAPES.get(ch) or f"\\u{ord(ch):04x}"


def _utf16_normal(s: str) -> str:
    """Join surrogate code points that form a pair (JS sees one character); keep lone ones."""
    if _SURROGATE_RE.search(s) is None:
        return s
    return s.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")


def _quote(s: str) -> str:
    return '"' + _ESCAPE_RE.sub(_escape, _utf16_normal(s)) + '"'


def _utf16_key(item: tuple[str, Any]) -> bytes:
    # JS's default sort compares UTF-16 code units; big-endian UTF-16 bytes order the same way.
    return _utf16_normal(item[0]).encode("utf-16-be", "surrogatepass")


def _scalar(value: Any) -> str | None:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _js_int(value)
    if isinstance(value, float):
        return _js_float(value)
    if isinstance(value, str):
        return _quote(value)
    return None


def _write(value: Any, out: list[str]) -> None:
    scalar = _scalar(value)
    if scalar is not None:
        out.append(scalar)
    elif isinstance(value, Mapping):
        items = list(value.items())
        if any(not isinstance(k, str) for k, _ in items):
            raise TypeError("stable_stringify: object keys must be strings")
        out.append("{")
        for index, (key, item) in enumerate(sorted(items, key=_utf16_key)):
            out.append(("," if index else "") + _quote(key) + ":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"stable_stringify: {type(value).__name__} is not a JSON type")


def stable_stringify(value: Any) -> str:
    """Serialize ``value`` exactly as ``json-stable-stringify@1.3.0`` (no options) does in
    Node for the value JS would get from ``JSON.parse`` of ``value``'s JSON.

    Raises:
        TypeError: a value that is not JSON (bytes, sets, objects) or a non-string key.
    """
    out: list[str] = []
    _write(value, out)
    return "".join(out)


# --- keys ----------------------------------------------------------------------------------


def _hex_bytes(text: str, what: str, sizes: tuple[int, ...]) -> bytes:
    body = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raise ConfigError(f"{what} is not hex ('0x' + hex)") from None
    if len(raw) not in sizes or len(body) != 2 * len(raw):
        raise ConfigError(f"{what} must be {' or '.join(map(str, sizes))} bytes of hex")
    return raw


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Parse ``BLOCKLET_APP_PK`` (``0x`` + hex of 32 bytes).

    Raises:
        ConfigError: not hex, or not 32 bytes.
    """
    return Ed25519PublicKey.from_public_bytes(_hex_bytes(text, "app public key", (32,)))


def parse_secret_key(text: str) -> Ed25519PrivateKey:
    """Parse ``BLOCKLET_APP_SK``: ``0x`` + hex of 64 bytes (seed, then public key) or of the
    32-byte seed alone.

    Raises:
        ConfigError: not hex, wrong length, or the embedded public key is not the seed's.
    """
    raw = _hex_bytes(text, "app secret key", (32, 64))
    key = Ed25519PrivateKey.from_private_bytes(raw[:32])
    if len(raw) == 64 and _raw_public(key.public_key()) != raw[32:]:
        raise ConfigError("app secret key: the last 32 bytes are not the seed's public key")
    return key


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_of(secret_key: str | Ed25519PrivateKey) -> str:
    """The ``0x`` + hex public key (``BLOCKLET_APP_PK``) of a secret key.

    Raises:
        ConfigError: ``secret_key`` cannot be parsed (see :func:`parse_secret_key`).
    """
    key = parse_secret_key(secret_key) if isinstance(secret_key, str) else secret_key
    return "0x" + _raw_public(key.public_key()).hex()


def generate_secret_key() -> str:
    """A fresh ``BLOCKLET_APP_SK``-style key: ``0x`` + hex(seed + public key)."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw()
    return "0x" + (seed + _raw_public(key.public_key())).hex()


# --- component signatures ------------------------------------------------------------------


def component_signed_text(
    *, iat: float, exp: float, body: Any, method: str, path: str, query: Mapping[str, Any]
) -> str:
    """The exact text whose SHA3-256 digest is signed (``getSignData`` / ``getVerifyData``).

    Raises:
        TypeError: ``body`` or ``query`` holds a value that is not JSON.
    """
    data = {
        "iat": iat,
        "exp": exp,
        "body": {} if body is None else body,
        "query": dict(query),
        "method": method.lower(),
        "url": path,
    }
    return stable_stringify(data)


def _digest(text: str) -> bytes:
    return hashlib.sha3_256(text.encode("utf-8")).digest()


def sign_component(
    *,
    body: Any,
    method: str,
    path: str,
    query: Mapping[str, str],
    secret_key: str | Ed25519PrivateKey,
    now: int,
    ttl_s: int = 300,
) -> dict[str, str]:
    """The four ``x-component-sig*`` headers for a request, as ``@blocklet/sdk`` signs them.

    ``body`` is the parsed JSON value of the body that will be sent (``None`` → ``{}``);
    ``path`` is the URL path only (as it will appear on the wire, percent-encoded).

    Raises:
        ValueError: ``path`` carries a query string (pass it as ``query``).
        ConfigError: ``secret_key`` cannot be parsed.
        TypeError: ``body`` is not JSON-serializable.
    """
    if "?" in path:
        raise ValueError("path must not contain a query string; pass query= instead")
    key = parse_secret_key(secret_key) if isinstance(secret_key, str) else secret_key
    iat = int(now)
    exp = iat + ttl_s
    text = component_signed_text(iat=iat, exp=exp, body=body, method=method, path=path, query=query)
    return {
        "x-component-sig": "0x" + key.sign(_digest(text)).hex(),
        "x-component-sig-iat": str(iat),
        "x-component-sig-exp": str(exp),
        "x-component-sig-version": SIG_VERSION,
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; CIMultiDict finds it above
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def _js_number(text: str | None) -> float | int | None:
    """``Number(header)`` for the decimal forms signers send; ``None`` for NaN."""
    if text is None or not _NUMBER_RE.fullmatch(text):
        return None
    value = float(text)
    if math.isinf(value):
        return None
    return int(value) if value.is_integer() and abs(value) < _MAX_SAFE_INT else value


def _signature_bytes(sig: str) -> bytes | None:
    if sig[:2] not in ("0x", "0X"):
        return None
    try:
        raw = bytes.fromhex(sig[2:])
    except ValueError:
        return None
    return raw if len(raw) == 64 else None


def _verifies(key: Ed25519PublicKey, signature: bytes, text: str) -> bool:
    try:
        key.verify(signature, _digest(text))
    except InvalidSignature:
        return False
    return True


def verify_component(
    headers: Mapping[str, str],
    *,
    body: Any,
    method: str,
    path: str,
    query: Mapping[str, Any],
    public_key: str | Ed25519PublicKey,
    now: float,
) -> None:
    """Check a Blocklet component signature as ``verifySig`` does.

    ``body`` is the parsed JSON body (``None`` when empty), ``path`` the raw request path
    without the query string, ``now`` unix seconds.

    Raises:
        SignatureError: status 400 when ``x-component-sig`` is missing or empty; status 401
            when ``iat``/``exp`` are not numbers, ``exp`` is in the past, the signature is
            malformed, or it does not verify with ``public_key``.
        ConfigError: ``public_key`` cannot be parsed.
    """
    key = parse_public_key(public_key) if isinstance(public_key, str) else public_key
    sig = _header(headers, "x-component-sig")
    if not sig:
        raise SignatureError("missing x-component-sig header", status=400)
    iat = _js_number(_header(headers, "x-component-sig-iat"))
    exp = _js_number(_header(headers, "x-component-sig-exp"))
    if iat is None or exp is None:
        raise SignatureError("x-component-sig-iat/-exp must be numbers", status=401)
    if exp < math.floor(now):
        raise SignatureError("component signature expired", status=401)
    signature = _signature_bytes(sig)
    if signature is None:
        raise SignatureError("x-component-sig is not 0x + 64 bytes of hex", status=401)
    paths = [path]
    prefix = _header(headers, "x-path-prefix")
    if prefix and not path.startswith(prefix):
        paths.append(prefix.rstrip("/") + "/" + path.lstrip("/"))
    for candidate in paths:
        try:
            text = component_signed_text(
                iat=iat, exp=exp, body=body, method=method, path=candidate, query=query
            )
        except (TypeError, RecursionError):
            raise SignatureError("body cannot be canonicalized", status=401) from None
        if _verifies(key, signature, text):
            return
    raise SignatureError("component signature does not verify", status=401)


# --- outbound Payment Kit webhook event ----------------------------------------------------


def _iso(unix_s: int) -> str:
    """``Date.prototype.toISOString()`` of a unix second (what Payment Kit's JSON carries)."""
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def to_payment_kit_event(event: Event, *, pending_webhooks: int = 0) -> dict[str, Any]:
    """The body paybridge POSTs to ``signature: blocklet`` endpoints: Payment Kit's webhook
    event shape (``TEvent`` of ``@blocklet/payment-types``), so a receiver written for Payment
    Kit (``verifySig`` then ``switch (req.body.type)``) handles it unchanged.

    ``id`` is the canonical id (stable across retries), ``created_at``/``updated_at`` the
    provider event time; ``metadata`` names where the event came from.
    """
    data = dict(event.data)
    data.setdefault("object", {})
    data.setdefault("previous_attributes", {})
    return {
        "id": event.id,
        "type": event.type,
        "livemode": event.livemode,
        "api_version": event.api_version,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "data": data,
        "request": dict(event.request),
        "pending_webhooks": pending_webhooks,
        "metadata": {"source": event.source, "source_event_id": event.source_event_id},
        "created_at": _iso(event.created),
        "updated_at": _iso(event.created),
    }
