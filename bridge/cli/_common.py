"""What every command shares: registering sub-commands, loading the config, opening the store,
the service's own ingress URL and JSON output."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson

from bridge.config import Config, default_config_path, load_config
from bridge.store.base import Store

__all__ = ["Commands", "Handler", "ingress_url", "load", "print_json", "run_with_store"]

Handler = Callable[[argparse.Namespace], int]
T = TypeVar("T")


class Commands:
    """A level of sub-commands: ``add`` makes one command taking ``-c/--config``, ``group``
    makes one holding its own sub-commands (``events list``)."""

    def __init__(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._sub = sub
        self._common = argparse.ArgumentParser(add_help=False)
        self._common.add_argument(
            "-c", "--config", help="config file (default $PAYBRIDGE_CONFIG, else ./config.yaml)"
        )

    @classmethod
    def root(cls, parser: argparse.ArgumentParser) -> Commands:
        return cls(parser.add_subparsers(dest="command", required=True))

    def add(self, name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
        p = self._sub.add_parser(name, parents=[self._common], help=help)
        p.set_defaults(handler=handler)
        return p

    def group(self, name: str, help: str) -> Commands:
        p = self._sub.add_parser(name, parents=[self._common], help=help)
        return Commands(p.add_subparsers(dest=f"{name}_command", required=True))


def load(args: argparse.Namespace) -> Config:
    """The config the command was pointed at; raises ConfigError naming the key."""
    return load_config(default_config_path(args.config))


async def _with_store(cfg: Config, fn: Callable[[Store], Awaitable[T]]) -> T:
    from bridge.store import create_store

    store = create_store(cfg.store.url, sqlite_synchronous=cfg.store.sqlite_synchronous)
    await store.open()
    try:
        return await fn(store)
    finally:
        await store.close()


def run_with_store(cfg: Config, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured store, run ``fn(store)`` to completion and close the store."""
    return asyncio.run(_with_store(cfg, fn))


def ingress_url(cfg: Config, to: str | None) -> str:
    """``to``, else the configured server's Stripe route (a wildcard host means localhost)."""
    if to:
        return to
    host = "127.0.0.1" if cfg.server.host in ("0.0.0.0", "::", "") else cfg.server.host
    return f"http://{host}:{cfg.server.port}/webhooks/stripe"


def print_json(data: Any, *, indent: bool = False) -> None:
    """One JSON document on stdout (one line unless ``indent``)."""
    option = orjson.OPT_INDENT_2 if indent else 0
    sys.stdout.write(orjson.dumps(data, option=option).decode() + "\n")
