"""Unique, correctly signed ~3 KB Stripe events, made fast enough for a load generator.

One realistic sample (:func:`adapters.stripe_samples.sample_event`) is cut into a template at
every Stripe id it contains; each request joins the template with fresh ids (a run tag plus a
counter), so every request is a new provider event *and* a new real-world fact (fresh
subscription id: new dedupe keys), then signs it with the Stripe scheme.
"""

from __future__ import annotations

import re
import time

import orjson

import bridge  # noqa: F401  (imports bridge first: adapters.base needs it loaded)
from adapters.stripe_samples import sample_event
from bridge.signing import sign_timestamped_hmac

__all__ = ["BENCH_SECRET", "EVENT_TYPE", "EventFactory", "canonical_events_per_request"]

BENCH_SECRET = "whsec_bench_0123456789abcdef0123456789"
EVENT_TYPE = "customer.subscription.created"
_ID_RE = re.compile(rb"\b([a-z]+_(?:test_)?)1[A-Za-z0-9]{23}\b")
# Realistic padding: Stripe subscriptions often carry app metadata; brings the event to ~3 KB.
_METADATA = {f"app_field_{i:02d}": f"value-{i:02d}-" + "x" * 30 for i in range(40)}


class EventFactory:
    """``make(i)`` → ``(provider event id, body, headers)`` for request number ``i``."""

    def __init__(self, secret: str = BENCH_SECRET, tag: str = "") -> None:
        body = orjson.dumps(sample_event(EVENT_TYPE, metadata=_METADATA))
        self._secret = secret
        self._pieces: list[bytes] = []
        self._prefixes: list[bytes] = []
        pos = 0
        for m in _ID_RE.finditer(body):
            self._pieces.append(body[pos : m.start()])
            self._prefixes.append(m.group(1))
            pos = m.end()
        self._pieces.append(body[pos:])
        # 23 characters after the "1": tag (≤ 11) + zero-padded counter (12).
        self._tag = (tag or f"{time.time_ns() % 10**11:011d}")[:11].rjust(11, "0")
        self.size = len(body)

    def make(self, i: int) -> tuple[str, bytes, dict[str, str]]:
        suffix = f"1{self._tag}{i:012d}".encode()
        out = [self._pieces[0]]
        for prefix, piece in zip(self._prefixes, self._pieces[1:], strict=True):
            out += (prefix, suffix, piece)
        body = b"".join(out)
        event_id = "evt_" + suffix.decode()
        header = sign_timestamped_hmac(body, [self._secret], int(time.time()))
        headers = {"Stripe-Signature": header, "Content-Type": "application/json"}
        return event_id, body, headers


def canonical_events_per_request() -> int:
    """How many canonical events one bench request produces (normalized by the real adapter)."""
    from adapters.stripe import StripeAdapter

    _, body, _ = EventFactory(tag="count").make(0)
    adapter = StripeAdapter([BENCH_SECRET], tolerance_s=300)
    return len(adapter.normalize(adapter.parse(body)).events)
