"""Configuration: YAML with ``${VAR}`` / ``${VAR:-default}`` interpolation, loaded once into one
frozen pydantic model. The only module that reads the environment.

Errors are :class:`bridge.errors.ConfigError` naming the key path, e.g.
``sources.stripe.signing_secrets[0]: environment variable STRIPE_WEBHOOK_SECRET is not set``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bridge.catalog import validate_patterns
from bridge.errors import ConfigError, UnknownEventTypeError
from bridge.signing import standard_webhook_headers

__all__ = [
    "AdminConfig",
    "BusConfig",
    "Config",
    "DeliveryConfig",
    "EndpointConfig",
    "LoggingConfig",
    "PaymentKitSourceConfig",
    "RetentionConfig",
    "ServerConfig",
    "SourcesConfig",
    "StoreConfig",
    "StripeSourceConfig",
    "default_config_path",
    "load_config",
    "parse_config",
]

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerConfig(_Frozen):
    """Where to listen and the HTTP limits handed to aiohttp's server (:mod:`bridge.server`):
    request line, one header line (name and value) and header count beyond these are a 400,
    a body over ``max_body_bytes`` a 413; idle keep-alive connections close after
    ``keepalive_timeout_s``."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_body_bytes: Annotated[int, Field(gt=0)] = 1_048_576
    shutdown_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    keepalive_timeout_s: Annotated[float, Field(gt=0)] = 75.0
    max_request_line_bytes: Annotated[int, Field(ge=64)] = 8190
    max_header_field_bytes: Annotated[int, Field(ge=64)] = 8190
    max_headers: Annotated[int, Field(ge=8)] = 128


class StoreConfig(_Frozen):
    url: str = "sqlite:///paybridge.db"
    lease_s: Annotated[float, Field(gt=0)] = 30.0
    sqlite_synchronous: Literal["full", "normal"] = "full"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if not (v.startswith("sqlite://") or v.startswith(("postgresql://", "postgres://"))):
            raise ValueError("must start with sqlite:// or postgresql://")
        return v


class AdminConfig(_Frozen):
    api_keys: list[SecretStr] = Field(default_factory=list)

    @field_validator("api_keys")
    @classmethod
    def _drop_empty(cls, v: list[SecretStr]) -> list[SecretStr]:
        # "${PAYBRIDGE_ADMIN_KEY:-}" with nothing set means "no key", not an empty-string key.
        return [k for k in v if k.get_secret_value()]


class StripeSourceConfig(_Frozen):
    signing_secrets: list[SecretStr] = Field(min_length=1)
    tolerance_s: Annotated[int, Field(gt=0)] = 300
    api_key: SecretStr | None = None
    api_base: str = "https://api.stripe.com"
    correlation_window_s: Annotated[float, Field(ge=0)] = 120.0
    # Off (None) by default: seconds between scheduled Events API passes inside `serve`.
    reconcile_every_s: Annotated[float, Field(gt=0)] | None = None

    @field_validator("api_key")
    @classmethod
    def _empty_is_none(cls, v: SecretStr | None) -> SecretStr | None:
        return v if v is not None and v.get_secret_value() else None


class PaymentKitSourceConfig(_Frozen):
    signing_secrets: list[SecretStr] = Field(default_factory=list)
    tolerance_s: Annotated[int, Field(gt=0)] = 300
    app_public_key: str | None = None
    app_secret_key: SecretStr | None = None

    @field_validator("app_public_key")
    @classmethod
    def _empty_pk_is_none(cls, v: str | None) -> str | None:
        return v or None

    @field_validator("app_secret_key")
    @classmethod
    def _empty_sk_is_none(cls, v: SecretStr | None) -> SecretStr | None:
        return v if v is not None and v.get_secret_value() else None

    @field_validator("signing_secrets")
    @classmethod
    def _drop_empty(cls, v: list[SecretStr]) -> list[SecretStr]:
        return [s for s in v if s.get_secret_value()]


class SourcesConfig(_Frozen):
    stripe: StripeSourceConfig | None = None
    payment_kit: PaymentKitSourceConfig | None = None


SignatureScheme = Literal["standard", "stripe", "blocklet"]


