"""Closing the war room: when the PIR is marked done, or `pir.archive_after` after resolve (a durable timer),
the bot posts a closing summary with the PIR link and archives the channel, once."""

from __future__ import annotations

from datetime import timedelta

from bot.clock import ManualClock
from bot.models import Incident
from bot.outbox import deliver
from bot.worker import Worker
from tests.support import BotHarness


async def _resolved(bot: BotHarness) -> Incident:
    await bot.command("declare P2 Menu slow")
    inc = (await bot.incidents())[-1]
    assert inc.channel_id
    await bot.action("resolve_anyway", inc.id, user="UDECLARER", channel=inc.channel_id)
    inc = (await bot.incidents())[-1]
    assert inc.status == "RESOLVED"
    return inc


def _closing_posts(bot: BotHarness, channel: str) -> list[str]:
    return [m.text for m in bot.slack.messages[channel] if m.text.startswith("📦 Closing this war room")]


async def test_pir_done_closes_the_war_room_once(bot: BotHarness) -> None:
    await bot.command("declare P1 Orders failing")
    inc = (await bot.incidents())[-1]
    assert inc.channel_id
    _resp, url = await bot.command("pir done", channel=inc.channel_id)
    assert "not resolved yet" in bot.last_reply(url)
    assert not bot.slack.channels[inc.channel_id].is_archived

    await bot.action("resolve_anyway", inc.id, user="UDECLARER", channel=inc.channel_id)
    _resp, url = await bot.command("pir done", user="UOUTSIDER", channel=inc.channel_id)
    assert not bot.slack.channels[inc.channel_id].is_archived  # outsiders cannot close it
    _resp, url = await bot.command("pir done", channel=inc.channel_id)
    assert "marked done" in bot.last_reply(url)
    assert bot.slack.channels[inc.channel_id].is_archived
    [summary] = _closing_posts(bot, inc.channel_id)
    assert "/incidents/" in summary and "token=" in summary  # the signed PIR link
    # The summary went out before the archive (posting into an archived channel fails).
    methods = [c.method for c in bot.slack.calls if c.method in ("chat.postMessage", "conversations.archive")]
    assert methods[-2:] == ["chat.postMessage", "conversations.archive"]
    kinds = [e.kind for e in await bot.events(inc.id)]
    assert kinds.count("pir_done") == 1 and kinds.count("war_room_closed") == 1


async def test_archived_after_the_configured_days_by_the_worker(bot: BotHarness, clock: ManualClock) -> None:
    inc = await _resolved(bot)
    assert inc.channel_id
    worker = Worker(bot.svc, worker_id="w1", extra_ticks=[])
    clock.advance(timedelta(days=6).total_seconds())
    await worker.tick()
    assert not bot.slack.channels[inc.channel_id].is_archived  # 7 days in severities.yaml
    clock.advance(timedelta(days=1, minutes=1).total_seconds())
    await worker.tick()
    await deliver(bot.svc)
    assert bot.slack.channels[inc.channel_id].is_archived
    assert len(_closing_posts(bot, inc.channel_id)) == 1
    await worker.tick()  # nothing fires twice
    assert len(_closing_posts(bot, inc.channel_id)) == 1
    assert [e.kind for e in await bot.events(inc.id)].count("war_room_closed") == 1


async def test_reopened_before_the_deadline_is_not_archived(bot: BotHarness, clock: ManualClock) -> None:
    inc = await _resolved(bot)
    assert inc.channel_id
    await bot.command("reopen", channel=inc.channel_id)
    assert (await bot.incidents())[-1].status != "RESOLVED"
    clock.advance(timedelta(days=8).total_seconds())
    await Worker(bot.svc, worker_id="w1", extra_ticks=[]).tick()
    assert not bot.slack.channels[inc.channel_id].is_archived


async def test_reopen_after_the_war_room_was_archived_is_refused_clearly(bot: BotHarness) -> None:
    """Slack's docs for conversations.unarchive: bot tokens cannot unarchive a conversation. So the bot does
    not reopen into an archived war room (every line, invite and template edit would fail with is_archived):
    the Reopen button and the command answer why, and nothing changes."""
    inc = await _resolved(bot)
    assert inc.channel_id and inc.template_ts
    await bot.command("pir done", channel=inc.channel_id)
    assert bot.slack.channels[inc.channel_id].is_archived
    template = bot.slack.message(inc.channel_id, inc.template_ts)
    assert template is not None and "template_reopen" not in str(template.blocks)  # a closed record now

    # A client still showing the template from before the close presses Reopen: refused, nothing changes.
    refused_before = len([c for c in bot.slack.calls if c.error == "is_archived"])
    await bot.action("template_reopen", inc.id, user="UDECLARER", channel=inc.channel_id)
    _resp, url = await bot.command("reopen", channel=inc.channel_id)
    assert "archived" in bot.last_reply(url) and "declare" in bot.last_reply(url).lower()
    row = (await bot.incidents())[-1]
    assert row.status == "RESOLVED" and row.cycle == inc.cycle
    assert not [e for e in await bot.events(inc.id) if e.kind == "reopened"]
    assert len([c for c in bot.slack.calls if c.error == "is_archived"]) == refused_before


async def test_pir_done_button_on_the_resolved_template_closes_the_war_room(bot: BotHarness) -> None:
    """The resolved template carries "PIR done: close the war room" (confirmed in Slack first): members close
    the room with one click, outsiders are refused, a second press is answered and changes nothing."""
    inc = await _resolved(bot)
    assert inc.channel_id
    template = next(m for m in bot.slack.messages[inc.channel_id] if m.pinned)
    button = next(
        e
        for b in template.blocks or []
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "template_pir_done"
    )
    assert button["confirm"]["confirm"]["text"] == "Close it"  # Slack asks before an archive nobody can undo

    await bot.action("template_pir_done", inc.id, user="UOUTSIDER", channel=inc.channel_id)
    assert not bot.slack.channels[inc.channel_id].is_archived
    assert [e.kind for e in await bot.events(inc.id)].count("pir_done") == 0

    await bot.action("template_pir_done", inc.id, user="UDECLARER", channel=inc.channel_id)
    assert bot.slack.channels[inc.channel_id].is_archived
    assert len(_closing_posts(bot, inc.channel_id)) == 1
    # Its last edit before the archive: a record without buttons (nothing left to press on a closed room).
    closed = next(m for m in bot.slack.messages[inc.channel_id] if m.pinned)
    assert not [b for b in closed.blocks or [] if b["type"] == "actions"]
    assert "War room closed" in str(closed.blocks) and inc.id in closed.text
    order = [c.method for c in bot.slack.calls if c.method in ("chat.update", "conversations.archive")]
    assert order[-2:] == ["chat.update", "conversations.archive"]
    await bot.action("template_pir_done", inc.id, user="UDECLARER", channel=inc.channel_id)
    assert len(_closing_posts(bot, inc.channel_id)) == 1
    assert [c.method for c in bot.slack.calls].count("conversations.archive") == 1
    assert [e.kind for e in await bot.events(inc.id)].count("war_room_closed") == 1
