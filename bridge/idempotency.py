"""Idempotent endpoint creation: a create that is sent again is answered with the endpoint
the first one made, instead of registering a second one.

Why: Payment Kit's SDK (``@blocklet/sdk`` ``component.call``) retries a create three times
after a 5xx or a network error, each time re-signed with a new ``iat``. When the first
request was stored but its answer was lost, every retry would otherwise add an endpoint that
delivers each event to the same URL again.

The rule (pure functions; the caller does the reads and the write):

* A create names its *replay id*: ``we_`` + a digest of the caller, the livemode and either
  the ``Idempotency-Key`` header (when sent) or the whole validated request body. The first
  create is stored under that id.
* Without a key: when an endpoint with that id exists, was created less than
  :data:`REPLAY_WINDOW_S` ago and still has the fields the request asks for, the request is a
  replay and gets that endpoint (and its secret) back. Otherwise a new endpoint with a random
  id is created, so an identical create made on purpose later still works.
* With a key: the same within :data:`KEYED_WINDOW_S`; a key sent again with a different body
  is refused (409), as Stripe does.
* A create that names its own ``id`` is not subject to this: its id is its key (409 on reuse).

Why it is safe: the match is per caller (admin key or app key + component DID) and per
livemode, so nobody receives an endpoint or secret another credential created; and two
endpoints with identical URL, events and settings would only deliver every event twice.
Limit: two identical creates *in flight at the same moment* both write the same id and the
later secret wins; the SDK retries only after an answer or a failure, not concurrently.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from bridge.store.base import Subscriber

__all__ = ["KEYED_WINDOW_S", "REPLAY_WINDOW_S", "Verdict", "decide", "replay_id"]

REPLAY_WINDOW_S = 300.0  # the SDK's signature lifetime; its three retries take seconds
KEYED_WINDOW_S = 86_400.0  # how long Stripe keeps an Idempotency-Key
Verdict = Literal["create", "replay", "conflict", "create_elsewhere"]
_COMPARED = ("url", "enabled_events", "description", "metadata", "signature", "api_version")


def replay_id(
    caller: str, livemode: bool, request: Mapping[str, Any], idempotency_key: str | None
) -> str:
    """The id a create from ``caller`` is stored under (see the module docstring)."""
    material: list[Any] = [caller, livemode]
    material += ["key", idempotency_key] if idempotency_key is not None else ["body", request]
    digest = hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return "we_" + digest[:24]


def _same(existing: Subscriber, wanted: Subscriber, *, secret_given: bool) -> bool:
    if existing.kind != "endpoint" or existing.livemode != wanted.livemode:
        return False
    if any(getattr(existing, name) != getattr(wanted, name) for name in _COMPARED):
        return False
    if secret_given:
        return hmac.compare_digest((existing.secret or "").encode(), (wanted.secret or "").encode())
    return True


def decide(
    existing: Subscriber | None,
    wanted: Subscriber,
    *,
    keyed: bool,
    secret_given: bool,
    now: float,
) -> Verdict:
    """What to do with a create whose replay id holds ``existing``:

    ``create`` under the replay id (nothing there), ``replay`` (answer with ``existing``),
    ``conflict`` (a key reused with another body: 409) or ``create_elsewhere`` (under a
    random id: the endpoint there is too old, or was changed since)."""
    if existing is None:
        return "create"
    window_s = KEYED_WINDOW_S if keyed else REPLAY_WINDOW_S
    if now - existing.created_at > window_s:
        return "create_elsewhere"
    if _same(existing, wanted, secret_given=secret_given):
        return "replay"
    return "conflict" if keyed else "create_elsewhere"
