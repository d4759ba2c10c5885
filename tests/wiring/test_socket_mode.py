"""Socket Mode hands the bot the payload Slack decoded: the front door's shape checks and text cleaning
(bot/ingress.py) run before Bolt there too (wiring.socket_mode.FrontDoorSocketModeHandler), so what reaches
the flows is the same as over HTTP. The envelopes go through the handler's real `handle`; only the WebSocket
is replaced by a recorder of the acknowledgements it would send."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.context import Services
from bot.models import Incident, TimelineEvent
from handlers.app import build_bolt_app
from sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from wiring.services import build_services
from wiring.socket_mode import FrontDoorSocketModeHandler


class Acks:
    """Stands in for the WebSocket: records the envelope acknowledgements."""

    def __init__(self) -> None:
        self.sent: list[SocketModeResponse] = []
        self.logger = logging.getLogger("test.socket")

    async def send_socket_mode_response(self, response: SocketModeResponse) -> None:
        self.sent.append(response)


@pytest.fixture
async def socket_app(
    db_url: str, slack: SlackStandin, clock: ManualClock
) -> AsyncIterator[tuple[FrontDoorSocketModeHandler, Services]]:
    async with aiohttp.ClientSession() as http:
        opened = build_services(make_settings(db_url, slack), clock=clock, session=http)
        try:
            bolt = build_bolt_app(opened.svc, opened.client)
            handler = FrontDoorSocketModeHandler(bolt, "xapp-1-test", "/incident")
            yield handler, opened.svc
            await handler.client.close()  # never connected: this closes its HTTP session
        finally:
            await opened.svc.tasks.drain(timeout=30)
            await opened.svc.db.dispose()


def command(slack: SlackStandin, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": "T0STANDIN",
        "channel_id": "CGENERAL",
        "channel_name": "general",
        "user_id": "UDECLARER",
        "user_name": "udeclarer",
        "command": "/incident",
        "text": text,
        "response_url": slack.new_response_url(),
        "trigger_id": f"standin-{uuid.uuid4().hex}",
        "api_app_id": "A0TEST",
        **extra,
    }


async def dispatch(handler: FrontDoorSocketModeHandler, body: Any) -> list[SocketModeResponse]:
    kind = "slash_commands" if isinstance(body, dict) and "command" in body else "interactive"
    if isinstance(body, dict) and body.get("type") == "event_callback":
        kind = "events_api"
    acks = Acks()
    await handler.handle(
        acks, SocketModeRequest(type=kind, envelope_id=f"env-{uuid.uuid4().hex}", payload=body)
    )
    return acks.sent


async def count(svc: Services, model: Any) -> int:
    async with svc.db.session() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def test_a_socket_mode_declare_is_cleaned_like_an_http_one(
    socket_app: tuple[FrontDoorSocketModeHandler, Services], slack: SlackStandin
) -> None:
    handler, svc = socket_app
    [ack] = await dispatch(handler, command(slack, "declare P1 Orders\x00 failing \ud800now"))
    assert ack.envelope_id.startswith("env-")
    await svc.tasks.drain(timeout=30)
    async with svc.db.session() as s:
        [inc] = list((await s.execute(select(Incident))).scalars())
    assert inc.summary == "Orders failing now"  # NUL and the lone surrogate dropped, as at the HTTP door


@pytest.mark.parametrize(
    "body",
    [
        {"type": "block_actions", "user": {"id": "UDECLARER"}, "actions": "ack_incident"},
        {"type": "block_actions", "user": "UDECLARER", "actions": [{"action_id": "ack_incident"}]},
        {"type": "view_submission", "user": {"id": "UDECLARER"}, "view": {"state": {}}},
        {"type": "event_callback", "event": "reaction_added"},
    ],
    ids=["actions-not-a-list", "user-not-an-object", "view-without-callback", "event-not-an-object"],
)
async def test_malformed_socket_mode_payloads_are_acked_and_dropped(
    socket_app: tuple[FrontDoorSocketModeHandler, Services], body: Any, caplog: pytest.LogCaptureFixture
) -> None:
    handler, svc = socket_app
    [ack] = await dispatch(handler, body)
    assert ack.payload is None  # acked, empty: Slack must not redeliver what is never taken
    assert "refused socket mode payload: 400" in caplog.text
    assert await count(svc, TimelineEvent) == 0 and await count(svc, Incident) == 0


async def test_another_apps_command_is_refused(
    socket_app: tuple[FrontDoorSocketModeHandler, Services],
    slack: SlackStandin,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, svc = socket_app
    [ack] = await dispatch(handler, command(slack, "declare P1 x", command="/other"))
    assert ack.payload is None and "refused socket mode payload: 404" in caplog.text
    assert await count(svc, Incident) == 0
