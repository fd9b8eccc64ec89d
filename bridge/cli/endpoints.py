"""``paybridge endpoints list|show|add|update|disable|enable|rotate|test|delete``: the
webhook-endpoint operations of :mod:`bridge.endpoints` (the admin API's validation, SSRF
rules and read-only YAML endpoints) against the configured store.

A running service picks the change up on its own (it re-reads subscribers it did not write).
``--json`` prints the admin API's endpoint shape; a secret is shown only by ``add`` and
``rotate``, once."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from bridge import endpoints as ops
from bridge.cli._common import Commands, load, print_json, run_with_store
from bridge.config import Config
from bridge.errors import RequestError
from bridge.store.base import Store, Subscriber

__all__ = ["register"]

_Op = Callable[[Store, Config, argparse.Namespace], Awaitable[int]]


def register(commands: Commands) -> None:
    eps = commands.group("endpoints", "webhook endpoints: list, add, change, test")
    ls = eps.add("list", "every endpoint, YAML and API ones", _runner(_list))
    ls.add_argument("--livemode", choices=["true", "false"], help="only this mode")
    ls.add_argument("--json", action="store_true", help="a JSON array (the API's shape)")
    for name, help, op in (
        ("show", "one endpoint", _show),
        ("disable", "stop sending to an endpoint", _disable),
        ("enable", "send again (clears the failure streak)", _enable),
        ("delete", "delete an endpoint and its pending deliveries", _delete),
    ):
        p = eps.add(name, help, _runner(op))
        p.add_argument("id", help="we_…")
        p.add_argument("--json", action="store_true")
    _fields(eps.add("add", "register an endpoint", _runner(_add)), create=True)
    upd = eps.add("update", "change the fields given", _runner(_update))
    upd.add_argument("id", help="we_…")
    _fields(upd, create=False)
    rot = eps.add("rotate", "new secret; the old one signs alongside for a while", _runner(_rotate))
    rot.add_argument("id", help="we_…")
    rot.add_argument("--secret", help="the new secret (default: generated); '-' reads stdin")
    rot.add_argument("--json", action="store_true")
    test = eps.add("test", "send a signed test event and print the answer", _runner(_test))
    test.add_argument("id", help="we_…")
    test.add_argument("--type", help="catalog event type (default: the endpoint's first)")
    test.add_argument("--json", action="store_true")


def _fields(p: argparse.ArgumentParser, *, create: bool) -> None:
    p.add_argument("--url", required=create, help="http(s) URL the events are POSTed to")
    p.add_argument(
        "--events", required=create, help="comma-separated catalog types, '*' or family.*"
    )
    p.add_argument("--description")
    p.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="repeatable")
    p.add_argument("--signature", choices=["standard", "stripe", "blocklet"])
    if create:
        p.add_argument("--id", help="we_… (default: generated)")
        p.add_argument("--secret", help="whsec_… (default: generated); '-' reads stdin")
        p.add_argument("--livemode", action="store_true", help="a live-mode endpoint")
        p.add_argument("--disabled", action="store_true", help="register it disabled")
    p.add_argument("--json", action="store_true")


def _runner(op: _Op) -> Callable[[argparse.Namespace], int]:
    """The command: run ``op`` with the store open; a refused request is exit status 1."""

    def run(args: argparse.Namespace) -> int:
        cfg = load(args)
        try:
            return run_with_store(cfg, lambda store: op(store, cfg, args))
        except RequestError as exc:
            print(f"{exc.error_type}: {exc}", file=sys.stderr)
            return 1

    return run


def _show_one(sub: Subscriber, args: argparse.Namespace, secret: str | None = None) -> int:
    from bridge.api import endpoint_json

    if args.json:
        print_json(endpoint_json(sub, secret=secret))
        return 0
    print(_line(sub))
    if sub.disabled_reason:
        print(f"  disabled: {sub.disabled_reason}")
    if secret is not None:
        print(f"  secret: {secret}  (shown once: store it now)")
    return 0


def _line(sub: Subscriber) -> str:
    origin = " (YAML)" if sub.created_via == "config" else ""
    mode = "live" if sub.livemode else "test"
    return (
        f"{sub.id}  {sub.status:<8} {sub.signature:<8} {mode}  {sub.url}  "
        f"{','.join(sub.enabled_events)}{origin}"
    )


async def _list(store: Store, _cfg: Config, args: argparse.Namespace) -> int:
    from bridge.api import endpoint_json

    livemode = None if args.livemode is None else args.livemode == "true"
    page = await ops.list_endpoints(store, livemode=livemode, limit=1_000_000)
    if args.json:
        print_json([endpoint_json(s) for s in page.items])
    else:
        for sub in page.items:
            print(_line(sub))
        print(f"({page.count} endpoint(s))", file=sys.stderr)
    return 0


async def _show(store: Store, _cfg: Config, args: argparse.Namespace) -> int:
    return _show_one(await ops.get_endpoint(store, args.id), args)


async def _disable(store: Store, cfg: Config, args: argparse.Namespace) -> int:
    return _show_one(await ops.set_enabled(store, cfg, args.id, False), args)


async def _enable(store: Store, cfg: Config, args: argparse.Namespace) -> int:
    return _show_one(await ops.set_enabled(store, cfg, args.id, True), args)


async def _delete(store: Store, _cfg: Config, args: argparse.Namespace) -> int:
    sub = await ops.delete_endpoint(store, args.id)
    if args.json:
        print_json({"id": sub.id, "object": "webhook_endpoint", "deleted": True})
    else:
        print(f"deleted {sub.id}")
    return 0


def _secret_arg(value: str | None) -> str | None:
    return sys.stdin.readline().strip() if value == "-" else value


def _metadata(items: list[str] | None) -> dict[str, str] | None:
    if items is None:
        return None
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RequestError(f"--metadata wants KEY=VALUE, not {item!r}")
        out[key] = value
    return out


def _given_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "url": args.url,
        "enabled_events": args.events.split(",") if args.events else None,
        "description": args.description,
        "metadata": _metadata(args.metadata),
        "signature": args.signature,
    }
    return {k: v for k, v in fields.items() if v is not None}


async def _add(store: Store, cfg: Config, args: argparse.Namespace) -> int:
    fields = _given_fields(args)
    extra = {
        "id": args.id,
        "secret": _secret_arg(args.secret),
        "livemode": args.livemode or None,
        "status": "disabled" if args.disabled else None,
    }
    fields.update({k: v for k, v in extra.items() if v is not None})
    created = await ops.create_endpoint(store, cfg, fields)
    return _show_one(created.endpoint, args, secret=created.secret)


async def _update(store: Store, cfg: Config, args: argparse.Namespace) -> int:
    fields = _given_fields(args)
    if not fields:
        raise RequestError("nothing to change: give --url, --events, --description, …")
    return _show_one(await ops.update_endpoint(store, cfg, args.id, fields), args)


async def _rotate(store: Store, cfg: Config, args: argparse.Namespace) -> int:
    rotated = await ops.rotate_secret(store, cfg, args.id, _secret_arg(args.secret))
    return _show_one(rotated.endpoint, args, secret=rotated.secret)


async def _test(store: Store, cfg: Config, args: argparse.Namespace) -> int:
    sent = await ops.send_test_event(store, cfg, args.id, event_type=args.type)
    if args.json:
        print_json(
            {
                "event_id": sent.event.id,
                "type": sent.event.type,
                "delivered": sent.delivered,
                "status_code": sent.status_code,
                "error": sent.error,
                "response_body": sent.response_body,
                "duration_ms": round(sent.duration_ms, 1),
            }
        )
    else:
        answer = sent.error or f"{sent.status_code} {sent.response_body or ''}".strip()
        verdict = "delivered" if sent.delivered else "NOT delivered"
        print(
            f"{verdict}: {sent.event.type} {sent.event.id} -> {args.id}: {answer} "
            f"({sent.duration_ms:.0f} ms)"
        )
    return 0 if sent.delivered else 1
