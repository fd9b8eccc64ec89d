"""The overview page: today's counts, the oldest pending delivery, the 24-hour chart."""

from __future__ import annotations

from aiohttp import web

from bridge.console.chart import activity_chart
from bridge.console.plumbing import PREFIX, STATE_KEY, page, render

__all__ = ["add_overview_routes", "day_start"]

_HOUR_S = 3600.0
_BUCKETS = 24


def day_start(now: float) -> float:
    """Midnight UTC of the day ``now`` falls in."""
    return now - now % 86400


def hour_start(now: float) -> float:
    return now - now % _HOUR_S


@page
async def overview(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    store = state.bridge.store
    now = state.now()
    stats = await store.overview(since=day_start(now))
    endpoints = await store.list_subscribers(kind="endpoint", limit=1000)
    disabled = sum(1 for s in endpoints.items if s.status == "disabled")
    since = hour_start(now) - (_BUCKETS - 1) * _HOUR_S
    buckets = await store.activity(since=since, bucket_s=_HOUR_S, buckets=_BUCKETS)
    chart = activity_chart(
        [b.start for b in buckets],
        [b.events for b in buckets],
        [b.failed_attempts for b in buckets],
    )
    oldest_age = None if stats.oldest_pending_at is None else now - stats.oldest_pending_at
    return render(
        request,
        "overview.html",
        {
            "title": "Overview",
            "nav": "overview",
            "stats": stats,
            "disabled": disabled,
            "endpoint_count": endpoints.count,
            "oldest_age": oldest_age,
            "chart": chart,
        },
    )


def add_overview_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX + "/", overview, name="console.overview")
