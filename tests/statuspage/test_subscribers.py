"""Subscribers: signed webhook POSTs per published update, retried through the outbox and delivered once
across worker restarts; the Atlassian Statuspage mirror against a small local fake of its REST API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import select

from bot.clock import ManualClock
from bot.config import CONTENT_DIR, Settings
from bot.models import OutboxMessage
from bot.outbox import LEASE, _claim, outbox_tick
from bot.statuspage.deliver import add_subscriber, verify
from bot.worker import Worker
from sandbox.servers import LoopServer
from sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from tests.statuspage.support import COMMANDER, buttons, compose_and_preview, declare
from tests.support import BotHarness
from wiring.services import build_services


class Receiver:
    """A webhook endpoint: fails the first `fail_first` requests with 503, then records each delivery."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            self.requests.append((dict(request.headers), await request.body()))
            if len(self.requests) <= self.fail_first:
                return Response(status_code=503)
            return Response(status_code=204)

    def delivered(self) -> list[tuple[dict[str, str], bytes]]:
        return self.requests[self.fail_first :]


async def publish(bot: BotHarness, inc: Any, **kw: Any) -> None:
    preview = await compose_and_preview(bot, inc, **kw)
    await bot.action(
        "statuspage_publish",
        buttons(preview)["statuspage_publish"],
        user=COMMANDER,
        channel=inc.channel_id or "",
    )


async def rows(bot: BotHarness, kind: str) -> list[OutboxMessage]:
    async with bot.svc.db.session() as s:
        stmt = select(OutboxMessage).where(OutboxMessage.method == kind).order_by(OutboxMessage.id)
        return list((await s.execute(stmt)).scalars())


async def test_each_update_reaches_each_webhook_once_across_worker_restarts(
    bot: BotHarness, clock: ManualClock, settings: Settings
) -> None:
    receiver = Receiver(fail_first=1)
    async with LoopServer(receiver.app) as hook:
        sub_id, secret = await add_subscriber(bot.svc, f"{hook.url}/hook")
        inc = await declare(bot)
        await publish(bot, inc, title="Orders failing")  # first POST answers 503: the row waits to retry
        [row] = await rows(bot, "status_webhook")
        assert row.state == "pending" and row.attempts == 1 and row.last_error == "http_503"

        # Worker 1 retries after the backoff and delivers.
        w1_svc, _ = build_services(settings, clock=clock)
        clock.advance(seconds=10)
        await Worker(w1_svc, extra_ticks=[outbox_tick]).tick()
        assert len(receiver.delivered()) == 1

        # A second update; worker 1 claims its row and dies before sending (lease held, nothing sent).
        clock.advance(minutes=1)
        await _publish_without_delivery(bot, inc)
        clock.advance(seconds=10)
        claimed = await _claim(w1_svc, clock.now(), 10, None)
        assert "status_webhook" in [r.method for r in claimed]
        await w1_svc.aclose()

        # Worker 2 (a fresh process): nothing happens while the dead worker's lease runs; then it delivers once.
        w2_svc, _ = build_services(settings, clock=clock)
        w2 = Worker(w2_svc, extra_ticks=[outbox_tick])
        await w2.tick()
        assert len(receiver.delivered()) == 1
        clock.advance(seconds=2 * LEASE.total_seconds())
        for _ in range(3):
            await w2.tick()
            clock.advance(seconds=30)
        await w2_svc.aclose()

    got = receiver.delivered()
    assert len(got) == 2
    ids = [h["x-status-delivery"] for h, _ in got]
    assert len(set(ids)) == 2
    for headers, body in got:
        assert verify(secret, headers["x-status-signature"], body)
        assert not verify("wrong-secret", headers["x-status-signature"], body)
        payload = json.loads(body)
        assert payload["type"] == "status_update" and payload["incident"]["name"]
        assert inc.id not in body.decode() and "Factory orders failing" not in body.decode()
    assert all(r.state == "sent" for r in await rows(bot, "status_webhook"))
    assert sub_id


async def _publish_without_delivery(bot: BotHarness, inc: Any) -> None:
    """Publish a second update but keep its webhook row for the workers (as if the web process had died
    right after committing)."""
    from bot.statuspage import publish as sp
    from bot.statuspage.model import Draft

    draft = Draft("Orders recovering", "monitoring", "A fix is rolling out.", {"ordering": "degraded"})
    made = await sp.create_draft(bot.svc, inc.id, COMMANDER, draft)
    assert made.update_id is not None
    async with bot.svc.db.session() as s:
        result = await sp._publish_locked(bot.svc, s, made.update_id, COMMANDER, bot.svc.clock.now())
    assert result.state == "published"


