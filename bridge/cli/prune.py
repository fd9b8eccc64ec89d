"""``paybridge prune [--dry-run]``: apply the retention settings now (bridge.retention)."""

from __future__ import annotations

import argparse
import time

from bridge.cli._common import Commands, load, run_with_store
from bridge.retention import Pruner, describe
from bridge.store.base import Store
from bridge.store.retention import PruneCounts

__all__ = ["register"]


def register(commands: Commands) -> None:
    p = commands.add("prune", "apply the retention settings now", _cmd_prune)
    p.add_argument("--dry-run", action="store_true", help="count what would go, change nothing")


def _cmd_prune(args: argparse.Namespace) -> int:
    cfg = load(args)

    async def run(store: Store) -> PruneCounts:
        return await Pruner(store, cfg.retention, clock=time.time).run(dry_run=args.dry_run)

    counts = run_with_store(cfg, run)
    print(f"{'would prune' if args.dry_run else 'pruned'} {describe(counts)}")
    return 0
