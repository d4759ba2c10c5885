"""Bookkeeping (reminders, Slack housekeeping, "viewed the timeline") stays out of the story: hidden from
the default timeline view and the PIR's main timeline, shown by `/incident timeline all` and the PIR's
Bookkeeping section."""

from __future__ import annotations

from bot.bookkeeping import BOOKKEEPING_KINDS
from bot.pir import links
from tests.support import BotHarness


async def test_timeline_hides_bookkeeping_unless_asked(bot: BotHarness) -> None:
    await bot.command("declare P1 Orders failing")
    [inc] = await bot.incidents()
    room = inc.channel_id or ""
    await bot.command("note oven 3 is hot", channel=room)
    kinds = [e.kind for e in await bot.events(inc.id)]
    assert {"slack"} <= set(kinds)  # the war room's set-up steps are on record

    _resp, url = await bot.command("timeline", channel=room)
    page = bot.replies(url)[-1]
    flat = str(page["blocks"])
    assert "oven 3 is hot" in flat and "Declared" in flat
    assert "Set the channel topic" not in flat and "Pinned the template" not in flat
    assert "bookkeeping entries hidden" in flat

    _resp, url = await bot.command("timeline all", channel=room)
    flat_all = str(bot.replies(url)[-1]["blocks"])
    assert "Set the channel topic" in flat_all and "viewed the timeline" in flat_all

    resp, _url = await bot.command("timeline everything", channel=room)
    assert "Usage: `/incident timeline [all]`" in resp.text


async def test_pir_keeps_bookkeeping_apart(bot: BotHarness) -> None:
    await bot.command("declare P1 Orders failing")
    [inc] = await bot.incidents()
    await bot.command("note oven 3 is hot", channel=inc.channel_id or "")
    token = links.sign(inc.id, bot.svc.clock.now() + links.LINK_TTL, bot.svc.settings.link_secret())
    md = (await bot.http.get(f"{bot.url}/incidents/{inc.id}/pir.md?token={token}")).text
    story, _, rest = md.partition("### Bookkeeping")
    assert rest, "the PIR has a Bookkeeping section"
    assert "oven 3 is hot" in story.split("## Timeline")[1]
    assert "Set the channel topic" not in story and "Set the channel topic" in rest
    assert "reminder" in BOOKKEEPING_KINDS  # "Update due" nudges are bookkeeping
