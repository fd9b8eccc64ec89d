"""Tests for bridge.retry: the pure retry policy and the outcome classifier."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import aiohttp
import pytest

from bridge.retry import Outcome, RetryPolicy, classify, parse_retry_after

DEFAULT_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
NOW = 1_700_000_000.0


def test_retry_policy_defaults_match_design() -> None:
    policy = RetryPolicy()
    assert policy.schedule_s == DEFAULT_SCHEDULE
    assert policy.jitter == 0.2
    assert policy.retry_after_max_s == 3600


@pytest.mark.parametrize("attempt", range(1, 8))
def test_retry_policy_next_delay_s_stays_within_jitter_band(attempt: int) -> None:
    policy = RetryPolicy()
    base = DEFAULT_SCHEDULE[attempt - 1]
    low = policy.next_delay_s(attempt, 0.0)
    mid = policy.next_delay_s(attempt, 0.5)
    high = policy.next_delay_s(attempt, 0.999999)
    assert low == pytest.approx(base * 0.8)
    assert mid == pytest.approx(base)
    assert high is not None and base < high <= base * 1.2


def test_retry_policy_next_delay_s_first_retry_is_about_five_seconds() -> None:
    assert RetryPolicy().next_delay_s(1, 0.5) == pytest.approx(5.0)


def test_retry_policy_next_delay_s_without_jitter_is_exact() -> None:
    policy = RetryPolicy(schedule_s=(1, 2), jitter=0)
    assert [policy.next_delay_s(1, 0.9), policy.next_delay_s(2, 0.1)] == [1, 2]


def test_retry_policy_next_delay_s_is_none_when_schedule_exhausted() -> None:
    policy = RetryPolicy()
    assert policy.next_delay_s(7, 0.5) is not None
    assert policy.next_delay_s(8, 0.5) is None
    assert policy.next_delay_s(100, 0.5) is None
    assert RetryPolicy(schedule_s=()).next_delay_s(1, 0.5) is None


@pytest.mark.parametrize(("attempt", "rand"), [(0, 0.5), (-1, 0.5), (1, -0.1), (1, 1.0)])
def test_retry_policy_next_delay_s_rejects_bad_arguments(attempt: int, rand: float) -> None:
    with pytest.raises(ValueError):
        RetryPolicy().next_delay_s(attempt, rand)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"schedule_s": (5, -1)},
        {"schedule_s": (float("inf"),)},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"retry_after_max_s": -1},
    ],
)
def test_retry_policy_rejects_invalid_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_retry_policy_is_frozen() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.jitter = 0.5  # type: ignore[misc]


def test_retry_policy_delay_with_retry_after_uses_longer_retry_after() -> None:
    assert RetryPolicy().delay_with_retry_after(1, 0.5, 120) == 120


def test_retry_policy_delay_with_retry_after_keeps_longer_schedule() -> None:
    assert RetryPolicy().delay_with_retry_after(2, 0.5, 10) == pytest.approx(300)


def test_retry_policy_delay_with_retry_after_clamps_retry_after() -> None:
    assert RetryPolicy().delay_with_retry_after(1, 0.5, 10**9) == 3600


def test_retry_policy_delay_with_retry_after_clamp_never_shortens_schedule() -> None:
    # Attempt 5 is scheduled at 5 h, longer than the 1 h Retry-After cap.
    assert RetryPolicy().delay_with_retry_after(5, 0.5, 10**9) == pytest.approx(18000)


def test_retry_policy_delay_with_retry_after_none_means_schedule() -> None:
    policy = RetryPolicy()
    assert policy.delay_with_retry_after(3, 0.25, None) == policy.next_delay_s(3, 0.25)


def test_retry_policy_delay_with_retry_after_negative_is_ignored() -> None:
    assert RetryPolicy().delay_with_retry_after(1, 0.5, -50) == pytest.approx(5)


def test_retry_policy_delay_with_retry_after_is_none_when_exhausted() -> None:
    assert RetryPolicy().delay_with_retry_after(8, 0.5, 60) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("-5", 0.0), ("1.5", 1.5), ("+3", 3.0)],
)
def test_parse_retry_after_delta_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_http_date_in_future() -> None:
    when = datetime.fromtimestamp(NOW + 90, tz=UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == 90


def test_parse_retry_after_rfc_example_date() -> None:
    # RFC 9110 example; 1999-12-31T23:59:59Z is Unix 946684799.
    assert parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", 946684799 - 30) == 30


def test_parse_retry_after_http_date_without_zone_is_gmt() -> None:
    assert parse_retry_after("Fri, 31 Dec 1999 23:59:59 -0000", 946684799 - 30) == 30


def test_parse_retry_after_http_date_in_past_is_zero() -> None:
    assert parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "1e3", "nan", "Fri, 99 Foo", "12 apples"])
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_classify_2xx_is_delivered(status: int) -> None:
    assert classify(status, None) is Outcome.DELIVERED


def test_classify_410_disables_endpoint() -> None:
    assert classify(410, None) is Outcome.DISABLE_ENDPOINT


@pytest.mark.parametrize(
    "status", [100, 101, 199, 300, 301, 302, 307, 308, 400, 401, 403, 404, 408, 429, 500, 502, 503]
)
def test_classify_other_statuses_retry(status: int) -> None:
    assert classify(status, None) is Outcome.RETRY


@pytest.mark.parametrize(
    "error",
    [
        TimeoutError(),
        TimeoutError(),
        ConnectionRefusedError(),
        aiohttp.ServerDisconnectedError(),
        OSError("connection reset"),
    ],
)
def test_classify_transport_errors_retry(error: BaseException) -> None:
    assert classify(None, error) is Outcome.RETRY


def test_classify_no_status_and_no_error_retries() -> None:
    assert classify(None, None) is Outcome.RETRY


def test_classify_received_2xx_wins_over_later_error() -> None:
    assert classify(200, TimeoutError()) is Outcome.DELIVERED


def test_outcome_values_are_stable_strings() -> None:
    assert [str(o) for o in Outcome] == ["delivered", "retry", "disable_endpoint"]
