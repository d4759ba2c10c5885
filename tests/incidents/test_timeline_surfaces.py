"""Timeline events are stored without Slack markup and rendered per surface (issue #13).

A whole incident runs over HTTP (declare, page, escalate, acknowledge, roles, notes, a refusal, a join,
a pin, an action item, resolve, the PIR link, the PIR reminder, PIR done): no `timeline_events.text` holds
Slack mrkdwn, the Slack timeline view still mentions people live (`<@U…>`), and the PIR names them. Rows
written before this change (their text is Slack mrkdwn) still render on both surfaces."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.clock import ManualClock
from bot.dispatch import run_due
from bot.incidents import service
from bot.incidents.lifecycle import LifecycleFlows
from bot.models import Incident, TimelineEvent
from bot.pir import links
from handlers import lifecycle_blocks as lb
from tests.pir.test_render import section
from tests.support import BotHarness

MEMBER, PRIMARY, SECOND = "UDECLARER", "U01PRIMARY", "U02SECOND"
SLACK_MARKUP = re.compile(r"<[@#!]|<https?:|&lt;|&gt;|&amp;")


async def run(bot: BotHarness, inc: Incident, text: str, user: str = MEMBER) -> None:
    await bot.command(text, user=user, channel=inc.channel_id or "")


async def slack_view(bot: BotHarness, inc: Incident) -> str:
    """Every entry of `/incident timeline all`, as the Slack view renders it."""
    page = await LifecycleFlows(bot.svc).timeline(inc.id, MEMBER, page_size=1000, all_kinds=True)
    assert page is not None
    _, blocks = lb.timeline_blocks(page)
    return str(blocks)


async def pir_markdown(bot: BotHarness, inc: Incident) -> str:
    token = links.sign(inc.id, bot.svc.clock.now() + links.LINK_TTL, bot.svc.settings.link_secret())
    resp = await bot.http.get(f"{bot.url}/incidents/{inc.id}/pir.md?token={token}")
    assert resp.status_code == 200
    return resp.text


async def pir_html(bot: BotHarness, inc: Incident) -> str:
    token = links.sign(inc.id, bot.svc.clock.now() + links.LINK_TTL, bot.svc.settings.link_secret())
    resp = await bot.http.get(f"{bot.url}/incidents/{inc.id}?token={token}")
    assert resp.status_code == 200
    return resp.text


async def test_a_whole_incident_stores_no_slack_markup_and_each_surface_renders_people(
    bot: BotHarness, clock: ManualClock
) -> None:
    await bot.command("declare P1 Factory orders failing", user=MEMBER)
    [inc] = await bot.incidents()
    channel = inc.channel_id or ""
    clock.advance(minutes=2)
    await run(bot, inc, "escalate")
    clock.advance(minutes=1)
    await run(bot, inc, "ack", user=PRIMARY)
    await run(bot, inc, f"commander <@{SECOND}>")
    await run(bot, inc, "comms <@UOTHER>")
    await run(bot, inc, "status IDENTIFIED")
    await run(bot, inc, "severity P0")
    await run(bot, inc, "note rolled the factory client back")
    await run(bot, inc, "severity P2", user="UOUTSIDER")  # refused: not in the war room
    await bot.event(
        {"type": "member_joined_channel", "user": "UOTHER", "channel": channel, "channel_type": "C"}
    )
    msg = bot.slack.add_message(channel, PRIMARY, "Rolling the Factory back to v2.2")
    item = {"type": "message", "channel": channel, "ts": msg.ts}
    await bot.event({"type": "reaction_added", "user": MEMBER, "reaction": "pushpin", "item": item})
    await run(bot, inc, f'action add "Add canary deploys" <@{SECOND}> 2026-12-01')
    await run(bot, inc, "timeline")
    await run(bot, inc, "status MONITORING")
    clock.advance(minutes=31)
    await run(bot, inc, "resolve")
    await run(bot, inc, "pir")
    clock.advance(days=5, minutes=1)
    await run_due(bot.svc, "worker-a")
    await run(bot, inc, "pir done", user=SECOND)

    rows = await bot.events(inc.id)
    kinds = {e.kind for e in rows}
    expected = {"declared", "war_room_ready", "page", "escalated", "acknowledged", "role", "status"}
    expected |= {"severity", "note", "refused", "joined", "pinned", "action_item", "command", "resolved"}
    expected |= {"pir_shared", "pir_reminder", "pir_done", "war_room_closed"}
    assert expected <= kinds, expected - kinds
    marked = [(e.kind, e.text) for e in rows if SLACK_MARKUP.search(e.text) or re.search(r"<[^>]*\|", e.text)]
    assert marked == []

    view = await slack_view(bot, inc)
    for live in (
        f"Acknowledged by <@{PRIMARY}>",
        f"<@{MEMBER}> escalated to L2",
        f"Commander → <@{SECOND}> (set by <@{MEMBER}>)",
        "<@UOTHER> joined the war room",
        f"Resolved by <@{MEMBER}>",
        f"PIR marked done by <@{SECOND}>",
        f"PIR reminder sent to <@{SECOND}>",
        f"War room <#{channel}> ready",
        f"Paged L1 (Primary on-call) <@{PRIMARY}>",
    ):
        assert live in view, live
    assert "&lt;@" not in view  # our own mentions are not escaped into inert text

    md = await pir_markdown(bot, inc)
    timeline = section(md, "Timeline")  # with its Bookkeeping subsection
    for named in (
        "Acknowledged by @Priya Primary",
        "@udeclarer escalated to L2",
        "Commander → @Sam Secondary (set by @udeclarer)",
        "Resolved by @udeclarer",
        "PIR marked done by @Sam Secondary",
        "PIR reminder sent to @Sam Secondary",
        f"War room #{inc.channel_name} ready",
        "Refused: @uoutsider tried to",
        "Paged L1 (Primary on-call) @Priya Primary",
    ):
        assert named in timeline, named
    for raw in ("<@", "<#", "&lt;", f"@{PRIMARY}", f"@{SECOND}", f"@{MEMBER}", f"#{channel}"):
        assert raw not in timeline, raw
    page = await pir_html(bot, inc)
    assert "Acknowledged by @Priya Primary" in page and "&lt;@" not in page


async def test_rows_written_before_the_change_still_render(bot: BotHarness, clock: ManualClock) -> None:
    """Old rows: their text is Slack mrkdwn and their data has no structured line."""
    await bot.command("declare P1 Factory orders failing", user=MEMBER)
    [inc] = await bot.incidents()
    clock.advance(minutes=1)
    now = clock.now()
    async with bot.svc.db.session() as s:
        for kind, text in (
            ("acknowledged", f"Acknowledged by <@{PRIMARY}> after 2 min (via button)"),
            ("role", f"Commander → <@{SECOND}> (set by <@{MEMBER}>)"),
            ("war_room_ready", f"War room <#{inc.channel_id}> ready"),
            ("recovery", f"Recovery action by <@{MEMBER}>: not resolved (500: &lt;html&gt;)"),
            ("note", "old note with a &lt;tag&gt;"),
        ):
            await service.add_event(s, inc.id, kind, text, at=now)
        # add_event now structures every new row: strip that to get back an old-style row.
        old = (await s.execute(select(TimelineEvent).where(TimelineEvent.at == now))).scalars().all()
        for row in old:
            row.data = {}
    view = await slack_view(bot, inc)
    assert f"Acknowledged by <@{PRIMARY}> after 2 min" in view
    assert f"Commander → <@{SECOND}> (set by <@{MEMBER}>)" in view
    assert f"War room <#{inc.channel_id}> ready" in view
    assert "(500: &lt;html&gt;)" in view  # stored escaped, shown as typed
    assert "old note with a &lt;tag&gt;" in view
    md = section(await pir_markdown(bot, inc), "Timeline")
    assert "Acknowledged by @Priya Primary after 2 min" in md
    assert "Commander → @Sam Secondary (set by @udeclarer)" in md
    assert f"War room #{inc.channel_name} ready" in md
    # As typed, escaped once by the Markdown (its `<` before a letter could open raw HTML).
    assert "Recovery action by @udeclarer: not resolved (500: &lt;html>)" in md
    assert "old note with a &lt;tag>" in md
