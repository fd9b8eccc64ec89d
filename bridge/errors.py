"""The error tree of paybridge: every error it raises on purpose is a :class:`BridgeError`.
One middleware (``bridge.app``) maps them to HTTP statuses and JSON error bodies.

::

    BridgeError
    ├── ConfigError            invalid configuration; names the key path
    ├── UnknownEventTypeError  a type or pattern not in the catalog (also a ValueError)
    ├── UnsafeURLError         an endpoint URL refused at registration (also a ValueError)
    ├── InboundError           a provider request we refuse (nothing is stored)
    │   ├── SignatureError     missing/invalid signature, stale timestamp     → 400 (or .status)
    │   ├── PayloadError       malformed body, missing id/type                → 400
    │   └── PayloadTooLargeError  body over server.max_body_bytes             → 413
    ├── RequestError           a bad admin-API request                         → 400/404/409
    │   ├── InvalidEndpointError   endpoint fields that fail validation        → 400
    │   ├── EndpointNotFoundError  no such endpoint (in that livemode)         → 404
    │   └── EndpointConflictError  the id is taken                             → 409
    │       └── EndpointReadOnlyError  the endpoint comes from the YAML config → 409
    ├── DeliveryError          one delivery attempt failed before an HTTP status; retried
    │   ├── ResponseError      the receiver broke HTTP before a status
    │   └── UnsafeAddressError the host resolves to a forbidden address (also an OSError)
    └── StoreError             the store could not commit                      → 503
"""

from __future__ import annotations

import errno

__all__ = [
    "BridgeError",
    "ConfigError",
    "DeliveryError",
    "EndpointConflictError",
    "EndpointNotFoundError",
    "EndpointReadOnlyError",
    "InboundError",
    "InvalidEndpointError",
    "PayloadError",
    "PayloadTooLargeError",
    "RequestError",
    "ResponseError",
    "SignatureError",
    "StoreError",
    "UnknownEventTypeError",
    "UnsafeAddressError",
    "UnsafeURLError",
]


class BridgeError(Exception):
    """Base of every error paybridge raises on purpose."""

    status: int = 500
    error_type: str = "internal_error"


class ConfigError(BridgeError):
    """The configuration is invalid. ``key`` is the offending key path, e.g.
    ``sources.stripe.signing_secrets[0]``."""

    error_type = "config_error"

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class InboundError(BridgeError):
    """A provider request that is refused; nothing of it is stored."""

    status = 400
    error_type = "invalid_request"


class SignatureError(InboundError):
    """Missing or invalid signature, or a timestamp outside the tolerance."""

    error_type = "signature_verification_failed"

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class PayloadError(InboundError):
    """The body is not a well-formed provider event."""

    error_type = "invalid_payload"


class PayloadTooLargeError(InboundError):
    """The body exceeds ``server.max_body_bytes``."""

    status = 413
    error_type = "payload_too_large"


class RequestError(BridgeError):
    """A bad admin-API request (validation 400, not found 404, conflict 409)."""

    error_type = "invalid_request"

    def __init__(self, message: str, status: int = 400, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        if error_type:
            self.error_type = error_type


class InvalidEndpointError(RequestError):
    """Endpoint fields that fail validation (unknown event type, refused URL, bad secret)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400, error_type="invalid_request")


class EndpointNotFoundError(RequestError):
    """No webhook endpoint with that id (or not in the livemode asked for)."""

    def __init__(self, message: str = "no such webhook endpoint") -> None:
        super().__init__(message, status=404, error_type="not_found")


class EndpointConflictError(RequestError):
    """An endpoint with that id already exists."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=409, error_type="conflict")


class EndpointReadOnlyError(EndpointConflictError):
    """The endpoint comes from the YAML config, its source of truth: edit it there."""


class DeliveryError(BridgeError):
    """One delivery attempt failed before the receiver answered with a status; the attempt is
    recorded and retried on the schedule."""

    error_type = "delivery_failed"


class ResponseError(DeliveryError):
    """The receiver broke HTTP before a status: a malformed or oversized response head, or the
    connection closed before one."""


class UnsafeAddressError(DeliveryError, OSError):
    """A host is or resolves to a forbidden address (at delivery).

    Also an ``OSError``, so that aiohttp's connector wraps it in ``ClientConnectorError`` like
    any other failure to connect, and the dispatcher retries it like one.
    """

    def __init__(self, message: str) -> None:
        OSError.__init__(self, errno.EACCES, message)


class UnknownEventTypeError(BridgeError, ValueError):
    """A type or pattern that names nothing in the catalog (raised at registration)."""

    status = 400
    error_type = "invalid_request"

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        super().__init__(f"unknown event type {pattern!r}: not in the paybridge catalog")


class UnsafeURLError(BridgeError, ValueError):
    """An endpoint URL is not acceptable: bad syntax, or its host is or resolves to a forbidden
    address (at registration)."""

    status = 400
    error_type = "invalid_request"


class StoreError(BridgeError):
    """The store could not read or commit; ingress answers 503 so the provider retries."""

    status = 503
    error_type = "store_unavailable"
