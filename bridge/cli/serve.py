"""``paybridge serve``: run the service until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging

from bridge.cli._common import Commands, load
from bridge.logs import configure_logging

__all__ = ["register"]

log = logging.getLogger("paybridge")


def register(commands: Commands) -> None:
    serve = commands.add("serve", "run the service", _cmd_serve)
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    serve.add_argument(
        "--log-format", choices=["text", "json"], help="override logging.format (json: jq-able)"
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    from bridge.app import freeze_gc_after_startup
    from bridge.server import run_app
    from bridge.service import Bridge

    cfg = load(args)
    configure_logging(
        args.log_format or cfg.logging.format, "DEBUG" if args.verbose else cfg.logging.level
    )
    bridge = Bridge(cfg)
    host = args.host or cfg.server.host
    port = args.port if args.port is not None else cfg.server.port
    log.info("paybridge listening on http://%s:%d", host, port)
    app = bridge.web_app()
    freeze_gc_after_startup(app)
    run_app(app, cfg.server, host=host, port=port)
    return 0
