"""Fixtures for the security tests: the bot on SQLite only, for tests where the database is not the point."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.clock import ManualClock
from sandbox.servers import LoopServer
from sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from tests.support import BotHarness
from wiring.app import create_app


@pytest.fixture
async def lite_bot(sqlite_url: str, slack: SlackStandin, clock: ManualClock) -> AsyncIterator[BotHarness]:
    app = create_app(make_settings(sqlite_url, slack), clock=clock)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=30) as http:
        yield BotHarness(server.url, app.state.svc, slack, http, app)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(db_url: str, slack: SlackStandin, **extra: str) -> dict[str, str]:
    """The environment of a real `incident-bot` process: ours minus any Slack/DB settings, plus the test's."""
    import os

    from tests.support import BOT_TOKEN, SIGNING_SECRET

    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "SERVER_SECRET"))
    }
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=f"{slack.base_url}/api/",
        DATABASE_URL=db_url,
    )
    env.update(extra)
    return env
