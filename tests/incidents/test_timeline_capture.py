"""Timeline capture from Slack events: a 📌 on a war-room message puts it on the timeline once; taking the
📌 off marks it removed; joins are recorded. Signed Events API requests in, rows in SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.models import Incident, TimelineEvent
from tests.support import BotHarness


async def declare(bot: BotHarness) -> Incident:
    await bot.command("declare P1 Factory orders failing", user="UDECLARER")
    [inc] = await bot.incidents()
    assert inc.channel_id
    return inc


def reaction(
    kind: str, channel: str, ts: str, user: str, name: str = "pushpin", item: str = "message"
) -> dict:
    return {
        "type": kind,
        "user": user,
        "reaction": name,
        "item_user": "UDECLARER",
        "item": {"type": item, "channel": channel, "ts": ts},
        "event_ts": ts,
    }


async def pinned(bot: BotHarness, inc: Incident) -> list[TimelineEvent]:
    return [e for e in await bot.events(inc.id) if e.kind == "pinned"]


async def test_pushpin_adds_the_message_once_and_unpinning_marks_it_removed(bot: BotHarness) -> None:
    inc = await declare(bot)
    channel = inc.channel_id or ""
    msg = bot.slack.add_message(channel, "UDECLARER", "Factory returns 503 on /api/order since 11:58 🍕")

    resp = await bot.event(reaction("reaction_added", channel, msg.ts, "UDECLARER"), event_id="EvPin1")
    assert resp.status_code == 200
    [entry] = await pinned(bot, inc)
    assert entry.text == "Factory returns 503 on /api/order since 11:58 🍕"
    assert entry.actor == "UDECLARER" and entry.data["author"] == "UDECLARER"
    assert entry.at == datetime.fromtimestamp(float(msg.ts), UTC)  # when it was said
    assert entry.data["permalink"].endswith(f"/archives/{channel}/p{msg.ts.replace('.', '')}")
    [history] = bot.slack.calls_to("conversations.history", ok=True)
    assert history.args["latest"] == msg.ts and history.args["limit"] in (1, "1")
    assert history.args["inclusive"] in (True, "true", "1")

    # Slack's retry of the same event, and a second 📌 by someone else, add nothing.
    await bot.event(reaction("reaction_added", channel, msg.ts, "UDECLARER"), event_id="EvPin1")
    await bot.event(reaction("reaction_added", channel, msg.ts, "U01PRIMARY"), event_id="EvPin2")
    [entry] = await pinned(bot, inc)
    assert entry.data["pinned_by"] == ["UDECLARER", "U01PRIMARY"]
    assert len(bot.slack.calls_to("conversations.history")) == 1

    # The entry goes only when no 📌 is left on the message.
    await bot.event(reaction("reaction_removed", channel, msg.ts, "UDECLARER"), event_id="EvUnpin1")
    [entry] = await pinned(bot, inc)
    assert entry.removed is False
    await bot.event(reaction("reaction_removed", channel, msg.ts, "U01PRIMARY"), event_id="EvUnpin2")
    [entry] = await pinned(bot, inc)
    assert entry.removed is True

    _, url = await bot.command("timeline", user="UDECLARER", channel=channel)
    assert "503" not in str(bot.replies(url)[-1].get("blocks"))

    # Pinned again later: the same entry comes back, still one row.
    await bot.event(reaction("reaction_added", channel, msg.ts, "U02SECOND"), event_id="EvPin3")
    [entry] = await pinned(bot, inc)
    assert entry.removed is False and entry.data["pinned_by"] == ["U02SECOND"]
    _, url = await bot.command("timeline", user="UDECLARER", channel=channel)
    assert "📌 <@UDECLARER>: “Factory returns 503" in str(bot.replies(url)[-1].get("blocks"))


async def test_other_reactions_channels_and_items_are_ignored(bot: BotHarness) -> None:
    inc = await declare(bot)
    channel = inc.channel_id or ""
    general = bot.slack.add_channel("general", members=["UBOT", "UDECLARER"])
    in_room = bot.slack.add_message(channel, "UDECLARER", "just a thumbs up")
    outside = bot.slack.add_message(general.id, "UDECLARER", "not an incident channel")
    events: list[dict[str, Any]] = [
        reaction("reaction_added", channel, in_room.ts, "UDECLARER", name="thumbsup"),
        reaction("reaction_added", channel, in_room.ts, "UDECLARER", name="round_pushpin"),
        reaction("reaction_added", channel, in_room.ts, "UDECLARER", item="file"),
        reaction("reaction_added", general.id, outside.ts, "UDECLARER"),
        reaction("reaction_removed", channel, in_room.ts, "UDECLARER"),  # never pinned
        {"type": "reaction_added", "reaction": "pushpin", "item": "garbage"},
    ]
    for ev in events:
        resp = await bot.event(ev)
        assert resp.status_code == 200
    assert await pinned(bot, inc) == []
    assert bot.slack.calls_to("conversations.history") == []


async def test_an_unreadable_message_is_still_pinned_and_the_failure_recorded(bot: BotHarness) -> None:
    inc = await declare(bot)
    channel = inc.channel_id or ""
    msg = bot.slack.add_message(channel, "U01PRIMARY", "rolled back")
    bot.slack.fail_next("conversations.history", status=200, error="not_in_channel", retry_after=None)
    await bot.event(reaction("reaction_added", channel, msg.ts, "U01PRIMARY"))
    [entry] = await pinned(bot, inc)
    assert entry.text == "(message text unavailable)" and entry.data["permalink"]
    failed = [e for e in await bot.events(inc.id) if e.kind == "slack_failed"]
    assert failed and failed[-1].data["method"] == "conversations.history"


async def test_thread_replies_are_pinned_with_their_link(bot: BotHarness) -> None:
    inc = await declare(bot)
    channel = inc.channel_id or ""
    parent = bot.slack.add_message(channel, "UDECLARER", "what changed?")
    reply = bot.slack.add_message(channel, "U01PRIMARY", "deploy 42 at 11:55", thread_ts=parent.ts)
    await bot.event(reaction("reaction_added", channel, reply.ts, "UDECLARER"))
    [entry] = await pinned(bot, inc)  # conversations.history has no thread replies: text unknown, link kept
    assert entry.data["permalink"] and "thread_ts" in entry.data["permalink"]
    assert [e.kind for e in await bot.events(inc.id)].count("slack_failed") == 0


async def test_joining_the_war_room_is_recorded_once(bot: BotHarness) -> None:
    inc = await declare(bot)
    channel = inc.channel_id or ""
    joined = {"type": "member_joined_channel", "user": "UOTHER", "channel": channel, "channel_type": "C"}
    await bot.event(joined)
    await bot.event(joined)  # a second join (left and came back) in the same cycle is not news
    await bot.event({"type": "member_joined_channel", "user": "UOTHER", "channel": "CELSEWHERE"})
    entries = [e for e in await bot.events(inc.id) if e.kind == "joined"]
    assert [(e.actor, e.text) for e in entries] == [("UOTHER", "@UOTHER joined the war room")]  # no mrkdwn
