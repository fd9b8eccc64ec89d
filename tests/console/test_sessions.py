"""Console sessions: expiry on the injected time, sign-out, the cap, constant-time checks."""

from __future__ import annotations

from bridge.console.sessions import SessionStore, SigninThrottle, key_matches, tokens_equal


def test_session_lives_until_its_expiry() -> None:
    store = SessionStore(ttl_s=100)
    token, session = store.create(now=1000.0)
    assert store.get(token, now=1099.0) == session
    assert store.get(token, now=1100.0) is None
    assert len(store) == 0


def test_unknown_or_missing_token_has_no_session() -> None:
    store = SessionStore()
    store.create(now=0.0)
    assert store.get("not-a-token", now=1.0) is None
    assert store.get(None, now=1.0) is None
    assert store.get("", now=1.0) is None


def test_end_forgets_the_session() -> None:
    store = SessionStore()
    token, _ = store.create(now=0.0)
    store.end(token)
    store.end(token)  # twice is fine
    store.end(None)
    assert store.get(token, now=1.0) is None


def test_tokens_are_random_and_not_kept() -> None:
    store = SessionStore()
    a, sa = store.create(now=0.0)
    b, sb = store.create(now=0.0)
    assert a != b and sa.csrf != sb.csrf and len(a) >= 40
    assert a not in repr(store.__dict__) and sa.csrf not in repr(sa)


def test_oldest_sessions_go_past_the_cap() -> None:
    store = SessionStore(max_sessions=2)
    first, _ = store.create(now=0.0)
    second, _ = store.create(now=1.0)
    third, _ = store.create(now=2.0)
    assert store.get(first, now=3.0) is None
    assert store.get(second, now=3.0) is not None and store.get(third, now=3.0) is not None


def test_create_drops_expired_sessions() -> None:
    store = SessionStore(ttl_s=10)
    store.create(now=0.0)
    store.create(now=20.0)
    assert len(store) == 1


def test_key_matches_any_configured_key_and_never_empty() -> None:
    keys = [b"first-key", b"second-key"]
    assert key_matches("second-key", keys)
    assert not key_matches("second-ke", keys)
    assert not key_matches("", keys)
    assert not key_matches("", [b""])


def test_tokens_equal() -> None:
    assert tokens_equal("abc", "abc")
    assert not tokens_equal("abd", "abc")
    assert not tokens_equal(None, "abc")
    assert not tokens_equal("", "")


def test_throttle_refuses_after_repeated_failures_within_the_window() -> None:
    throttle = SigninThrottle(max_failures=3, window_s=60)
    for t in (0.0, 1.0, 2.0):
        assert throttle.allowed("10.0.0.1", t)
        throttle.failed("10.0.0.1", t)
    assert not throttle.allowed("10.0.0.1", 3.0)
    assert throttle.allowed("10.0.0.2", 3.0)  # per client
    assert throttle.allowed("10.0.0.1", 61.0)  # the first failure left the window


def test_throttle_forgets_the_oldest_clients() -> None:
    throttle = SigninThrottle(max_failures=1, max_clients=2)
    for client in ("a", "b", "c"):
        throttle.failed(client, 0.0)
    assert throttle.allowed("a", 1.0) and not throttle.allowed("c", 1.0)
