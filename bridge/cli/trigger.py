"""``paybridge trigger TYPE``: send a realistic signed sample Stripe event to the service."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import orjson

from bridge.cli._common import Commands, ingress_url, load
from bridge.errors import ConfigError

__all__ = ["register"]


def register(commands: Commands) -> None:
    trig = commands.add("trigger", "send a signed sample Stripe event", _cmd_trigger)
    trig.add_argument("type", help="Stripe event type, e.g. customer.subscription.created")
    trig.add_argument("--to", help="ingress URL (default: the configured server)")


async def _post_signed(url: str, body: bytes, secret: str) -> tuple[int, str]:
    import aiohttp

    from bridge.signing import sign_timestamped_hmac

    header = sign_timestamped_hmac(body, [secret], int(time.time()))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "Stripe-Signature": header},
        ) as resp,
    ):
        return resp.status, await resp.text()


def _cmd_trigger(args: argparse.Namespace) -> int:
    from adapters.stripe_samples import SAMPLE_TYPES, sample_event

    cfg = load(args)
    if cfg.sources.stripe is None:
        raise ConfigError("no Stripe source configured", key="sources.stripe")
    if args.type not in SAMPLE_TYPES:
        print(f"no sample for {args.type!r}; known: {', '.join(SAMPLE_TYPES)}", file=sys.stderr)
        return 2
    event = sample_event(args.type)
    body = orjson.dumps(event)
    secret = cfg.sources.stripe.signing_secrets[0].get_secret_value()
    url = ingress_url(cfg, args.to)
    try:
        status, text = asyncio.run(_post_signed(url, body, secret))
    except OSError as exc:
        print(f"cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print(f"sent {args.type} {event['id']} to {url}: {status} {text}")
    return 0 if 200 <= status < 300 else 1