async def test_a_rejecting_webhook_is_given_up_not_retried_forever(
    bot: BotHarness, clock: ManualClock
) -> None:
    app = FastAPI()
    hits: list[int] = []

    @app.post("/gone")
    async def gone() -> Response:
        hits.append(1)
        return Response(status_code=410)

    async with LoopServer(app) as hook:
        await add_subscriber(bot.svc, f"{hook.url}/gone")
        inc = await declare(bot)
        await publish(bot, inc)
        clock.advance(minutes=10)
        await outbox_tick(bot.svc)
    [row] = await rows(bot, "status_webhook")
    assert row.state == "failed" and row.last_error == "rejected_410" and hits == [1]
    events = [e.text for e in await bot.events(inc.id) if e.kind == "slack_failed"]
    assert events == ["Gave up on status_webhook: rejected_410"]
    with pytest.raises(ValueError):
        await add_subscriber(bot.svc, "file:///etc/passwd")


class FakeAtlassian:
    """The few Atlassian Statuspage REST endpoints we call (v1): incidents create/update, components PATCH."""

    def __init__(self, key: str) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.app = FastAPI()

        def auth(request: Request) -> Response | None:
            if request.headers.get("authorization") != f"OAuth {key}":
                return Response(status_code=401)
            return None

        @self.app.post("/v1/pages/{page}/incidents")
        async def create(page: str, request: Request) -> Response:
            if (bad := auth(request)) is not None:
                return bad
            body = await request.json()
            self.calls.append(("POST", request.url.path, body))
            return Response(
                json.dumps({"id": "atl-inc-1", **body["incident"]}),
                status_code=201,
                media_type="application/json",
            )

        @self.app.patch("/v1/pages/{page}/incidents/{incident}")
        async def update(page: str, incident: str, request: Request) -> Response:
            if (bad := auth(request)) is not None:
                return bad
            self.calls.append(("PATCH", request.url.path, await request.json()))
            return Response(json.dumps({"id": incident}), media_type="application/json")

        @self.app.patch("/v1/pages/{page}/components/{component}")
        async def component(page: str, component: str, request: Request) -> Response:
            if (bad := auth(request)) is not None:
                return bad
            self.calls.append(("PATCH", request.url.path, await request.json()))
            return Response(json.dumps({"id": component}), media_type="application/json")


async def test_atlassian_mirror_creates_then_updates(
    db_url: str, slack: SlackStandin, clock: ManualClock, tmp_path: Path
) -> None:
    yaml_file = tmp_path / "status.yaml"
    yaml_file.write_text(
        (CONTENT_DIR / "status.yaml")
        .read_text()
        .replace("atlassian_components: {}", "atlassian_components: {ordering: cmp-ordering}")
    )
    fake = FakeAtlassian("atl-key")
    async with LoopServer(fake.app) as api:
        settings = make_settings(
            db_url,
            slack,
            statuspage_file=yaml_file,
            statuspage_atlassian_url=f"{api.url}/v1/",
            statuspage_atlassian_page_id="page123",
            statuspage_atlassian_api_key="atl-key",
        )
        from wiring.app import create_app

        app = create_app(settings, clock=clock)
        async with LoopServer(app) as server, httpx.AsyncClient(timeout=30) as http:
            bot = BotHarness(server.url, app.state.svc, slack, http, app)
            inc = await declare(bot)
            await publish(bot, inc, title="Orders failing", states={"ordering": "major_outage"})
            clock.advance(minutes=5)
            await publish(
                bot,
                inc,
                title="Orders failing",
                status="resolved",
                message="Fixed.",
                states={"ordering": "operational"},
            )
    methods = [(m, p) for m, p, _ in fake.calls]
    assert methods == [
        ("POST", "/v1/pages/page123/incidents"),
        ("PATCH", "/v1/pages/page123/components/cmp-ordering"),
        ("PATCH", "/v1/pages/page123/incidents/atl-inc-1"),
        ("PATCH", "/v1/pages/page123/components/cmp-ordering"),
    ]
    created = fake.calls[0][2]["incident"]
    assert created["status"] == "investigating" and created["component_ids"] == ["cmp-ordering"]
    assert created["components"] == {"cmp-ordering": "major_outage"}
    assert fake.calls[1][2] == {"component": {"status": "major_outage"}}
    assert fake.calls[2][2]["incident"]["status"] == "resolved"
    assert fake.calls[3][2] == {"component": {"status": "operational"}}
