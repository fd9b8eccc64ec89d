"""paybridge: Stripe and Payment Kit webhooks in, one canonical exactly-once event stream out."""

from bridge.events import Event

__all__ = ["Event"]
