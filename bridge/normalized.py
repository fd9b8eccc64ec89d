"""What one provider event means, in provider-neutral terms: the adapters produce it, the store
persists it, :mod:`bridge.holds` decides what a held PaymentIntent outcome becomes.

A PaymentIntent that pays an invoice is covered by the invoice's events, so its own outcome is
emitted only when it pays none. The pieces that settle this: :class:`Link` (this PI pays that
invoice), :class:`Deferred` (events to emit only if the PI pays no invoice), standalone PIs
(known to pay none) and :class:`InvoicePayment` (an invoice's payment or declined attempt, to
match a PI against by customer, amount and currency when nothing links them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.events import Event

__all__ = ["Deferred", "InvoicePayment", "Link", "Normalized", "PaymentKey"]


@dataclass(frozen=True, slots=True)
class Link:
    """``payment_intent`` pays ``invoice``: a held decision for the PI is dropped."""

    payment_intent: str
    invoice: str


@dataclass(frozen=True, slots=True)
class PaymentKey:
    """What a payment (or a declined attempt) is matched on when nothing links it to an
    invoice. Amounts are in the currency's smallest unit."""

    outcome: Literal["succeeded", "failed"]
    customer: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class InvoicePayment:
    """An invoice's payment or declined attempt, as an invoice event reports it. ``ref`` names
    it once however many events report it (the dedupe key of its payment fact)."""

    invoice: str
    ref: str
    key: PaymentKey


@dataclass(frozen=True, slots=True)
class Deferred:
    """Events to emit only if ``payment_intent`` turns out to pay no invoice.

    Dropped at once when a :class:`Link` for the PI is already stored, otherwise held for the
    correlation window (or until a look-up decides). ``key`` lets the window's end match the PI
    against an unlinked :class:`InvoicePayment`.
    """

    payment_intent: str
    events: tuple[Event, ...]
    livemode: bool = False
    key: PaymentKey | None = None


@dataclass(slots=True)
class Normalized:
    """What one provider event means canonically."""

    events: list[Event] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)
    # PaymentIntents known to pay no invoice (e.g. named by a payment-mode Checkout session):
    # a held decision for them can be emitted at once.
    standalone_payment_intents: list[str] = field(default_factory=list)
    invoice_payments: list[InvoicePayment] = field(default_factory=list)
    ignored_reason: str | None = None  # set when the event produces nothing, and why
    # The event carries no object (a Stripe thin event): the related object is fetched later,
    # outside the request, and the fetched snapshot ingested (see Store.complete_fetch).
    fetch_related: bool = False

    @property
    def touches_payment_intents(self) -> bool:
        """Whether storing this needs the PaymentIntent rules (links, holds, matches)."""
        return bool(
            self.links or self.deferred or self.standalone_payment_intents or self.invoice_payments
        )

    @property
    def produces_nothing(self) -> bool:
        return not (self.events or self.touches_payment_intents)

    def share_object(self, payload: Any, shared: bytes | None) -> None:
        """Events whose ``data.object`` is the request's own object are written around its
        JSON, already computed (``shared``), and stored without it (:meth:`Event.share_object`)."""
        if shared is None:
            return
        obj = payload["data"]["object"]
        for ev in self.events:
            ev.share_object(obj, shared)
