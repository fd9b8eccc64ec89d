"""paybridge: Stripe and Payment Kit webhooks in, one canonical exactly-once event stream out.

The public API; everything else is internal and may change."""

from bridge.bus import EventBus
from bridge.catalog import CATALOG, UnknownEventTypeError
from bridge.config import Config, load_config
from bridge.errors import (
    BridgeError,
    ConfigError,
    DeliveryError,
    InboundError,
    PayloadError,
    SignatureError,
    StoreError,
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
