"""One live "Update due" message per incident: reminders with no update between them edit it in place
(chat.update) instead of posting a new message each time; an update starts a new one next time."""

from __future__ import annotations

from bot.clock import ManualClock
from bot.worker import Worker
from tests.support import BotHarness


def _reminders(bot: BotHarness, channel: str) -> list:
    return [m for m in bot.slack.messages[channel] if "Update due" in m.text]


async def test_reminders_edit_one_live_message_until_the_template_is_updated(
    bot: BotHarness, clock: ManualClock
) -> None:
    await bot.command("declare P1 Orders failing")
    [inc] = await bot.incidents()
    room = inc.channel_id or ""
    await bot.command("ack", user="U01PRIMARY", channel=room)
    w = Worker(bot.svc, worker_id="w1", extra_ticks=[])

    clock.advance(minutes=30)
    await w.tick()
    [live] = _reminders(bot, room)
    assert "no update for 30 min" in live.text and "<@UDECLARER>" in live.text

    for _ in range(3):  # three more reminders, nobody updates
        clock.advance(minutes=30)
        await w.tick()
    [still] = _reminders(bot, room)
    assert still.ts == live.ts and still.edited
    assert "no update for 2 h" in still.text, still.text
    edits = [c for c in bot.slack.calls_to("chat.update", ok=True) if c.args.get("ts") == live.ts]
    assert len(edits) == 3
    posts = [c for c in bot.slack.calls_to("chat.postMessage", ok=True) if "Update due" in str(c.args)]
    assert len(posts) == 1
    # The timeline still records each reminder (under the bookkeeping filter).
    ours = [e for e in await bot.events(inc.id) if e.kind == "reminder" and e.text.startswith("Update due")]
    assert len(ours) == 4

    # An update answers the reminder; the next one is a new message at the bottom of the room.
    await bot.command("status identified", channel=room)
    clock.advance(minutes=30)
    await w.tick()
    both = _reminders(bot, room)
    assert len(both) == 2 and both[0].ts == live.ts and both[1].ts != live.ts
    assert "no update for 30 min" in both[1].text
