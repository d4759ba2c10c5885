"""Stakeholder announcements: a Join war room button, and the statuses stakeholders of a P0/P1 care about."""

from __future__ import annotations

import pytest

from bot.config import Settings
from sandbox.slack_standin import Channel, SlackStandin
from tests.conftest import make_settings
from tests.support import BotHarness


@pytest.fixture
def announce(slack: SlackStandin) -> Channel:
    return slack.add_channel("incident-announcements", members=["UBOT"])


@pytest.fixture
def settings(db_url: str, slack: SlackStandin, announce: Channel) -> Settings:
    return make_settings(db_url, slack, announce_channel=announce.id)


async def test_join_war_room_from_the_announcement(bot: BotHarness, announce: Channel) -> None:
    await bot.command("declare P1 Orders failing")
    [inc] = await bot.incidents()
    [line] = bot.slack.messages[announce.id]
    assert "declared" in line.text and inc.id in line.text
    [button] = [e for b in line.blocks or [] if b["type"] == "actions" for e in b["elements"]]
    assert (button["action_id"], button["value"]) == ("join_war_room", inc.id)

    assert inc.channel_id
    assert "UOUTSIDER" not in bot.slack.channels[inc.channel_id].members
    await bot.action("join_war_room", inc.id, user="UOUTSIDER", channel=announce.id)
    assert "UOUTSIDER" in bot.slack.channels[inc.channel_id].members
    await bot.action("join_war_room", inc.id, user="UOUTSIDER", channel=announce.id)  # twice: still fine
    answers = [str(r.get("text")) for rs in bot.slack.responses.values() for r in rs]
    assert sum("You are in" in a for a in answers) == 2


async def test_identified_and_monitoring_are_announced_for_p0_p1_only(
    bot: BotHarness, announce: Channel
) -> None:
    await bot.command("declare P1 Orders failing")
    await bot.command("declare P2 Menu slow", user="UOTHER")
    p1, p2 = await bot.incidents()
    for inc, user in ((p1, "UDECLARER"), (p2, "UOTHER")):
        for status in ("INVESTIGATING", "IDENTIFIED", "MONITORING"):
            await bot.command(f"status {status}", user=user, channel=inc.channel_id or "")
    lines = [m.text for m in bot.slack.messages[announce.id]]
    assert sum(p1.id in t and "is IDENTIFIED" in t for t in lines) == 1
    assert sum(p1.id in t and "is MONITORING" in t for t in lines) == 1
    assert not any(p2.id in t and " is " in t for t in lines)  # a P2's progress is the war room's business
    assert not any("is INVESTIGATING" in t for t in lines)


async def test_declaring_in_a_channel_tells_that_channel(bot: BotHarness) -> None:
    _resp, url = await bot.command("declare P1 Orders failing <!channel>", channel="CGENERAL")
    [inc] = await bot.incidents()
    replies = bot.replies(url)
    private = [r for r in replies if r.get("response_type") != "in_channel"]
    public = [r for r in replies if r.get("response_type") == "in_channel"]
    assert private and "declared" in private[-1]["text"]  # the declarer's own answer
    [said] = public
    assert inc.id in said["text"] and f"<#{inc.channel_id}>" in said["text"]
    assert "<!channel>" not in str(said) and "&lt;!channel&gt;" in said["text"]  # nobody is pinged
    assert any(e.get("action_id") == "join_war_room" for b in said["blocks"] for e in b.get("elements", []))
