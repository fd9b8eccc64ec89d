"""The adapter contract. Adapters are pure: no aiohttp, no I/O, no clock of their own.

``verify(request)`` raises :class:`bridge.errors.SignatureError`; ``parse(body)`` raises
:class:`bridge.errors.PayloadError`; ``normalize(event)`` never raises for a well-formed
event (an unknown type gives an empty :class:`Normalized` with ``ignored_reason``). What an
event means (:class:`Normalized` and its parts) is provider-neutral: :mod:`bridge.normalized`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.events import Source
from bridge.normalized import Deferred, InvoicePayment, Link, Normalized, PaymentKey

__all__ = [
    "Adapter",
    "Deferred",
    "InboundRequest",
    "InvoicePayment",
    "Link",
    "Normalized",
    "PaymentKey",
    "ProviderEvent",
]


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """What an adapter may look at to verify a request (framework-free)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # case-insensitive mapping expected (e.g. multidict.CIMultiDict)
    body: bytes
    received_at: float  # unix seconds, injected clock


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One provider event as parsed from the body, before normalization."""

    provider: Source
    id: str  # provider event id (Blocklet Server bodies: "sha256:<hex of raw body>")
    type: str
    created: int
    payload: dict[str, Any]  # the whole parsed JSON body
    api_version: str | None = None
    livemode: bool = False
    shape: str = "event"  # provider-specific: e.g. "snapshot", "thin", "webhook", "eventbus"


class Adapter(Protocol):
    """One provider. ``name`` is the ``source`` of the events it produces."""

    name: Source

    def verify(self, request: InboundRequest) -> None:
        """Raise ``SignatureError`` unless the request is authentic and fresh."""

    def parse(self, body: bytes) -> ProviderEvent:
        """Parse the raw body; raise ``PayloadError`` if it is not a well-formed event."""

    def normalize(self, event: ProviderEvent) -> Normalized:
        """Map a provider event to canonical events; pure, no I/O."""
