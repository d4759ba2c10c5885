"""Post-incident commands end to end over HTTP: action items in the war room, resolve, `/incident pir` and
its signed link fetched from the bot's server, the PIR reminder timer, `/incident stats`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot import outbox
from bot.clock import ManualClock
from bot.dispatch import run_due
from bot.models import ActionItem, Incident, Timer
from tests.pir.test_render import section, table_rows
from tests.support import BotHarness

MEMBER, OWNER = "UDECLARER", "U02SECOND"


async def declare(bot: BotHarness) -> Incident:
    await bot.command("declare P1 Factory orders failing", user=MEMBER)
    [inc] = await bot.incidents()
    assert inc.channel_id
    return inc


async def run(bot: BotHarness, inc: Incident, text: str, user: str = MEMBER) -> tuple[str, dict[str, Any]]:
    _, url = await bot.command(text, user=user, channel=inc.channel_id or "")
    replies = bot.replies(url)
    assert replies, f"no reply to {text!r}"
    return str(replies[-1].get("text", "")), replies[-1]


def channel_lines(bot: BotHarness, channel: str) -> list[str]:
    return [m.text for m in bot.slack.messages.get(channel, []) if not m.ephemeral_to]


async def resolve(bot: BotHarness, clock: ManualClock, inc: Incident) -> None:
    await bot.command("status MONITORING", user=MEMBER, channel=inc.channel_id or "")
    clock.advance(minutes=31)  # the playbook's 30 minutes of quiet monitoring
    reply, _ = await run(bot, inc, "resolve")
    assert "Resolved" in reply


async def test_action_items_resolve_and_the_pir_link_over_http(bot: BotHarness, clock: ManualClock) -> None:
    inc = await declare(bot)
    channel = inc.channel_id or ""
    clock.advance(minutes=4)
    await run(bot, inc, "ack", user="U01PRIMARY")

    reply, _ = await run(bot, inc, f'action add "Add canary deploys for the Factory" <@{OWNER}> 2026-12-01')
    assert reply.startswith("✅ Action item #1 added") and f"<@{OWNER}>" in reply and "2026-12-01" in reply
    reply, _ = await run(bot, inc, 'action add "Alert on order errors" <@U01PRIMARY> 2026-11-20')
    assert "#2" in reply and "already past" in reply
    reply, _ = await run(bot, inc, "action done 1")
    assert reply.startswith("☑️ Action item #1 done")
    reply, _ = await run(bot, inc, "action done 1")
    assert "already done" in reply
    reply, _ = await run(bot, inc, "action done 9")
    assert "no action item #9" in reply
    reply, payload = await run(bot, inc, "actions")
    assert reply == f"Action items for {inc.id}: 1 open, 1 done"
    listing = str(payload["blocks"])
    assert "☑️ `#1` Add canary deploys" in listing and "⬜ `#2` Alert on order errors" in listing
    assert "overdue" in listing  # #2 was due 2026-11-20

    # A 📌 on a war-room message, pinned twice and un-pinned once by one of the two: still on the timeline.
    msg = bot.slack.add_message(channel, "U01PRIMARY", "Rolling the Factory back to v2.2")
    for n, (kind, user) in enumerate(
        [("reaction_added", MEMBER), ("reaction_added", "U01PRIMARY"), ("reaction_removed", MEMBER)]
    ):
        item = {"type": "message", "channel": channel, "ts": msg.ts}
        await bot.event({"type": kind, "user": user, "reaction": "pushpin", "item": item}, event_id=f"EvP{n}")

    await resolve(bot, clock, inc)
    reply, _ = await run(bot, inc, "pir")
    assert reply == f"Posted the PIR summary for {inc.id} in <#{channel}>."
    [summary] = [m for m in bot.slack.messages[channel] if m.text.startswith(f"PIR for {inc.id}")]
    assert "MTTA 4 min ✅ (< 15 min)" in str(summary.blocks)
    url = summary.text.split(": ", 1)[1]
    assert re.fullmatch(rf"http://bot\.test/incidents/{inc.id}/pir\.md\?token=\d+\.[\w-]{{43}}", url)

    resp = await bot.http.get(url.replace("http://bot.test", bot.url))
    assert resp.status_code == 200
    md = resp.text
    assert md.startswith(f"# Post-Incident Review: {inc.id}") and "**Status:** RESOLVED" in md
    assert table_rows(section(md, "Action Items"))[1:] == [
        ["#1 Add canary deploys for the Factory", "@Sam Secondary", "2026-12-01", "Done"],
        ["#2 Alert on order errors", "@Priya Primary", "2026-11-20", "Open"],
    ]
    times = {r[0]: r[1] for r in table_rows(section(md, "Key Times"))[1:]}
    assert times["Acknowledged"] == "2026-11-23 12:04:00" and times["Monitoring"] == "2026-11-23 12:04:00"
    assert times["Resolved"] == "2026-11-23 12:35:00"
    metrics = {r[0]: r[2:] for r in table_rows(section(md, "Response Metrics"))[1:]}
    assert metrics["MTTA"] == ["4 min", "< 15 min", "✅ met"]
    assert metrics["MTTR"] == ["35 min", "< 1 h", "✅ met"]
    assert md.count("📌") == 1 and "📌 Rolling the Factory back to v2.2" in md
    timeline = section(md, "Timeline")
    assert "Action item #1 added: Add canary deploys for the Factory" in timeline
    assert "pir_shared" in timeline and "| resolved |" in timeline

    tampered = url.replace("http://bot.test", bot.url)[:-1] + ("A" if not url.endswith("A") else "B")
    assert (await bot.http.get(tampered)).status_code == 403


async def test_pir_reminder_reaches_the_commander_and_the_war_room_once(
    bot: BotHarness, clock: ManualClock
) -> None:
    inc = await declare(bot)
    channel = inc.channel_id or ""
    await run(bot, inc, 'action add "Canary deploys" <@U02SECOND> 2026-12-01')
    await resolve(bot, clock, inc)
    resolved_at = clock.now()
    async with bot.svc.db.session() as s:
        [timer] = (
            await s.execute(select(Timer).where(Timer.kind == "pir_reminder", Timer.state == "pending"))
        ).scalars()
    assert timer.due_at == resolved_at + timedelta(days=5)

    clock.advance(days=4, hours=23)
    await run_due(bot.svc, "worker-a")
    assert not [t for t in channel_lines(bot, channel) if "Post-incident review due" in t]

    # Slack hiccups on the DM after the war-room post went out: the outbox retries only the DM.
    bot.slack.fail_next("conversations.open", status=200, error="fatal_error", retry_after=None)
    clock.advance(hours=1)
    await run_due(bot.svc, "worker-a")
    reminders = [t for t in channel_lines(bot, channel) if "Post-incident review due" in t]
    assert len(reminders) == 1 and "1 open action item(s)" in reminders[0]
    assert "/pir.md?token=" in reminders[0]
    assert not channel_lines(bot, f"D{MEMBER}")
    clock.advance(seconds=5)
    await run_due(bot.svc, "worker-b")
    await outbox.outbox_tick(bot.svc)  # the worker's outbox pass retries the DM row
    [dm] = channel_lines(bot, f"D{MEMBER}")
    assert "Post-incident review due" in dm
    clock.advance(days=3)
    await run_due(bot.svc, "worker-c")
    await outbox.outbox_tick(bot.svc)
    assert len([t for t in channel_lines(bot, channel) if "Post-incident review due" in t]) == 1
    assert len(channel_lines(bot, f"D{MEMBER}")) == 1
    kinds = [e.kind for e in await bot.events(inc.id)]
    assert kinds.count("pir_reminder") == 1


async def test_reopened_incident_gets_no_pir_reminder(bot: BotHarness, clock: ManualClock) -> None:
    inc = await declare(bot)
    await resolve(bot, clock, inc)
    await bot.command("reopen", user=MEMBER, channel=inc.channel_id or "")
    clock.advance(days=6)
    await run_due(bot.svc, "worker-a")
    assert not [t for t in channel_lines(bot, inc.channel_id or "") if "Post-incident review due" in t]


async def test_commands_outside_the_war_room_or_by_outsiders(bot: BotHarness) -> None:
    inc = await declare(bot)
    for text in ("pir", "actions", 'action add "x" <@U02SECOND> 2026-12-01', "action done 1"):
        _, url = await bot.command(text, user=MEMBER, channel="CGENERAL")
        assert "war room" in bot.last_reply(url), text
    reply, _ = await run(bot, inc, 'action add "x" <@U02SECOND> 2026-12-01', user="UOUTSIDER")
    assert "Only members" in reply
    async with bot.svc.db.session() as s:
        assert (await s.execute(select(ActionItem))).first() is None
    reply, payload = await run(bot, inc, "actions")
    assert "0 open, 0 done" in reply and "None yet" in str(payload["blocks"])


async def test_stats_command(bot: BotHarness, clock: ManualClock) -> None:
    inc = await declare(bot)
    clock.advance(minutes=2)
    await run(bot, inc, "ack", user="U01PRIMARY")
    await resolve(bot, clock, inc)
    _, url = await bot.command("stats 7d", user="UOTHER", channel="CGENERAL")
    reply = bot.replies(url)[-1]
    assert reply["text"] == "Incident metrics, last 7 days: 1 incidents"
    blocks = str(reply["blocks"])
    for fact in ("*P1* (1)", "MTTA 2 min ✅ (< 15 min)", "MTTR 33 min ✅ (< 1 h)"):
        assert fact in blocks
    assert "*Escalation rate* 0.0 % (0 of 1 escalated beyond their first page), target < 10 % ✅" in blocks
    resp, _ = await bot.command("stats soon", user="UOTHER", channel="CGENERAL")
    assert "Usage" in resp.json()["text"]
