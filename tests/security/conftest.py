"""Fixtures for the security tests: the bot on SQLite only, for tests where the database is not the point."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.clock import ManualClock
from bot.main import create_app
from bot.sandbox.servers import LoopServer
from bot.sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from tests.support import BotHarness


@pytest.fixture
async def lite_bot(sqlite_url: str, slack: SlackStandin, clock: ManualClock) -> AsyncIterator[BotHarness]:
    app = create_app(make_settings(sqlite_url, slack), clock=clock)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=30) as http:
        yield BotHarness(server.url, app.state.svc, slack, http, app)
