"""A local Stripe-compatible Events API (``GET /v1/events``) for reconcile tests: Stripe's list
semantics (newest first, ``created[gte]``, ``limit``, ``starting_after``, ``has_more``), the
Bearer key checked, and a switch that makes it fail like Stripe does (500 with an error body)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["EventsApi"]

KEY = "sk_test_local_events_api"


@dataclass
class EventsApi:
    """Holds ``events``; records each list call's query; ``fail_from_call`` (1-based) makes that
    call and every later one answer 500."""

    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, str]] = field(default_factory=list)
    fail_from_call: int | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/events", self._list)
        return app

    async def _list(self, request: web.Request) -> web.Response:
        self.calls.append(dict(request.query))
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        if self.fail_from_call is not None and len(self.calls) >= self.fail_from_call:
            return _error(500, "api_error", "An unknown error occurred")
        q = request.query
        gte = int(q.get("created[gte]", "0"))
        limit = int(q.get("limit", "10"))
        newest_first = sorted(
            (e for e in self.events if e["created"] >= gte),
            key=lambda e: (e["created"], e["id"]),
            reverse=True,
        )
        after = q.get("starting_after")
        if after is not None:
            ids = [e["id"] for e in newest_first]
            newest_first = newest_first[ids.index(after) + 1 :]
        page = newest_first[:limit]
        return web.json_response(
            {
                "object": "list",
                "data": page,
                "has_more": len(newest_first) > limit,
                "url": "/v1/events",
            }
        )


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)
