"""The ``paybridge`` command line (the commands are listed in the README). Every command takes
``-c/--config``; without it ``$PAYBRIDGE_CONFIG``, else ``./config.yaml``.

This module is the entry point and assembles the parser; each command group lives in its own
module of this package and registers its sub-commands through :class:`Commands`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bridge.cli import check, deliveries, endpoints, events, prune, reconcile, serve, trigger
from bridge.cli._common import Commands, Handler
from bridge.errors import ConfigError, StoreError

__all__ = ["main"]

_DESCRIPTION = (
    "Stripe and Payment Kit webhooks in, one canonical event stream out. Every command takes "
    "-c/--config FILE; without it $PAYBRIDGE_CONFIG, else ./config.yaml."
)

# One line per command module; each module's ``register`` adds its sub-commands.
_GROUPS = (serve, check, trigger, events, reconcile, endpoints, deliveries, prune)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paybridge", description=_DESCRIPTION)
    # "-c" is accepted before the sub-command too; after it, it wins.
    p.add_argument("-c", "--config", dest="config_before", help=argparse.SUPPRESS)
    commands = Commands.root(p)
    for group in _GROUPS:
        group.register(commands)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``paybridge`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    args.config = args.config or args.config_before
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"store error: {exc}", file=sys.stderr)
        return 1