class EndpointConfig(_Frozen):
    id: Annotated[str, Field(pattern=r"^we_[A-Za-z0-9_]{1,64}$")]
    url: str
    enabled_events: list[str] = Field(min_length=1)
    secret: SecretStr | None = None
    signature: SignatureScheme = "standard"
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    status: Literal["enabled", "disabled"] = "enabled"
    livemode: bool = False

    @field_validator("enabled_events")
    @classmethod
    def _catalog_types(cls, v: list[str]) -> list[str]:
        try:
            return validate_patterns(v)
        except UnknownEventTypeError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _secret_needed(self) -> EndpointConfig:
        if self.signature == "blocklet":
            return self
        if self.secret is None or not self.secret.get_secret_value():
            raise ValueError("secret is required for signature 'standard' and 'stripe'")
        if self.signature == "standard":
            try:  # the signer is the authority on what a usable Standard Webhooks key is
                standard_webhook_headers("probe", 0, b"", [self.secret.get_secret_value()])
            except ValueError:
                raise ValueError(
                    "secret must be whsec_<base64 key> for signature 'standard'"
                ) from None
        return self


class DeliveryConfig(_Frozen):
    timeout_s: Annotated[float, Field(gt=0)] = 15.0
    schedule_s: list[Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.2
    max_in_flight_per_endpoint: Annotated[int, Field(gt=0)] = 16
    max_in_flight: Annotated[int, Field(gt=0)] = 512
    disable_after_failing_s: Annotated[float, Field(gt=0)] = 432_000.0
    allow_private_networks: bool = False
    secret_rotation_overlap_s: Annotated[float, Field(ge=0)] = 86_400.0
    retry_after_max_s: Annotated[float, Field(ge=0)] = 3600.0
    poll_interval_s: Annotated[float, Field(gt=0)] = 1.0


class BusConfig(_Frozen):
    handler_timeout_s: Annotated[float, Field(gt=0)] = 30.0


# Stripe retries a webhook for up to 3 days: the inbox row of a provider event is what makes
# such a retry a duplicate, so it is kept at least that long.
INBOX_DAYS_MIN = 3.0


class RetentionConfig(_Frozen):
    """How many days stored rows are kept. Pending deliveries, held PaymentIntent decisions,
    thin events awaiting their fetch and dead deliveries not yet resolved are never pruned."""

    events_days: Annotated[float, Field(gt=0)] = 30.0
    attempts_days: Annotated[float, Field(gt=0)] = 30.0
    inbox_days: float = 30.0

    @field_validator("inbox_days")
    @classmethod
    def _inbox_window(cls, v: float) -> float:
        if v < INBOX_DAYS_MIN:
            raise ValueError(
                f"must be at least {INBOX_DAYS_MIN:g} days: providers retry for that long (Stripe:"
                " 3 days) and the inbox is what makes a retry a duplicate"
            )
        return v


class LoggingConfig(_Frozen):
    """How ``paybridge`` commands log (a library user configures logging themselves)."""

    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v


class Config(_Frozen):
    """The whole configuration. ``repr`` never shows a secret (``SecretStr``)."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    endpoints: list[EndpointConfig] = Field(default_factory=list)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    bus: BusConfig = Field(default_factory=BusConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @field_validator("endpoints")
    @classmethod
    def _unique_ids(cls, v: list[EndpointConfig]) -> list[EndpointConfig]:
        seen: set[str] = set()
        for ep in v:
            if ep.id in seen:
                raise ValueError(f"duplicate endpoint id {ep.id!r}")
            seen.add(ep.id)
        return v


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _interpolate(node: Any, env: Mapping[str, str], loc: tuple[int | str, ...]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, env, (*loc, str(k))) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, env, (*loc, i)) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def replace(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set", key=_key_path(loc))

    return _ENV_RE.sub(replace, node)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's message without its snippet: ``str(exc)`` quotes the offending line, which may
    hold a secret (``signing_secrets: ["whsec_…"`` with a missing bracket)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or exc.__class__.__name__
    if mark is None:
        return str(problem)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


def parse_config(
    text: str, env: Mapping[str, str] | None = None, origin: str = "<config>"
) -> Config:
    """Parse YAML ``text`` into a :class:`Config`. Raises :class:`ConfigError` naming the key."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {_yaml_problem(exc)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin} must hold a mapping at the top level")
    data = _interpolate(raw, os.environ if env is None else env, ())
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _key_path(tuple(err["loc"])) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise ConfigError(msg, key=key) from None


def default_config_path(explicit: str | None = None) -> Path:
    """``explicit``, else ``$PAYBRIDGE_CONFIG``, else ``./config.yaml``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("PAYBRIDGE_CONFIG")
    return Path(env) if env else Path("config.yaml")


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate the config file (see :func:`default_config_path`)."""
    p = default_config_path(str(path) if path else None)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    return parse_config(text, env, origin=str(p))
