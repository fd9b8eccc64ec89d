"""``paybridge check --stripe``: what the Stripe account must send. With an API key, the
account's webhook endpoints pointing at paybridge are read (stripe-python, ``api_base``
honoured) and their missing event types and API version reported; without one, the list of
event types to subscribe the endpoint to is printed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bridge.config import Config, StripeSourceConfig

if TYPE_CHECKING:
    from adapters.stripe_setup import EndpointReport

__all__ = ["basil_note", "check_stripe"]


def basil_note(cfg: StripeSourceConfig) -> str | None:
    """Why one-time PaymentIntents may wait for the correlation window, and the fix; None when
    an API key lets paybridge ask Stripe at once."""
    if cfg.api_key is not None:
        return None
    return (
        "no sources.stripe.api_key: one-time PaymentIntents on basil (2025-03-31) and later API "
        f"versions are decided only after correlation_window_s ({cfg.correlation_window_s:g} s). "
        "Set api_key to a restricted key with the Invoices: Read permission (invoice_read) to "
        "decide them within seconds (add Webhook Endpoints: Read for `check --stripe`)."
    )


def _subscribe_list() -> list[str]:
    from adapters.stripe_setup import WHY, event_types

    return [f"  {t}: {WHY[t]}" for t in event_types()]


async def _reports(cfg: StripeSourceConfig, url: str | None) -> Sequence[EndpointReport]:
    import aiohttp

    from adapters.stripe_api import make_client
    from adapters.stripe_setup import check_endpoints

    assert cfg.api_key is not None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        client = make_client(cfg.api_key.get_secret_value(), cfg.api_base, session=session)
        return await check_endpoints(client, url=url)


def check_stripe(cfg: Config, url: str | None = None) -> int:
    """Print the Stripe setup report; 0 when every matching endpoint sends every event type
    paybridge handles (or, without a key, after printing the list), else 1."""
    import stripe

    stripe_cfg = cfg.sources.stripe
    if stripe_cfg is None:
        print("sources.stripe is not configured")
        return 1
    if stripe_cfg.api_key is None:
        print(basil_note(stripe_cfg))
        print("Without an API key the account's endpoints cannot be read. Subscribe the Stripe")
        print("webhook endpoint (…/webhooks/stripe) to these event types:")
        print("\n".join(_subscribe_list()))
        return 0
    try:
        reports = asyncio.run(_reports(stripe_cfg, url))
    except stripe.StripeError as exc:
        why = exc.user_message or "no message"
        print(f"cannot read the account's webhook endpoints ({type(exc).__name__}: {why});")
        print("the key needs the Webhook Endpoints: Read permission (webhook_read)")
        return 1
    if not reports:
        where = url or "a URL ending in /webhooks/stripe"
        print(f"no Stripe webhook endpoint at {where}; create one subscribed to:")
        print("\n".join(_subscribe_list()))
        return 1
    ok = True
    for report in reports:
        print("\n".join(report.lines()))
        ok = ok and not report.missing
    return 0 if ok else 1
