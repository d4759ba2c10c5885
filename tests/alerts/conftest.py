"""The bot with alert credentials configured (Basic for Alertmanager, a bearer token for Grafana)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.clock import ManualClock
from bot.config import Settings
from sandbox.servers import LoopServer
from sandbox.slack_standin import SlackStandin
from tests.alerts.payloads import AM_PASSWORD, AM_USER, GRAFANA_TOKEN
from tests.conftest import make_settings
from tests.support import BotHarness
from wiring.app import create_app


@pytest.fixture
def settings(db_url: str, slack: SlackStandin) -> Settings:
    return make_settings(
        db_url,
        slack,
        alertmanager_credentials=f"{AM_USER}:{AM_PASSWORD}",
        grafana_credentials=f"Bearer {GRAFANA_TOKEN}",
    )


@pytest.fixture
async def bot(settings: Settings, slack: SlackStandin, clock: ManualClock) -> AsyncIterator[BotHarness]:
    app = create_app(settings, clock=clock)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=30) as http:
        yield BotHarness(server.url, app.state.svc, slack, http, app)
