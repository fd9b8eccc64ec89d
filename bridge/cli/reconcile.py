"""``paybridge reconcile``: backfill missed Stripe events (the work is in bridge.reconcile)."""

from __future__ import annotations

import argparse

from bridge.cli._common import Commands, ingress_url, load

__all__ = ["register"]


def register(commands: Commands) -> None:
    rc = commands.add("reconcile", "backfill missed Stripe events", _cmd_reconcile)
    rc.add_argument("--since", default="3d", help="how far back: 30m, 12h, 3d (default 3d)")
    rc.add_argument("--to", help="ingress URL (default: the configured server)")


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from bridge.reconcile import run_reconcile

    cfg = load(args)
    return run_reconcile(cfg, since=args.since, to=ingress_url(cfg, args.to))
