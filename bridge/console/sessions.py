"""Console sign-in sessions and CSRF tokens.

A session is a random 32-byte cookie token; the server keeps only its SHA-256 (a leaked
memory dump or log line holds nothing that signs in), its expiry and its CSRF token. Sessions
live in this process: a restart signs every operator out, which is the safe direction.
Every secret comparison is constant-time (:func:`hmac.compare_digest`), and an admin key is
compared against every configured key so the timing tells nothing about which one matched.
Nothing here reads a clock: callers pass ``now``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Session", "SessionStore", "SigninThrottle", "key_matches", "tokens_equal"]

SESSION_TTL_S = 8 * 3600.0
MAX_SESSIONS = 1000


def tokens_equal(given: str | None, expected: str) -> bool:
    """Whether ``given`` is ``expected``, in constant time; a missing value never matches."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def key_matches(given: str, keys: Sequence[bytes]) -> bool:
    """Whether ``given`` is one of the admin ``keys``; every key is compared."""
    raw = given.encode()
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(raw, key)
    return ok and bool(raw)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in operator: when it expires and the CSRF token its forms carry."""

    expires_at: float
    csrf: str

    def __repr__(self) -> str:  # the CSRF token is a secret too
        return f"Session(expires_at={self.expires_at!r})"


class SessionStore:
    """Sessions of this process, by token digest; the oldest are dropped past ``max_sessions``."""

    def __init__(self, *, ttl_s: float = SESSION_TTL_S, max_sessions: int = MAX_SESSIONS) -> None:
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._by_digest: OrderedDict[str, Session] = OrderedDict()

    def create(self, now: float) -> tuple[str, Session]:
        """A new session: ``(cookie token, session)``. The token is returned once, never kept."""
        self._expire(now)
        token = secrets.token_urlsafe(32)
        session = Session(expires_at=now + self.ttl_s, csrf=secrets.token_urlsafe(32))
        self._by_digest[_digest(token)] = session
        while len(self._by_digest) > self.max_sessions:
            self._by_digest.popitem(last=False)
        return token, session

    def get(self, token: str | None, now: float) -> Session | None:
        """The live session of cookie ``token``, or None (unknown, expired or no cookie)."""
        if not token:
            return None
        digest = _digest(token)
        session = self._by_digest.get(digest)
        if session is None:
            return None
        if session.expires_at <= now:
            del self._by_digest[digest]
            return None
        return session

    def end(self, token: str | None) -> None:
        """Sign out: forget the session of ``token`` (no-op when unknown)."""
        if token:
            self._by_digest.pop(_digest(token), None)

    def __len__(self) -> int:
        return len(self._by_digest)

    def _expire(self, now: float) -> None:
        dead = [d for d, s in self._by_digest.items() if s.expires_at <= now]
        for d in dead:
            del self._by_digest[d]


class SigninThrottle:
    """Refuses sign-in from a client after ``max_failures`` wrong keys within ``window_s``
    (guessing an admin key through the form is then slow); forgets the oldest clients past
    ``max_clients``."""

    def __init__(
        self, *, max_failures: int = 10, window_s: float = 60.0, max_clients: int = 10_000
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def allowed(self, client: str, now: float) -> bool:
        recent = [t for t in self._failures.get(client, ()) if t > now - self.window_s]
        return len(recent) < self.max_failures

    def failed(self, client: str, now: float) -> None:
        times = [t for t in self._failures.pop(client, []) if t > now - self.window_s]
        self._failures[client] = [*times, now]
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)
