"""``paybridge events list|show`` and ``paybridge resend``: stored canonical events."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bridge.cli._common import Commands, load, print_json, run_with_store
from bridge.config import Config
from bridge.store.base import Store

__all__ = ["register"]


def register(commands: Commands) -> None:
    events = commands.group("events", "stored canonical events")
    el = events.add("list", "newest first", _cmd_list)
    el.add_argument("--type", help="only this canonical type")
    el.add_argument("--limit", type=int, help="at most N events (default: all)")
    el.add_argument("--json", action="store_true", help="a JSON array of canonical events")
    es = events.add("show", "one event with its delivery attempts", _cmd_show)
    es.add_argument("id")
    es.add_argument("--json", action="store_true")
    rs = commands.add("resend", "queue a fresh delivery of an event", _cmd_resend)
    rs.add_argument("event_id")
    rs.add_argument("--endpoint", help="only to this endpoint id")


def _cmd_list(args: argparse.Namespace) -> int:
    cfg = load(args)
    page = run_with_store(cfg, lambda s: s.list_events(type=args.type, limit=args.limit))
    if args.json:
        print_json([e.model_dump(mode="json") for e in page.items])
    else:
        for e in page.items:
            print(f"{e.id}  {e.type:<40} {e.source:<11} {e.source_event_id}  {e.dedupe_key}")
        print(f"({len(page.items)} of {page.count})", file=sys.stderr)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    return _show_event(load(args), args.id, args.json)


def _show_event(cfg: Config, event_id: str, as_json: bool) -> int:
    from bridge.api import attempt_json

    async def fetch(store: Store) -> Any:
        ev = await store.get_event(event_id)
        attempts = await store.list_attempts(event_id=event_id, limit=1000)
        return ev, attempts

    ev, attempts = run_with_store(cfg, fetch)
    if ev is None:
        print(f"no event {event_id}", file=sys.stderr)
        return 1
    data = {**ev.model_dump(mode="json"), "attempts": [attempt_json(a) for a in attempts.items]}
    print_json(data, indent=not as_json)
    return 0


def _cmd_resend(args: argparse.Namespace) -> int:
    cfg = load(args)

    async def go(store: Store) -> list[int]:
        return await store.resend(args.event_id, now=time.time(), subscriber_id=args.endpoint)

    try:
        ids = run_with_store(cfg, go)
    except LookupError:
        print(f"no event {args.event_id}", file=sys.stderr)
        return 1
    print(f"queued {len(ids)} delivery(ies) of {args.event_id}: the running service sends them")
    return 0
