"""Request bodies of the admin API and endpoint fields, validated with pydantic (errors name
the field)."""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bridge.catalog import validate_patterns
from bridge.errors import BridgeError, RequestError, UnknownEventTypeError
from bridge.store.base import Subscriber

__all__ = [
    "EndpointCreate",
    "EndpointUpdate",
    "ResendRequest",
    "RotateRequest",
    "parse_body",
    "parse_json_object",
    "validate",
]

M = TypeVar("M", bound=BaseModel)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object body (empty → ``{}``); raises :class:`RequestError` (400) otherwise."""
    try:
        data = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise RequestError("body must be JSON") from None
    if not isinstance(data, dict):
        raise RequestError("body must be a JSON object")
    return data


def validate(
    model: type[M], data: Mapping[str, Any], error: Callable[[str], BridgeError] = RequestError
) -> M:
    """``data`` as ``model``; raises ``error`` (a 400 by default) naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise error(f"{loc}: {msg}") from None


def parse_body(model: type[M], raw: bytes) -> M:
    """Parse a JSON body into ``model``; raises :class:`RequestError` (400) naming the field."""
    return validate(model, parse_json_object(raw))


def _secret_length(v: str | None) -> str | None:
    if v is not None and len(v) < 16:
        raise ValueError("must be at least 16 characters (whsec_… recommended)")
    return v


_METADATA_MAX_DEPTH = 32


def _metadata_depth(value: Any) -> int:
    """Nesting depth of a JSON value (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth + 1)
            stack.extend(
                (v, depth + 1) for v in (node.values() if isinstance(node, dict) else node)
            )
    return deepest


def _patterns(v: list[str] | None) -> list[str] | None:
    if v is None:
        return None
    try:
        return validate_patterns(v)
    except UnknownEventTypeError as exc:
        raise ValueError(str(exc)) from None


class _EndpointFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    enabled_events: list[str] | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    status: Literal["enabled", "disabled"] | None = None

    @field_validator("metadata")
    @classmethod
    def _shallow(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        # orjson refuses to write nesting deeper than 254: the endpoint could never be shown
        if v is not None and _metadata_depth(v) > _METADATA_MAX_DEPTH:
            raise ValueError(f"nested deeper than {_METADATA_MAX_DEPTH} levels")
        return v

    @field_validator("enabled_events")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("must name at least one event type (or '*')")
        return _patterns(v)


class EndpointCreate(_EndpointFields):
    """``POST /api/webhook-endpoints``."""

    url: str
    enabled_events: list[str]
    signature: Literal["standard", "stripe", "blocklet"] = "standard"
    secret: str | None = None
    livemode: bool = False
    api_version: str | None = None
    id: str | None = Field(default=None, pattern=r"^we_[A-Za-z0-9_]{1,64}$")

    @field_validator("secret")
    @classmethod
    def _secret_shape(cls, v: str | None) -> str | None:
        return _secret_length(v)

    def to_subscriber(self, *, secret: str, now: float) -> Subscriber:
        return Subscriber(
            id=self.id or f"we_{_secrets.token_hex(12)}",
            kind="endpoint",
            enabled_events=list(self.enabled_events),
            status=self.status or "enabled",
            url=self.url,
            signature=self.signature,
            secret=secret,
            description=self.description,
            metadata=dict(self.metadata or {}),
            created_via="api",
            livemode=self.livemode,
            api_version=self.api_version,
            created_at=now,
            updated_at=now,
        )


class EndpointUpdate(_EndpointFields):
    """``PUT /api/webhook-endpoints/{id}``: only the fields given change."""

    signature: Literal["standard", "stripe", "blocklet"] | None = None

    def apply(self, sub: Subscriber, *, now: float) -> Subscriber:
        changes: dict[str, Any] = {"updated_at": now}
        for name in ("url", "enabled_events", "description", "metadata", "status", "signature"):
            value = getattr(self, name)
            if value is not None:
                changes[name] = value
        if changes.get("status") == "enabled" and sub.status == "disabled":
            changes["failing_since"] = None
            changes["disabled_reason"] = None
        return replace(sub, **changes)


class RotateRequest(BaseModel):
    """``POST /api/webhook-endpoints/{id}/rotate``: an optional new secret (else generated)."""

    model_config = ConfigDict(extra="forbid")

    secret: str | None = None


class ResendRequest(BaseModel):
    """``POST /api/events/{id}/resend``: one endpoint, or every matching one."""

    model_config = ConfigDict(extra="forbid")

    endpoint_id: str | None = None
