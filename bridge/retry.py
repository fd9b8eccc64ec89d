"""Outbound delivery retries as data: a frozen policy, pure delay functions, one classifier.

Nothing here sleeps, reads a clock or draws random numbers: the dispatcher passes ``now`` and a
``rand`` drawn from ``random.random()``, so every branch is testable without patching time.

Delivery semantics (README, "Delivery semantics"): 2xx is delivered; ``410 Gone``
disables the endpoint; anything else (1xx, 3xx — redirects are not followed —, other 4xx, 5xx,
timeouts, connection errors) is retried on the schedule, honouring a clamped ``Retry-After``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import StrEnum

__all__ = [
    "Outcome",
    "RetryPolicy",
    "classify",
    "parse_retry_after",
]

_DELTA_SECONDS = re.compile(r"[+-]?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry a failed delivery.

    ``schedule_s[i]`` is the delay after attempt ``i + 1`` failed (defaults: 5 s, 5 min, 30 min,
    2 h, 5 h, 10 h, 10 h); each delay is spread by ``±jitter`` (a fraction). After
    ``len(schedule_s) + 1`` attempts the delivery is dead. ``retry_after_max_s`` caps how far a
    receiver's ``Retry-After`` may push the next attempt.

    Raises:
        ValueError: (on construction) a negative or non-finite delay, ``jitter`` outside
            ``[0, 1)`` or a negative ``retry_after_max_s``.
    """

    schedule_s: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    jitter: float = 0.2
    retry_after_max_s: float = 3600

    def __post_init__(self) -> None:
        if any(not math.isfinite(d) or d < 0 for d in self.schedule_s):
            raise ValueError("retry schedule delays must be finite and >= 0")
        if not 0 <= self.jitter < 1:
            raise ValueError("retry jitter must be in [0, 1)")
        if not math.isfinite(self.retry_after_max_s) or self.retry_after_max_s < 0:
            raise ValueError("retry_after_max_s must be finite and >= 0")

    def next_delay_s(self, attempt: int, rand: float) -> float | None:
        """Delay before the next attempt, given ``attempt`` attempts made so far (1-based).

        ``rand`` in ``[0, 1)`` picks the point in the jitter band: 0 → ``-jitter``,
        0.5 → the scheduled delay, →1 → ``+jitter``. Returns None when the schedule is
        exhausted (the delivery is dead).

        Raises:
            ValueError: ``attempt < 1`` or ``rand`` outside ``[0, 1)``.
        """
        if attempt < 1:
            raise ValueError("attempt is 1-based: at least one attempt must have been made")
        if not 0 <= rand < 1:
            raise ValueError("rand must be in [0, 1)")
        if attempt > len(self.schedule_s):
            return None
        base = self.schedule_s[attempt - 1]
        return base * (1 + self.jitter * (2 * rand - 1))

    def delay_with_retry_after(
        self, attempt: int, rand: float, retry_after_s: float | None
    ) -> float | None:
        """Like :meth:`next_delay_s`, but never earlier than the receiver's ``Retry-After``.

        The result is ``max(schedule delay, min(retry_after_s, retry_after_max_s))``: the
        clamp bounds what a receiver can demand, it never shortens the schedule itself.
        Still None when the schedule is exhausted.

        Raises:
            ValueError: as :meth:`next_delay_s`.
        """
        delay = self.next_delay_s(attempt, rand)
        if delay is None or retry_after_s is None:
            return delay
        requested = min(max(retry_after_s, 0.0), self.retry_after_max_s)
        return max(delay, requested)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    ``now`` is the Unix time the response was received (for HTTP-dates). Negative values and
    dates in the past give ``0``; a missing or unparseable value gives None. Never raises.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return max(float(text), 0.0)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" or a zone-less date: HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now, 0.0)


class Outcome(StrEnum):
    """What one delivery attempt means for the delivery and its endpoint."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DISABLE_ENDPOINT = "disable_endpoint"


_GONE = 410


def classify(status: int | None, error: BaseException | None) -> Outcome:
    """Classify one attempt: the single place that decides delivered / retry / disable.

    A received status decides: 2xx → DELIVERED, 410 → DISABLE_ENDPOINT, any other status
    (1xx, 3xx since redirects are not followed, 4xx, 5xx) → RETRY. Without a status (timeout,
    connection error, refused by the SSRF guard: ``error`` set, or ``status`` None) → RETRY.
    ``error`` only documents why there is no status; it never turns a received 2xx into a retry.
    Never raises.
    """
    # ``error`` is deliberately not consulted: once a status line arrived, the receiver has
    # answered, and a later failure (e.g. reading the body) must not cause a duplicate delivery.
    if status is None:
        return Outcome.RETRY
    if 200 <= status <= 299:
        return Outcome.DELIVERED
    if status == _GONE:
        return Outcome.DISABLE_ENDPOINT
    return Outcome.RETRY
