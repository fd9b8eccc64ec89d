"""paybridge: Stripe and Payment Kit webhooks in, one canonical exactly-once event stream out.

The public API; everything else is internal and may change. Each name is loaded from its module
on first use, so importing one submodule (``adapters`` need :mod:`bridge.events`) does not load
the whole service.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.bus import EventBus
    from bridge.catalog import CATALOG
    from bridge.config import Config, load_config
    from bridge.errors import (
        BridgeError,
        ConfigError,
        DeliveryError,
        InboundError,
        PayloadError,
        SignatureError,
        StoreError,
        UnknownEventTypeError,
    )
    from bridge.events import Event
    from bridge.service import Bridge

__all__ = [
    "CATALOG",
    "Bridge",
    "BridgeError",
    "Config",
    "ConfigError",
    "DeliveryError",
    "Event",
    "EventBus",
    "InboundError",
    "PayloadError",
    "SignatureError",
    "StoreError",
    "UnknownEventTypeError",
    "load_config",
]

_HOME = {
    "CATALOG": "bridge.catalog",
    "Bridge": "bridge.service",
    "BridgeError": "bridge.errors",
    "Config": "bridge.config",
    "ConfigError": "bridge.errors",
    "DeliveryError": "bridge.errors",
    "Event": "bridge.events",
    "EventBus": "bridge.bus",
    "InboundError": "bridge.errors",
    "PayloadError": "bridge.errors",
    "SignatureError": "bridge.errors",
    "StoreError": "bridge.errors",
    "UnknownEventTypeError": "bridge.errors",
    "load_config": "bridge.config",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
