"""`/incident list` and App Home over real HTTP: what people see without typing an incident id."""

from __future__ import annotations

from bot.clock import ManualClock
from handlers.lifecycle_blocks import DECLARE_CALLBACK
from tests.support import BotHarness


async def _declare(bot: BotHarness, text: str, user: str = "UDECLARER") -> str:
    await bot.command(f"declare {text}", user=user)
    return (await bot.incidents())[-1].id


def _blocks_text(payload: dict[str, object]) -> str:
    return str(payload.get("blocks"))


async def test_list_open_and_recent(bot: BotHarness, clock: ManualClock) -> None:
    first = await _declare(bot, "P1 Orders failing <!channel>")
    clock.advance(2)
    second = await _declare(bot, "P2 Slow menu")
    _resp, url = await bot.command("list")
    got = bot.replies(url)[-1]
    text = _blocks_text(got)
    assert got["text"] == "Open incidents: 2"
    assert first in text and second in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text  # people's text never pings anyone

    war_room = next(i for i in await bot.incidents() if i.id == second).channel_id
    assert war_room
    await bot.command("resolve", channel=war_room)
    await bot.action("resolve_anyway", second, user="UDECLARER", channel=war_room)
    _resp, url = await bot.command("list recent")
    recent = bot.replies(url)[-1]
    assert recent["text"].startswith("Resolved in the last 14 days: 1")
    assert second in _blocks_text(recent) and "/incidents/" in _blocks_text(recent)  # a signed PIR link

    _resp, url = await bot.command("list open")
    assert bot.replies(url)[-1]["text"] == "Open incidents: 1"


async def test_list_bad_argument_gets_usage(bot: BotHarness) -> None:
    resp, _url = await bot.command("list everything")
    assert resp.status_code == 200 and "Usage: `/incident list [open|recent]`" in resp.text


async def test_app_home_shows_open_incidents_pages_and_on_call(bot: BotHarness) -> None:
    inc = await _declare(bot, "P1 Factory down")
    primary = "U01PRIMARY"
    resp = await bot.event({"type": "app_home_opened", "user": primary, "tab": "home"})
    assert resp.status_code == 200
    [call] = bot.slack.calls_to("views.publish", ok=True)
    assert call.args["user_id"] == primary
    view = call.args["view"]
    flat = str(view)
    assert view["type"] == "home"
    assert inc in flat and "Waiting for you (1)" in flat  # the primary was paged and has not acknowledged
    assert "On call now" in flat and f"<@{primary}>" in flat

    # Someone who was not paged sees the incident but no pages waiting.
    await bot.event({"type": "app_home_opened", "user": "UOUTSIDER", "tab": "home"})
    other = str(bot.slack.calls_to("views.publish", ok=True)[-1].args["view"])
    assert inc in other and "Waiting for you" not in other

    # The messages tab is not ours to draw.
    await bot.event({"type": "app_home_opened", "user": primary, "tab": "messages"})
    assert len(bot.slack.calls_to("views.publish")) == 2


async def test_global_shortcut_opens_the_declare_form(bot: BotHarness) -> None:
    resp = await bot.shortcut("declare_incident", user="UOTHER")
    assert resp.status_code == 200
    [call] = bot.slack.calls_to("views.open", ok=True)
    assert call.args["view"]["callback_id"] == DECLARE_CALLBACK


async def test_message_shortcut_puts_a_message_on_the_timeline_once(bot: BotHarness) -> None:
    inc_id = await _declare(bot, "P1 Orders failing")
    [inc] = [i for i in await bot.incidents() if i.id == inc_id]
    assert inc.channel_id
    msg = bot.slack.add_message(inc.channel_id, "UDECLARER", "Oven 3 is on fire <!here>")
    shared = {"ts": msg.ts, "text": msg.text, "user": "UDECLARER", "type": "message"}
    await bot.shortcut("add_to_timeline", user="UOTHER", channel=inc.channel_id, message=shared)
    await bot.shortcut("add_to_timeline", user="UOTHER", channel=inc.channel_id, message=shared)
    pinned = [e for e in await bot.events(inc.id) if e.kind == "pinned"]
    assert [e.text for e in pinned] == ["Oven 3 is on fire <!here>"]  # stored as typed, once

    general = bot.slack.add_channel("general", members=["UOTHER"])
    lunch = bot.slack.add_message(general.id, "UOTHER", "lunch?")
    await bot.shortcut(
        "add_to_timeline", user="UOTHER", channel=general.id, message={"ts": lunch.ts, "text": "lunch?"}
    )
    assert [e.id for e in await bot.events(inc.id) if e.kind == "pinned"] == [e.id for e in pinned]
    answers = [r for rs in bot.slack.responses.values() for r in rs]
    assert any("war room" in str(r.get("text")) for r in answers)
