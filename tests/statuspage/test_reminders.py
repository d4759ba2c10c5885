"""Public-update reminders follow the severity's targets and survive the ladder's re-plans; stale previews
and P2/P3 declarations behave."""

from __future__ import annotations

from bot.clock import ManualClock
from bot.dispatch import run_due
from tests.statuspage.support import (
    COMMANDER,
    buttons,
    compose_and_preview,
    declare,
    last_response_text,
    room,
)
from tests.support import BotHarness


def due_reminders(bot: BotHarness, inc) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.text for m in room(bot, inc) if m.text.startswith("⏰ Public update due")]


async def test_reminders_before_the_first_update_and_on_the_cadence_after(
    bot: BotHarness, clock: ManualClock
) -> None:
    inc = await declare(bot)
    room_id = inc.channel_id or ""
    # Re-plans of the ladder (ack, status) must not drop the public-update reminder.
    await bot.command("ack", user="U01PRIMARY", channel=room_id)
    await bot.command("status INVESTIGATING", user=COMMANDER, channel=room_id)
    clock.advance(minutes=14)
    await run_due(bot.svc, "w")
    assert due_reminders(bot, inc) == []
    clock.advance(minutes=2)  # P1 response target: 15 min
    await run_due(bot.svc, "w")
    [first] = due_reminders(bot, inc)
    assert "customers have heard nothing yet" in first and "<@UDECLARER>" in first

    preview = await compose_and_preview(bot, inc)
    await bot.action(
        "statuspage_publish", buttons(preview)["statuspage_publish"], user=COMMANDER, channel=room_id
    )
    # The old chain stops (a newer update exists); the next one is due 30 min (P1 cadence) after publishing.
    clock.advance(minutes=29)
    await run_due(bot.svc, "w")
    assert len(due_reminders(bot, inc)) == 1
    clock.advance(minutes=2)
    await run_due(bot.svc, "w")
    reminders = due_reminders(bot, inc)
    assert len(reminders) == 2 and "last public update 31 min ago" in reminders[-1]
    kinds = [e.text for e in await bot.events(inc.id) if e.kind == "reminder"]
    assert sum(t.startswith("Public update due") for t in kinds) == 2


async def test_p2_declarations_do_not_prompt(bot: BotHarness, clock: ManualClock) -> None:
    inc = await declare(bot, "declare P2 Slow menu images")
    assert not [m for m in room(bot, inc) if "statuspage_open" in buttons(m)]
    clock.advance(hours=3)
    await run_due(bot.svc, "w")
    assert due_reminders(bot, inc) == []


async def test_a_preview_older_than_the_last_published_update_is_refused(
    bot: BotHarness, clock: ManualClock
) -> None:
    inc = await declare(bot)
    room_id = inc.channel_id or ""
    first = await compose_and_preview(bot, inc, title="Old wording")
    clock.advance(minutes=1)
    second = await compose_and_preview(bot, inc, title="New wording")
    await bot.action(
        "statuspage_publish", buttons(second)["statuspage_publish"], user=COMMANDER, channel=room_id
    )
    clock.advance(minutes=1)
    await bot.action(
        "statuspage_publish", buttons(first)["statuspage_publish"], user=COMMANDER, channel=room_id
    )
    assert "newer public update" in last_response_text(bot)
    html = (await bot.http.get(f"{bot.url}/status")).text
    assert "New wording" in html and "Old wording" not in html
    # Forged or mangled button values get a clear answer, not a stack trace.
    await bot.action("statuspage_publish", "12; drop table", user=COMMANDER, channel=room_id)
    assert "out of date" in last_response_text(bot)
    await bot.action("statuspage_publish", "999999", user=COMMANDER, channel=room_id)
    assert "out of date" in last_response_text(bot)
