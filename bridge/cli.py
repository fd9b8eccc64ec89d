"""The ``paybridge`` command line (DESIGN.md "CLI"). Every command takes ``-c/--config``;
without it ``$PAYBRIDGE_CONFIG``, else ``./config.yaml``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

from bridge.config import Config, default_config_path, load_config
from bridge.errors import ConfigError, StoreError

__all__ = ["main"]

log = logging.getLogger("paybridge")


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c", "--config", help="config file (default $PAYBRIDGE_CONFIG, else ./config.yaml)"
    )
    p = argparse.ArgumentParser(prog="paybridge", description=__doc__)
    # "-c" is accepted before the sub-command too; after it, it wins.
    p.add_argument("-c", "--config", dest="config_before", help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", parents=[common], help="run the service")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument("-v", "--verbose", action="store_true")
    sub.add_parser("check", parents=[common], help="validate the config")
    trig = sub.add_parser("trigger", parents=[common], help="send a signed sample Stripe event")
    trig.add_argument("type", help="Stripe event type, e.g. customer.subscription.created")
    trig.add_argument("--to", help="ingress URL (default: the configured server)")
    events = sub.add_parser("events", parents=[common], help="stored canonical events")
    esub = events.add_subparsers(dest="events_command", required=True)
    el = esub.add_parser("list", parents=[common], help="newest first")
    el.add_argument("--type", help="only this canonical type")
    el.add_argument("--limit", type=int, help="at most N events (default: all)")
    el.add_argument("--json", action="store_true", help="a JSON array of canonical events")
    es = esub.add_parser("show", parents=[common], help="one event with its delivery attempts")
    es.add_argument("id")
    es.add_argument("--json", action="store_true")
    rs = sub.add_parser("resend", parents=[common], help="queue a fresh delivery of an event")
    rs.add_argument("event_id")
    rs.add_argument("--endpoint", help="only to this endpoint id")
    rc = sub.add_parser("reconcile", parents=[common], help="backfill missed Stripe events")
    rc.add_argument("--since", default="3d", help="how far back: 30m, 12h, 3d (default 3d)")
    rc.add_argument("--to", help="ingress URL (default: the configured server)")
    return p


def _load(args: argparse.Namespace) -> Config:
    return load_config(default_config_path(args.config))


def _cmd_check(args: argparse.Namespace) -> int:
    path = default_config_path(args.config)
    cfg = load_config(path)
    sources = [k for k, v in cfg.sources.model_dump().items() if v is not None]
    print(
        f"config OK: {path} (store {cfg.store.url.split('://', 1)[0]}, sources: "
        f"{', '.join(sources) or 'none'}, {len(cfg.endpoints)} endpoint(s), "
        f"admin API {'on' if cfg.admin.api_keys else 'off'})"
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from bridge.app import freeze_gc_after_startup
    from bridge.ingress import run_app
    from bridge.service import Bridge

    _setup_logging(args.verbose)
    cfg = _load(args)
    bridge = Bridge(cfg)
    host = args.host or cfg.server.host
    port = args.port if args.port is not None else cfg.server.port
    log.info("paybridge listening on http://%s:%d", host, port)
    app = bridge.web_app()
    freeze_gc_after_startup(app)
    run_app(app, host=host, port=port, shutdown_timeout=cfg.server.shutdown_timeout_s)
    return 0


def _ingress_url(cfg: Config, to: str | None) -> str:
    if to:
        return to
    host = "127.0.0.1" if cfg.server.host in ("0.0.0.0", "::", "") else cfg.server.host
    return f"http://{host}:{cfg.server.port}/webhooks/stripe"


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

    cfg = _load(args)
    if cfg.sources.stripe is None:
        raise ConfigError("no Stripe source configured", key="sources.stripe")
    if args.type not in SAMPLE_TYPES:
        print(f"no sample for {args.type!r}; known: {', '.join(SAMPLE_TYPES)}", file=sys.stderr)
        return 2
    event = sample_event(args.type)
    body = orjson.dumps(event)
    secret = cfg.sources.stripe.signing_secrets[0].get_secret_value()
    url = _ingress_url(cfg, args.to)
    try:
        status, text = asyncio.run(_post_signed(url, body, secret))
    except OSError as exc:
        print(f"cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print(f"sent {args.type} {event['id']} to {url}: {status} {text}")
    return 0 if 200 <= status < 300 else 1


async def _with_store(cfg: Config, fn: Any) -> Any:
    from bridge.store import create_store

    store = create_store(cfg.store.url, sqlite_synchronous=cfg.store.sqlite_synchronous)
    await store.open()
    try:
        return await fn(store)
    finally:
        await store.close()


def _cmd_events(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if args.events_command == "list":
        page = asyncio.run(
            _with_store(cfg, lambda s: s.list_events(type=args.type, limit=args.limit))
        )
        if args.json:
            sys.stdout.write(
                orjson.dumps([e.model_dump(mode="json") for e in page.items]).decode() + "\n"
            )
        else:
            for e in page.items:
                print(f"{e.id}  {e.type:<40} {e.source:<11} {e.source_event_id}  {e.dedupe_key}")
            print(f"({len(page.items)} of {page.count})", file=sys.stderr)
        return 0
    return _show_event(cfg, args.id, args.json)


def _show_event(cfg: Config, event_id: str, as_json: bool) -> int:
    from bridge.api import attempt_json

    async def load(store: Any) -> Any:
        ev = await store.get_event(event_id)
        attempts = await store.list_attempts(event_id=event_id, limit=1000)
        return ev, attempts

    ev, attempts = asyncio.run(_with_store(cfg, load))
    if ev is None:
        print(f"no event {event_id}", file=sys.stderr)
        return 1
    data = {**ev.model_dump(mode="json"), "attempts": [attempt_json(a) for a in attempts.items]}
    if as_json:
        sys.stdout.write(orjson.dumps(data).decode() + "\n")
    else:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _cmd_resend(args: argparse.Namespace) -> int:
    cfg = _load(args)

    async def go(store: Any) -> list[int]:
        ids: list[int] = await store.resend(
            args.event_id, now=time.time(), subscriber_id=args.endpoint
        )
        return ids

    try:
        ids = asyncio.run(_with_store(cfg, go))
    except LookupError:
        print(f"no event {args.event_id}", file=sys.stderr)
        return 1
    print(f"queued {len(ids)} delivery(ies) of {args.event_id}: the running service sends them")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``paybridge`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    args.config = args.config or args.config_before
    commands = {
        "check": _cmd_check,
        "serve": _cmd_serve,
        "trigger": _cmd_trigger,
        "events": _cmd_events,
        "resend": _cmd_resend,
    }
    try:
        if args.command == "reconcile":
            from bridge.reconcile import run_reconcile

            return run_reconcile(
                _load(args), since=args.since, to=_ingress_url(_load(args), args.to)
            )
        return commands[args.command](args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"store error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
