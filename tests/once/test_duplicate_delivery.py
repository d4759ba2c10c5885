"""One slash command delivered twice (Slack does this on a slow ack) makes one incident and ONE war room.

Both deliveries are released together while conversations.create is slow, so on the old code the first
delivery's outbox owner and the duplicate's direct `provision` both saw no channel yet and both made one."""

from __future__ import annotations

import asyncio

from tests.support import BotHarness


def _war_rooms(bot: BotHarness) -> list[str]:
    return [c.args.get("name", "") for c in bot.slack.calls_to("conversations.create", ok=True)]


async def _twice(bot: BotHarness, trigger: str, **retry_headers: str) -> None:
    bot.slack.delay("conversations.create", 0.4)
    first = bot.command("declare P1 Orders failing", trigger_id=trigger, wait=False)
    second = _command_with_headers(bot, trigger, retry_headers)
    r1, r2 = await asyncio.gather(first, second)
    assert r1[0].status_code == 200 and r2.status_code == 200
    await bot.drain()
    bot.slack.clear_faults()


async def _command_with_headers(bot: BotHarness, trigger: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    from urllib.parse import urlencode

    form = {
        "team_id": "T0STANDIN",
        "channel_id": "CGENERAL",
        "user_id": "UDECLARER",
        "user_name": "udeclarer",
        "command": "/incident",
        "text": "declare P1 Orders failing",
        "response_url": bot.slack.new_response_url(),
        "trigger_id": trigger,
        "api_app_id": "A0TEST",
    }
    return await bot.post_signed(urlencode(form).encode(), "application/x-www-form-urlencoded", **headers)


async def _assert_one_war_room(bot: BotHarness) -> None:
    [inc] = await bot.incidents()
    assert _war_rooms(bot) == [f"incident-{inc.id.removeprefix('INC-').lower()}"]
    assert inc.provision_state == "ready" and inc.channel_id is not None
    assert len(bot.slack.calls_to("pins.add", ok=True)) == 1
    kinds = [e.kind for e in await bot.events(inc.id)]
    assert kinds.count("war_room_ready") == 1


async def test_same_trigger_released_together_makes_one_war_room(bot: BotHarness) -> None:
    await _twice(bot, "standin-race-1")
    await _assert_one_war_room(bot)


async def test_slack_retry_header_makes_one_war_room(bot: BotHarness) -> None:
    await _twice(bot, "standin-race-2", **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    await _assert_one_war_room(bot)


async def test_retry_button_during_setup_makes_one_war_room(bot: BotHarness) -> None:
    """Someone presses "Retry setup" while the first setup is still creating the channel."""
    bot.slack.delay("conversations.create", 0.4)
    await bot.command("declare P1 Orders failing", wait=False)
    for _ in range(100):
        if await bot.incidents():
            break
        await asyncio.sleep(0.02)
    [inc] = await bot.incidents()
    await asyncio.gather(
        bot.action("retry_provision", inc.id, user="UDECLARER", wait=False),
        bot.action("retry_provision", inc.id, user="UDECLARER", wait=False),
    )
    await bot.drain()
    bot.slack.clear_faults()
    await _assert_one_war_room(bot)
