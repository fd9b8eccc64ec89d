"""Issue #4 acceptance, as it will be checked: a receiver no developer wrote registers through
the API and through YAML, verifies every request with the ``standardwebhooks`` library, fails
for a while, then recovers. Every matching event must arrive, correctly signed, with a stable
``webhook-id``, and nothing that does not match its ``enabled_events``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from pytest_aiohttp import AiohttpClient
from standardwebhooks import Webhook, WebhookVerificationError

from bridge.catalog import matches_any
from bridge.service import Bridge
from tests.conftest import admin_headers, make_config, post_stripe, stripe_event
from tests.receivers import Receiver, subscription, wait_until

YAML_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
YAML_EVENTS = ["customer.subscription.started", "checkout.session.expired"]
API_EVENTS = ["customer.subscription.*"]
FAILURES = 5  # requests answered 503 before the receiver "recovers"


@dataclass(frozen=True)
class Seen:
    path: str
    webhook_id: str
    verified: bool
    answered: int
    body: bytes


class IndependentReceiver:
    """What a third party would write: look up the secret for the path, verify with
    ``standardwebhooks``, answer 401 when it does not verify. Fails for a while first."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.seen: list[Seen] = []

    async def __call__(self, _index: int, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            Webhook(self.secrets[request.path]).verify(body, dict(request.headers))
            verified = True
        except (WebhookVerificationError, KeyError, ValueError):
            verified = False
        status = 401 if not verified else 503 if len(self.seen) < FAILURES else 200
        webhook_id = request.headers.get("webhook-id", "")
        self.seen.append(Seen(request.path, webhook_id, verified, status, body))
        return web.Response(status=status)

    def delivered(self, path: str) -> set[str]:
        return {s.webhook_id for s in self.seen if s.path == path and s.answered == 200}


async def _post(client: Any, event: dict[str, Any]) -> None:
    status, body = await post_stripe(client, event)
    assert status == 200, body


async def test_dispatch_acceptance_independent_receiver_gets_every_matching_event(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    script = IndependentReceiver()
    rcv = Receiver(script)
    await rcv.start()
    try:
        yaml = (
            "delivery:\n  schedule_s: [0.2, 0.4, 0.8, 1.6, 3.2]\n"
            "endpoints:\n"
            f"  - id: we_yaml\n    url: {rcv.url('/yaml')}\n"
            f"    enabled_events: [{', '.join(YAML_EVENTS)}]\n"
            f"    secret: {YAML_SECRET}\n"
        )
        bridge = Bridge(make_config(tmp_path, yaml))
        client = await aiohttp_client(bridge.web_app())
        script.secrets["/yaml"] = YAML_SECRET
        resp = await client.post(
            "/api/webhook-endpoints",
            json={"url": rcv.url("/api"), "enabled_events": API_EVENTS},
            headers=admin_headers(),
        )
        assert resp.status == 200
        script.secrets["/api"] = (await resp.json())["secret"]

        for i in range(3):
            await _post(
                client, stripe_event("customer.subscription.created", subscription(f"s{i}"))
            )
        await _post(
            client, stripe_event("customer.subscription.deleted", subscription("s0", "canceled"))
        )
        session = {"id": "cs_acc", "object": "checkout.session", "status": "expired"}
        await _post(client, stripe_event("checkout.session.expired", session))

        resp = await client.get("/api/events?size=100", headers=admin_headers())
        events = (await resp.json())["list"]
        want_yaml = {e["id"] for e in events if matches_any(YAML_EVENTS, e["type"])}
        want_api = {e["id"] for e in events if matches_any(API_EVENTS, e["type"])}
        assert (len(events), len(want_yaml), len(want_api)) == (8, 4, 7)

        async def settled() -> bool:
            done = script.delivered("/yaml") >= want_yaml and script.delivered("/api") >= want_api
            return done and (await bridge.store.counts())["pending"] == 0

        await wait_until(settled, "every matching event delivered and nothing pending")
        assert bridge.dispatcher is not None
        await bridge.dispatcher.wait_idle()
    finally:
        await rcv.close()

    assert all(s.verified for s in script.seen), "every request verifies with standardwebhooks"
    assert sum(s.answered == 503 for s in script.seen) == FAILURES  # it did fail for a while
    assert script.delivered("/yaml") == want_yaml  # nothing outside enabled_events
    assert script.delivered("/api") == want_api
    assert {s.webhook_id for s in script.seen if s.path == "/yaml"} == want_yaml
    assert {s.webhook_id for s in script.seen if s.path == "/api"} == want_api
    by_id: dict[tuple[str, str], set[bytes]] = {}
    for s in script.seen:
        by_id.setdefault((s.path, s.webhook_id), set()).add(s.body)
        assert json.loads(s.body)["id"] == s.webhook_id
    assert all(len(bodies) == 1 for bodies in by_id.values())  # retries resend the same event
    failed = {(s.path, s.webhook_id) for s in script.seen if s.answered == 503}
    retried = {(s.path, s.webhook_id) for s in script.seen if s.answered == 200}
    assert failed <= retried  # each failed delivery came back with the same webhook-id
