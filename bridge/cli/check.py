"""``paybridge check``: validate the config and summarise it (never a secret)."""

from __future__ import annotations

import argparse

from bridge.cli._common import Commands
from bridge.config import default_config_path, load_config

__all__ = ["register"]


def register(commands: Commands) -> None:
    commands.add("check", "validate the config", _cmd_check)


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
