"""What paybridge needs from a Stripe account, stated once: the event types its webhook
endpoint must be subscribed to (every type the rule table handles, each with why it matters),
and a check of the account's webhook endpoints against that list (``paybridge check --stripe``
and the start-up log). The README's list is generated from :func:`subscribe_markdown`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import stripe

from adapters.stripe_normalize import handled_event_types
from adapters.stripe_shapes import is_basil_version

__all__ = [
    "WHY",
    "EndpointReport",
    "check_endpoints",
    "event_types",
    "report_endpoint",
    "subscribe_markdown",
]

# Why each Stripe event type matters; a test checks it names exactly the types with a rule.
WHY: dict[str, str] = {
    "checkout.session.completed": "a Checkout paid or needing no payment; a payment-mode "
    "session settles its PaymentIntent at once (no correlation window)",
    "checkout.session.async_payment_succeeded": "a delayed method (SEPA, ACH) paid after the "
    "session completed unpaid",
    "checkout.session.async_payment_failed": "a delayed method that failed",
    "checkout.session.expired": "a session abandoned by the customer",
    "customer.subscription.created": "`created`, and `started` / `trial_start` when it is live",
    "customer.subscription.updated": "status changes (started, trial_end, past_due), upgrades, "
    "undone cancellations, and the raw `updated`",
    "customer.subscription.trial_will_end": "the trial ends in three days",
    "customer.subscription.paused": "paused (a trial ended without a payment method)",
    "customer.subscription.resumed": "resumed: billing starts again",
    "customer.subscription.deleted": "canceled (at once or at the end of the period)",
    "invoice.paid": "the money of every invoice: `payment.succeeded`, `invoice.paid`, renewals",
    "invoice.payment_succeeded": "the same payment as `invoice.paid` (Stripe sends both; "
    "either one is enough, both are counted once)",
    "invoice.payment_failed": "each declined attempt: `payment.failed`, `renew_failed`",
    "invoice.payment_action_required": "3-D Secure: bring the customer back",
    "invoice_payment.paid": "basil and later: names the PaymentIntent that paid an invoice, so "
    "that PaymentIntent is dropped exactly (without it, or an API key, paybridge matches by "
    "customer, amount and currency)",
    "payment_intent.succeeded": "one-time payments without an invoice (a direct PaymentIntent)",
    "payment_intent.payment_failed": "their declined attempts",
    "refund.created": "refunds (`refund.succeeded`), from 2024-10-28.acacia on for all refunds",
    "refund.updated": "a pending refund that succeeded later",
    "charge.refund.updated": "refund status changes on older API versions",
    "charge.refunded": "refunds before 2022-11-15 (the charge embeds them)",
}


def event_types() -> list[str]:
    """The Stripe event types to subscribe the endpoint to (every type with a rule)."""
    return sorted(handled_event_types())


def subscribe_markdown() -> str:
    """The README's table of event types to subscribe to, and why each matters."""
    rows = [f"| `{t}` | {WHY[t]} |" for t in event_types()]
    return "\n".join(["| Stripe event type | why paybridge needs it |", "|---|---|", *rows])


@dataclass(frozen=True, slots=True)
class EndpointReport:
    """One of the account's webhook endpoints, checked against :func:`event_types`."""

    id: str
    url: str
    status: str
    api_version: str | None  # None: the account's default version
    missing: list[str]

    def lines(self) -> list[str]:
        """What an operator should read about this endpoint."""
        version = self.api_version or "the account's default API version"
        out = [f"Stripe endpoint {self.id} {self.url} ({self.status}, {version})"]
        if self.missing:
            out.append(f"  not subscribed to: {', '.join(self.missing)}")
        else:
            out.append("  subscribed to every event type paybridge handles")
        basil = self.api_version is not None and is_basil_version(self.api_version)
        if basil and "invoice_payment.paid" in self.missing:
            out.append(
                "  basil or later without invoice_payment.paid: PaymentIntents are matched to "
                "invoices by customer, amount and currency unless an API key can ask Stripe"
            )
        return out


def report_endpoint(endpoint: Mapping[str, Any], required: Iterable[str]) -> EndpointReport:
    """Check one endpoint (as the API lists it): ``*`` subscribes to everything."""
    enabled = set(endpoint.get("enabled_events") or [])
    missing = [] if "*" in enabled else [t for t in required if t not in enabled]
    return EndpointReport(
        id=str(endpoint.get("id", "")),
        url=str(endpoint.get("url", "")),
        status=str(endpoint.get("status", "")),
        api_version=endpoint.get("api_version") or None,
        missing=missing,
    )


def _matches(url: str, wanted: str | None) -> bool:
    if wanted is not None:
        return url.rstrip("/") == wanted.rstrip("/")
    return url.split("?", 1)[0].rstrip("/").endswith("/webhooks/stripe")


async def check_endpoints(
    client: stripe.StripeClient, *, url: str | None = None
) -> Sequence[EndpointReport]:
    """The account's webhook endpoints whose URL is ``url`` (default: any ending in paybridge's
    route ``/webhooks/stripe``), each checked against :func:`event_types`.

    Raises:
        stripe.StripeError: the key may not read webhook endpoints, or Stripe is unreachable.
    """
    page = await client.v1.webhook_endpoints.list_async(params={"limit": 100})
    required = event_types()
    return [
        report_endpoint(ep.to_dict(), required)
        for ep in page.data
        if _matches(str(getattr(ep, "url", "")), url)
    ]
