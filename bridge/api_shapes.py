"""Response bodies of the admin API, in Payment Kit's shapes (``@blocklet/payment-types``
1.27.2): ``TWebhookEndpoint`` (``id, livemode, api_version, url, description, enabled_events,
metadata, status, created_at, created_via, updated_at``), ``TWebhookAttempt`` (``id, livemode,
event_id, webhook_endpoint_id, status, response_status, response_body, retry_count,
created_at, updated_at``) and their ``…Expanded`` forms (``object``; an endpoint's
``attempts``; an attempt's ``event`` and ``endpoint``).

paybridge's own fields sit beside them where no name collides: an endpoint's ``signature``
and ``disabled_reason``; an attempt's ``delivery_id``, ``attempt``, ``error``,
``duration_ms``, ``delivery_status`` and ``finished_at``. Timestamps are ISO 8601 UTC with
milliseconds, as ``Date.prototype.toJSON`` writes them. A secret appears only where the
caller passes it (create and rotate).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bridge.blocklet import to_payment_kit_event
from bridge.events import Event
from bridge.store.base import AttemptRecord, Subscriber

__all__ = ["attempt_json", "endpoint_json", "expanded_attempt_json", "iso"]


def iso(ts: float | None) -> str | None:
    """Unix seconds → ``2026-01-02T03:04:05.678Z`` (``Date.prototype.toISOString``)."""
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def endpoint_json(s: Subscriber, *, secret: str | None = None) -> dict[str, Any]:
    """An endpoint as ``TWebhookEndpoint`` (+ ``object``); ``secret`` only on create/rotate."""
    out: dict[str, Any] = {
        "id": s.id,
        "object": "webhook_endpoint",
        "livemode": s.livemode,
        "api_version": s.api_version,
        "url": s.url,
        "description": s.description,
        "enabled_events": s.enabled_events,
        "metadata": s.metadata,
        "status": s.status,
        "created_via": s.created_via,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
        "signature": s.signature,
        "disabled_reason": s.disabled_reason,
    }
    if secret is not None:
        out["secret"] = secret
    return out


def attempt_json(a: AttemptRecord, *, livemode: bool | None = None) -> dict[str, Any]:
    """A delivery attempt as ``TWebhookAttempt`` (+ ``object`` and timing fields).
    ``livemode`` is its event's; ``None`` when the caller did not look it up."""
    return {
        "id": f"wha_{a.id}",
        "object": "webhook_attempt",
        "livemode": livemode,
        "event_id": a.event_id,
        "webhook_endpoint_id": a.subscriber_id,
        "status": a.status,
        "response_status": a.status_code,
        "response_body": a.response_body,
        "retry_count": a.attempt - 1,
        "created_at": iso(a.started_at),
        "updated_at": iso(a.finished_at if a.finished_at is not None else a.started_at),
        "delivery_id": a.delivery_id,
        "attempt": a.attempt,
        "error": a.error,
        "duration_ms": a.duration_ms,
        "delivery_status": a.delivery_status,
        "finished_at": iso(a.finished_at),
    }


def expanded_attempt_json(
    a: AttemptRecord, *, event: Event | None, endpoint: dict[str, Any]
) -> dict[str, Any]:
    """``TWebhookAttemptExpanded``: the attempt with its ``event`` (Payment Kit's ``TEvent``
    shape; ``None`` once the event was pruned) and its ``endpoint``."""
    return {
        **attempt_json(a, livemode=event.livemode if event is not None else None),
        "event": to_payment_kit_event(event) if event is not None else None,
        "endpoint": endpoint,
    }
