"""Two 'processes' on one database (own pools, own rate gates) sharing the test's manual clock: the lease
tests hold one's Slack call while the other tries to take the work over."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.clock import ManualClock
from bot.context import Services
from sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from wiring.services import build_services


@pytest.fixture
async def two(
    db_url: str, slack: SlackStandin, clock: ManualClock
) -> AsyncIterator[tuple[Services, Services]]:
    settings = make_settings(db_url, slack)
    async with aiohttp.ClientSession() as http:
        a = build_services(settings, clock=clock, session=http).svc
        b = build_services(settings, clock=clock, session=http).svc
        try:
            yield a, b
        finally:
            await a.db.dispose()
            await b.db.dispose()
