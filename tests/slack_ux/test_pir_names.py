"""The PIR names people and the war room by name: roster names, else Slack's (users.info, cached), ids last."""

from __future__ import annotations

from bot.pir import links
from tests.support import BotHarness


async def test_pir_shows_names_not_ids(bot: BotHarness) -> None:
    bot.slack.add_user("UYOU", "you", real_name="Yolanda Ops")
    await bot.command("declare P1 Orders failing", user="UYOU")
    [inc] = await bot.incidents()
    assert inc.channel_id and inc.channel_name
    await bot.command("note <@UOTHER> is checking the oven", user="UYOU", channel=inc.channel_id)
    secret, now = bot.svc.settings.link_secret(), bot.svc.clock.now()
    token = links.sign(inc.id, now + links.LINK_TTL, secret)
    md = (await bot.http.get(f"{bot.url}/incidents/{inc.id}/pir.md?token={token}")).text
    assert "@Yolanda Ops" in md and "@UYOU" not in md  # not on the roster: users.info
    assert "@uother is checking the oven" in md
    assert "@Priya Primary" in md  # the roster's name for U01PRIMARY
    assert f"#{inc.channel_name}" in md and f"#{inc.channel_id}" not in md
    calls = [c.args.get("user") for c in bot.slack.calls_to("users.info")]
    assert calls.count("UYOU") == 1  # cached
    await bot.http.get(f"{bot.url}/incidents/{inc.id}/pir.md?token={token}")
    assert [c.args.get("user") for c in bot.slack.calls_to("users.info")].count("UYOU") == 1
