"""The few Stripe API calls paybridge makes (outside the request path), through stripe-python's
async client on aiohttp: the basil PaymentIntent → invoice look-up and thin-event fetches.

The HTTP client is explicit (``stripe.AIOHTTPClient``: with httpx installed stripe-python would
otherwise pick httpx) and the base URL is configurable (``sources.stripe.api_base``), so tests
and staging can point it at a local Stripe-compatible server. Pass the service's own
``aiohttp.ClientSession`` so its lifecycle stays in the app's ``cleanup_ctx``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
import stripe

from adapters.base import ProviderEvent

__all__ = [
    "DEFAULT_API_BASE",
    "fetch_related_object",
    "find_invoice_for_payment_intent",
    "make_client",
]

DEFAULT_API_BASE = "https://api.stripe.com"


def make_client(
    api_key: str,
    api_base: str = DEFAULT_API_BASE,
    *,
    session: aiohttp.ClientSession | None = None,
    max_network_retries: int = 0,
) -> stripe.StripeClient:
    """A ``StripeClient`` for async calls against ``api_base`` on aiohttp.

    With ``session=None`` stripe-python opens an aiohttp session of its own that nothing closes
    for you: the service should pass its session. ``max_network_retries`` is stripe-python's
    own retry count (0: the caller decides)."""
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base.rstrip("/")},
        http_client=stripe.AIOHTTPClient(session=session),
        max_network_retries=max_network_retries,
    )


def _id_of(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    inner = getattr(value, "id", None)
    return inner if isinstance(inner, str) and inner else None


async def find_invoice_for_payment_intent(client: stripe.StripeClient, pi: str) -> str | None:
    """The invoice that PaymentIntent ``pi`` pays, or ``None`` when it pays none:
    ``GET /v1/invoice_payments?payment[type]=payment_intent&payment[payment_intent]=pi``.

    Raises:
        stripe.StripeError: the API refused the call or could not be reached (e.g.
            ``stripe.APIConnectionError``, ``stripe.AuthenticationError``).
    """
    page = await client.v1.invoice_payments.list_async(
        params={"payment": {"type": "payment_intent", "payment_intent": pi}, "limit": 1}
    )
    for payment in page.data:
        invoice = _id_of(getattr(payment, "invoice", None))
        if invoice:
            return invoice
    return None


async def fetch_related_object(
    client: stripe.StripeClient, event: ProviderEvent | Mapping[str, Any]
) -> dict[str, Any] | None:
    """The current state of a thin event's ``related_object`` as plain JSON (``None`` when the
    event names none), fetched from its ``url`` in the event's ``context``. ``event`` is the
    parsed thin event or its payload (the JSON body).

    Raises:
        stripe.StripeError: the API refused the call or could not be reached.
        ValueError: ``event`` is not a thin event (``"object": "v2.core.event"``).
    """
    payload = event.payload if isinstance(event, ProviderEvent) else event
    event_id = payload.get("id")
    if payload.get("object") != "v2.core.event":
        raise ValueError(f"event {event_id} is not a thin event")
    related = payload.get("related_object")
    url = related.get("url") if isinstance(related, Mapping) else None
    if not isinstance(url, str) or not url.startswith("/"):
        return None
    options: dict[str, Any] = {"headers": {"Stripe-Request-Trigger": f"event={event_id}"}}
    context = payload.get("context")
    if isinstance(context, str) and context:
        options["stripe_context"] = context
    response = await client.raw_request_async("get", url, **options)
    body = orjson.loads(response.body)
    return body if isinstance(body, dict) else None
