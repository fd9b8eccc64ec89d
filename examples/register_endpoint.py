"""A remote service registers its webhook endpoint with paybridge, Payment Kit style:
list the endpoints, update the first one, or create one when there is none (the
``ensureWebhooks`` pattern of Payment Kit's docs), so running it again changes nothing twice.

Run it:  python examples/register_endpoint.py http://127.0.0.1:8080 dev-admin-key \\
             https://shop.example.com/api/payment/callback
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp

ENABLED_EVENTS = ["customer.subscription.started", "customer.subscription.renewed"]


async def ensure_webhooks(
    base_url: str, admin_key: str, callback_url: str, enabled_events: list[str] = ENABLED_EVENTS
) -> dict[str, Any]:
    """Make sure exactly this service's endpoint exists with these events; returns it. The
    create response carries the endpoint's signing ``secret`` (shown only then): keep it."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    api = f"{base_url.rstrip('/')}/api/webhook-endpoints"
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(api, params={"page": "1", "size": "100"}) as resp:
            resp.raise_for_status()
            listed = await resp.json()
        mine = [e for e in listed["list"] if e["created_via"] == "api"]
        body = {"url": callback_url, "enabled_events": enabled_events}
        if mine:
            async with session.put(f"{api}/{mine[0]['id']}", json=body) as resp:
                resp.raise_for_status()
                endpoint: dict[str, Any] = await resp.json()
                print("webhooks updated", endpoint["id"])
                return endpoint
        async with session.post(api, json=body) as resp:
            resp.raise_for_status()
            endpoint = await resp.json()
            print("webhooks created", endpoint["id"])
            return endpoint


if __name__ == "__main__":
    base, key, url = sys.argv[1:4]
    asyncio.run(ensure_webhooks(base, key, url))
