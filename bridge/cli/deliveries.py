"""``paybridge deliveries list`` and ``paybridge recover``: what is owed to endpoints, and
resending what failed during a receiver outage (the admin API's recover route, from a shell).

A running service sends what ``recover`` queued on its next poll (``delivery.poll_interval_s``)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bridge.cli._common import Commands, load, print_json, run_with_store
from bridge.errors import RequestError
from bridge.store.base import DeliveryRecord, KeysetPage, Store

__all__ = ["delivery_json", "register"]

_PAGE = 500


def register(commands: Commands) -> None:
    group = commands.group("deliveries", "deliveries owed to endpoints and handlers")
    ls = group.add("list", "newest first", _cmd_list)
    ls.add_argument("--dead", action="store_true", help="only dead deliveries")
    ls.add_argument("--endpoint", help="only to this endpoint (we_…) or handler:name")
    ls.add_argument("--limit", type=int, default=100, help="at most N (default 100; 0: all)")
    ls.add_argument("--json", action="store_true", help="a JSON array of deliveries")
    rec = commands.add("recover", "resend what failed for an endpoint since a time", _cmd_recover)
    rec.add_argument("--endpoint", required=True, help="we_…")
    rec.add_argument("--since", required=True, help="2h, 3d, unix seconds or ISO 8601")
    rec.add_argument("--dry-run", action="store_true", help="only count what would be resent")
    rec.add_argument("--json", action="store_true")


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def delivery_json(d: DeliveryRecord) -> dict[str, Any]:
    """One delivery as ``deliveries list --json`` prints it."""
    return {
        "id": d.id,
        "object": "delivery",
        "event_id": d.event_id,
        "event_type": d.event_type,
        "endpoint_id": d.subscriber_id,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": _iso(d.next_attempt_at) if d.status == "pending" else None,
        "created_at": _iso(d.created_at),
        "updated_at": _iso(d.updated_at),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
    }


def _cmd_list(args: argparse.Namespace) -> int:
    limit = args.limit if args.limit > 0 else None

    async def fetch(store: Store) -> tuple[list[DeliveryRecord], bool]:
        found: list[DeliveryRecord] = []
        cursor: int | None = None
        while True:
            want = _PAGE if limit is None else min(_PAGE, limit - len(found))
            page: KeysetPage[DeliveryRecord] = await store.list_deliveries(
                status="dead" if args.dead else None,
                subscriber_id=args.endpoint,
                before_id=cursor,
                limit=want,
            )
            found += page.items
            cursor = page.next_cursor
            if cursor is None or (limit is not None and len(found) >= limit):
                return found, cursor is not None

    found, more = run_with_store(load(args), fetch)
    if args.json:
        print_json([delivery_json(d) for d in found])
        return 0
    for d in found:
        answer = d.last_error or (str(d.last_status_code) if d.last_status_code else "")
        print(
            f"{d.id:>8}  {d.status:<9} {d.subscriber_id:<24} {d.event_id}  "
            f"{d.event_type or '?':<36} attempts={d.attempts} {answer}".rstrip()
        )
    tail = "; more: raise --limit" if more else ""
    print(f"({len(found)} delivery(ies){tail})", file=sys.stderr)
    return 0


def _cmd_recover(args: argparse.Namespace) -> int:
    from bridge.endpoints import recover_endpoint
    from bridge.recovery import recovery_json

    fields = {"since": args.since, "dry_run": args.dry_run}
    try:
        result = run_with_store(
            load(args), lambda s: recover_endpoint(s, args.endpoint, fields, now=time.time())
        )
    except RequestError as exc:
        print(f"{exc.error_type}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(recovery_json(result))
        return 0
    since = _iso(result.since)
    if result.dry_run:
        print(
            f"{result.endpoint_id}: {result.count} failed since {since}: would resend "
            f"{result.dead} dead and retry {result.failing} failing now (dry run: nothing changed)"
        )
    else:
        print(
            f"{result.endpoint_id}: {result.count} failed since {since}: resent {result.dead} "
            f"dead, {result.failing} failing due now; the running service sends them"
        )
    if result.endpoint_status == "disabled":
        print(
            f"{result.endpoint_id} is disabled: nothing is sent until "
            f"`paybridge endpoints enable {result.endpoint_id}`",
            file=sys.stderr,
        )
    return 0
