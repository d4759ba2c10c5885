"""Paging truth over HTTP: escalate never claims a page the ladder cannot send; resolve closes every page DM."""

from __future__ import annotations

from sqlalchemy import select

from bot.clock import ManualClock
from bot.models import Page
from tests.support import BotHarness


def _blocks_text(blocks: list[dict] | None) -> str:
    return str(blocks or [])


async def test_escalate_on_a_p1_stops_at_the_top_level_for_p1(bot: BotHarness, clock: ManualClock) -> None:
    await bot.command("declare P1 Factory orders failing")
    [inc] = await bot.incidents()
    replies = []
    for _ in range(4):
        _, url = await bot.command("escalate", channel=inc.channel_id)
        replies.append(bot.last_reply(url))
    assert replies[:3] == [
        "Paged L2 (Secondary on-call).",
        "Paged L3 (Team lead / Engineering manager).",
        "Paged L4 (VP of Engineering).",
    ]
    # L5 (CEO) is P0-only in escalation.yaml: no page, no "escalated to L5" on the timeline.
    assert "No level is left to page for a P1" in replies[3] and "L4" in replies[3]
    async with bot.svc.db.session() as s:
        levels = sorted(
            p.level for p in (await s.execute(select(Page).where(Page.incident_id == inc.id))).scalars()
        )
    assert levels == [1, 2, 3, 4]
    texts = [e.text for e in await bot.events(inc.id) if e.kind == "escalated"]
    assert not any("L5" in t for t in texts)


async def test_resolve_edits_every_page_dm_to_nothing_to_do(bot: BotHarness, clock: ManualClock) -> None:
    await bot.command("declare P0 Nobody can order pizza")
    [inc] = await bot.incidents()
    dms = {u: bot.slack.messages[f"D{u}"][-1] for u in ("U01PRIMARY", "U02SECOND")}
    assert all("needs you" in _blocks_text(m.blocks) for m in dms.values())
    await bot.action("resolve_anyway", inc.id, user="UDECLARER", channel=inc.channel_id)
    for user in dms:
        msg = next(m for m in bot.slack.messages[f"D{user}"] if m.ts == dms[user].ts)
        body = _blocks_text(msg.blocks)
        assert "needs you" not in body and "ack_incident" not in body, body
        assert "resolved by <@UDECLARER> — nothing to do" in msg.text


async def test_page_dms_sent_before_the_war_room_existed_are_edited_and_pagees_invited(
    bot: BotHarness, clock: ManualClock
) -> None:
    from bot.incidents.flows import IncidentFlows

    bot.slack.fail_always("conversations.create", status=500, error="internal_error")
    await bot.command("declare P0 Nobody can order pizza")
    [inc] = await bot.incidents()
    first = {u: bot.slack.messages[f"D{u}"][-1] for u in ("U01PRIMARY", "U02SECOND")}
    assert all("war room not ready yet" in _blocks_text(m.blocks) for m in first.values())
    bot.slack.clear_faults()
    result = await IncidentFlows(bot.svc).provision(inc.id)  # what the outbox retry does
    assert result.state == "ready" and result.channel_id
    for user, sent in first.items():
        msg = next(m for m in bot.slack.messages[f"D{user}"] if m.ts == sent.ts)
        body = _blocks_text(msg.blocks)
        assert "war room not ready yet" not in body and f"<#{result.channel_id}>" in body
        assert "ack_incident" in body  # still unacknowledged: the button stays
        assert user in bot.slack.channels[result.channel_id].members  # everyone paged is in the room


async def test_pages_sent_later_invite_the_paged_level(bot: BotHarness, clock: ManualClock) -> None:
    await bot.command("declare P1 Factory orders failing")
    [inc] = await bot.incidents()
    _, url = await bot.command("escalate", channel=inc.channel_id)
    assert "Paged L2" in bot.last_reply(url)
    assert "U02SECOND" in bot.slack.channels[inc.channel_id or ""].members
