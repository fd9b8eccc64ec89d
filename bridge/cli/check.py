"""``paybridge check``: validate the config and summarise it (never a secret)."""

from __future__ import annotations

import argparse

from bridge.cli._common import Commands
from bridge.config import default_config_path, load_config

__all__ = ["register"]


def register(commands: Commands) -> None:
    p = commands.add("check", "validate the config", _cmd_check)
    p.add_argument(
        "--stripe",
        action="store_true",
        help="check the Stripe account's webhook endpoint(s) against the event types paybridge "
        "handles (needs sources.stripe.api_key; without it, print the list to subscribe to)",
    )
    p.add_argument(
        "--url", help="with --stripe: the endpoint URL (default: any ending in /webhooks/stripe)"
    )


def _cmd_check(args: argparse.Namespace) -> int:
    path = default_config_path(args.config)
    cfg = load_config(path)
    sources = [k for k, v in cfg.sources.model_dump().items() if v is not None]
    print(
        f"config OK: {path} (store {cfg.store.url.split('://', 1)[0]}, sources: "
        f"{', '.join(sources) or 'none'}, {len(cfg.endpoints)} endpoint(s), "
        f"admin API {'on' if cfg.admin.api_keys else 'off'})"
    )
    from bridge.cli.stripe_check import basil_note, check_stripe

    note = basil_note(cfg.sources.stripe) if cfg.sources.stripe else None
    if note and not args.stripe:
        print(note)
    return check_stripe(cfg, args.url) if args.stripe else 0
