"""``paybridge reconcile``: backfill Stripe events the service missed (an outage longer than
Stripe's 3-day retry window, an endpoint misconfigured for a while).

Lists events from Stripe's Events API (``GET /v1/events?created[gte]=…``) and sends each one,
signed with the configured Stripe secret, to the service's own ingress, so it goes through
the same verification, deduplication and normalization as a live webhook: events the service
already has are duplicates and change nothing.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass

import aiohttp
import orjson

from bridge.config import Config
from bridge.signing import sign_timestamped_hmac
from bridge.since import parse_duration_s

__all__ = ["ReconcileReport", "reconcile", "run_reconcile"]


@dataclass
class ReconcileReport:
    """What one run did."""

    listed: int = 0
    new: int = 0
    duplicates: int = 0
    failed: int = 0


async def reconcile(
    cfg: Config, *, since_s: int, to: str, now: float | None = None
) -> ReconcileReport:
    """List Stripe events created in the last ``since_s`` seconds and post each to ``to``.

    Raises ValueError when no Stripe source with an ``api_key`` is configured, and
    ``stripe.StripeError`` when the Events API fails."""
    from adapters.stripe_api import make_client

    stripe_cfg = cfg.sources.stripe
    if stripe_cfg is None or stripe_cfg.api_key is None:
        raise ValueError("reconcile needs sources.stripe.api_key")
    secret = stripe_cfg.signing_secrets[0].get_secret_value()
    report = ReconcileReport()
    gte = int((time.time() if now is None else now) - since_s)
    async with aiohttp.ClientSession() as session:
        client = make_client(
            stripe_cfg.api_key.get_secret_value(), stripe_cfg.api_base, session=session
        )
        page = await client.v1.events.list_async(params={"created": {"gte": gte}, "limit": 100})
        async for event in page.auto_paging_iter():
            report.listed += 1
            body = orjson.dumps(event.to_dict(for_json=True))
            headers = {
                "Content-Type": "application/json",
                "Stripe-Signature": sign_timestamped_hmac(body, [secret], int(time.time())),
            }
            async with session.post(to, data=body, headers=headers) as resp:
                if resp.status != 200:
                    report.failed += 1
                    continue
                answer = await resp.json()
                if answer.get("duplicate"):
                    report.duplicates += 1
                else:
                    report.new += 1
    return report


def run_reconcile(cfg: Config, *, since: str, to: str) -> int:
    """The CLI command; returns the exit status."""
    try:
        since_s = parse_duration_s(since)
        report = asyncio.run(reconcile(cfg, since_s=since_s, to=to))
    except (ValueError, OSError) as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # stripe.StripeError and friends: say what failed, no traceback
        print(f"reconcile: Stripe API call failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        f"reconciled: {report.listed} listed, {report.new} new, "
        f"{report.duplicates} already stored, {report.failed} failed"
    )
    return 1 if report.failed else 0
