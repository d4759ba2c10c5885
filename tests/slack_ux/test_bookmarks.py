"""Each war room gets a bookmarks bar: its timeline & PIR (a signed link that works), then configured links."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.incidents.flows import IncidentFlows
from sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from tests.support import BotHarness


@pytest.fixture
def settings(db_url: str, slack: SlackStandin) -> Settings:
    links = "Grafana=https://grafana.example/d/pizza, Runbook=https://wiki.example/runbook, junk=ftp://x"
    return make_settings(db_url, slack, war_room_links=links)


async def test_war_room_bookmarks(bot: BotHarness) -> None:
    await bot.command("declare P1 Orders failing")
    [inc] = await bot.incidents()
    assert inc.channel_id
    marks = bot.slack.bookmarks[inc.channel_id]
    assert [m["title"] for m in marks] == ["Timeline & PIR", "Grafana", "Runbook"]  # ftp:// is not a link
    pir = marks[0]["link"]
    assert pir.startswith(f"{bot.svc.settings.public_url}/incidents/{inc.id}?token=")
    page = await bot.http.get(pir.replace(bot.svc.settings.public_url, bot.url))
    assert page.status_code == 200 and inc.id in page.text

    await IncidentFlows(bot.svc).provision(inc.id)  # a retried provisioning adds nothing twice
    assert len(bot.slack.bookmarks[inc.channel_id]) == 3
