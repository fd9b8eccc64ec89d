"""The adapter contract. Adapters are pure: no aiohttp, no I/O, no clock of their own.

``verify(request)`` raises :class:`bridge.errors.SignatureError`; ``parse(body)`` raises
:class:`bridge.errors.PayloadError`; ``normalize(event)`` never raises for a well-formed
event (an unknown type gives an empty :class:`Normalized` with ``ignored_reason``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.events import Event, Source

__all__ = ["Adapter", "Deferred", "InboundRequest", "Link", "Normalized", "ProviderEvent"]


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


@dataclass(frozen=True, slots=True)
class Link:
    """A fact learned from an event: ``payment_intent`` pays ``invoice``. Stored so that a held
    PaymentIntent decision (see :class:`Deferred`) can be dropped."""

    payment_intent: str
    invoice: str


@dataclass(frozen=True, slots=True)
class Deferred:
    """Events that must be emitted only if ``payment_intent`` turns out to pay no invoice.

    The store drops them at once when a :class:`Link` for the PI is already stored, otherwise
    holds them until ``window`` passes (or a look-up decides), then emits them.
    """

    payment_intent: str
    events: tuple[Event, ...]
    livemode: bool = False


@dataclass(slots=True)
class Normalized:
    """What one provider event means canonically."""

    events: list[Event] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)
    # PaymentIntents known to pay no invoice (e.g. named by a payment-mode Checkout session):
    # a held decision for them can be emitted at once.
    standalone_payment_intents: list[str] = field(default_factory=list)
    ignored_reason: str | None = None  # set when the event produces nothing, and why
    # The event carries no object (a Stripe thin event): the service fetches the related object
    # later, outside the request, and ingests the fetched snapshot (see Store.complete_fetch).
    fetch_related: bool = False

    @property
    def produces_nothing(self) -> bool:
        return not (self.events or self.links or self.deferred or self.standalone_payment_intents)


class Adapter(Protocol):
    """One provider. ``name`` is the ``source`` of the events it produces."""

    name: Source

    def verify(self, request: InboundRequest) -> None:
        """Raise ``SignatureError`` unless the request is authentic and fresh."""

    def parse(self, body: bytes) -> ProviderEvent:
        """Parse the raw body; raise ``PayloadError`` if it is not a well-formed event."""

    def normalize(self, event: ProviderEvent) -> Normalized:
        """Map a provider event to canonical events; pure, no I/O."""
