"""Buttons whose moment has passed: removed from the message when it passes, and a press on an old copy (a
client that still shows it) gets a clear ephemeral answer and changes nothing.

Every press is a signed block_actions payload through the bot's HTTP front door, shaped as Slack sends it
(container, channel, the message with its blocks as the client showed it, a response_url)."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select

from bot.models import Incident, OutboxMessage, TimelineEvent
from sandbox.factory_sim import FactoryServers
from tests.support import BotHarness


async def press(
    bot: BotHarness, element: dict[str, Any], *, user: str, channel: str, message: Any = None
) -> list[dict[str, Any]]:
    """Press `element` (a button as rendered) on `message` (the copy the client shows); returns what the
    bot said back on the press's response_url."""
    response_url = bot.slack.new_response_url()
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": {"id": "T0STANDIN"},
        "user": {"id": user},
        "api_app_id": "A0TEST",
        "trigger_id": f"standin-{uuid.uuid4().hex}",
        "container": {"type": "message", "message_ts": getattr(message, "ts", ""), "channel_id": channel},
        "channel": {"id": channel},
        "response_url": response_url,
        "actions": [
            {
                "action_id": element["action_id"],
                "value": element.get("value", ""),
                "type": "button",
                "block_id": "b",
            }
        ],
    }
    if message is not None:
        payload["message"] = {"type": "message", "ts": message.ts, "text": message.text}
        payload["message"]["blocks"] = message.blocks or []
    body = urlencode({"payload": json.dumps(payload)}).encode()
    resp = await bot.post_signed(body, "application/x-www-form-urlencoded")
    assert resp.status_code == 200
    await bot.drain()
    return bot.replies(response_url)


def buttons(blocks: Any) -> dict[str, dict[str, Any]]:
    return {
        e["action_id"]: e for b in blocks or [] if b.get("type") == "actions" for e in b.get("elements", [])
    }


async def counts(bot: BotHarness) -> tuple[int, int]:
    """Timeline events and outbox rows: a stale press adds neither."""
    async with bot.svc.db.session() as s:
        events = (await s.execute(select(func.count()).select_from(TimelineEvent))).scalar_one()
        rows = (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one()
    return events, rows


async def incident(bot: BotHarness) -> Incident:
    return (await bot.incidents())[-1]


def said(replies: list[dict[str, Any]]) -> str:
    assert replies, "the press got no answer"
    assert all(r.get("response_type", "ephemeral") == "ephemeral" for r in replies), replies
    return " ".join(str(r.get("text", "")) for r in replies)


async def test_page_dm_acknowledge_after_ack_and_after_resolve(bot: BotHarness) -> None:
    await bot.command("declare P0 Nobody can order pizza")
    inc = await incident(bot)
    old = {u: bot.slack.messages[f"D{u}"][-1] for u in ("U01PRIMARY", "U02SECOND")}
    ack = buttons(old["U01PRIMARY"].blocks)["ack_incident"]

    await press(bot, ack, user="U01PRIMARY", channel="DU01PRIMARY", message=old["U01PRIMARY"])
    # Every page DM lost its button at once, the secondary's too.
    for u, m in old.items():
        now = bot.slack.message(f"D{u}", m.ts)
        assert now is not None and "ack_incident" not in buttons(now.blocks), u

    # The secondary's client still shows the old DM: the press says who acknowledged and changes nothing.
    before = await counts(bot)
    got = said(await press(bot, ack, user="U02SECOND", channel="DU02SECOND", message=old["U02SECOND"]))
    assert "already acknowledged by <@U01PRIMARY>" in got
    assert (await incident(bot)).acknowledged_by == "U01PRIMARY"
    assert await counts(bot) == before

    await bot.action("resolve_anyway", inc.id, user="UDECLARER", channel=inc.channel_id or "")
    before = await counts(bot)
    got = said(await press(bot, ack, user="U01PRIMARY", channel="DU01PRIMARY", message=old["U01PRIMARY"]))
    assert "already resolved" in got
    assert await counts(bot) == before


async def test_template_buttons_after_resolve_answer_and_change_nothing(bot: BotHarness) -> None:
    await bot.command("declare P1 Orders failing")
    inc = await incident(bot)
    assert inc.channel_id and inc.template_ts
    old = bot.slack.message(inc.channel_id, inc.template_ts)
    assert old is not None
    live = buttons(old.blocks)
    assert {"ack_incident", "template_update", "template_check", "template_resolve"} <= set(live)

    await bot.action("resolve_anyway", inc.id, user="UDECLARER", channel=inc.channel_id)
    shown = bot.slack.message(inc.channel_id, inc.template_ts)
    assert shown is not None
    remaining = set(buttons(shown.blocks))
    assert remaining <= {"template_reopen", "template_pir_done"}, (
        remaining
    )  # only what still applies to a resolved incident

    views_before = len(bot.slack.calls_to("views.open"))
    posts_before = len(bot.slack.calls_to("chat.postMessage"))
    before = await counts(bot)
    for action_id in ("template_update", "template_check", "template_resolve", "ack_incident"):
        got = said(await press(bot, live[action_id], user="UDECLARER", channel=inc.channel_id, message=old))
        assert "resolved" in got, (action_id, got)
    got = said(
        await press(
            bot,
            {"action_id": "take_command", "value": inc.id},
            user="UDECLARER",
            channel=inc.channel_id,
            message=old,
        )
    )
    assert "resolved" in got
    assert len(bot.slack.calls_to("views.open")) == views_before  # no update form for a resolved incident
    assert len(bot.slack.calls_to("chat.postMessage")) == posts_before  # no check run, nothing posted
    assert await counts(bot) == before
    assert (await incident(bot)).status == "RESOLVED"


async def test_declare_suggestion_declares_once(hbot: BotHarness, factory: FactoryServers) -> None:
    factory.set_mode("fail")
    _, url = await hbot.command("check")
    report = hbot.replies(url)[-1]
    suggestion = buttons(report["blocks"])["declare_from_check"]

    first = await press(hbot, suggestion, user="UDECLARER", channel="CGENERAL")
    assert len(await hbot.incidents()) == 1
    inc = await incident(hbot)
    # The answer replaced the report it was pressed on: the suggestion is gone from it.
    assert first and first[0].get("replace_original") is True
    assert all("declare_from_check" not in buttons(r.get("blocks")) for r in first)

    # The old copy pressed again (another tab, a double click): nothing new is declared.
    before = await counts(hbot)
    got = said(await press(hbot, suggestion, user="UDECLARER", channel="CGENERAL"))
    assert inc.id in got and "already" in got.lower()
    assert len(await hbot.incidents()) == 1
    assert (await counts(hbot))[0] == before[0]


async def test_run_recovery_after_recovery(hbot: BotHarness, factory: FactoryServers) -> None:
    await hbot.command("declare P1 Orders failing")
    inc = await incident(hbot)
    assert inc.channel_id
    factory.set_mode("fail")
    await hbot.command("check", channel=inc.channel_id)
    report = next(
        m for m in reversed(hbot.slack.messages[inc.channel_id]) if "run_recovery" in buttons(m.blocks)
    )
    recover = buttons(report.blocks)["run_recovery"]

    await press(hbot, recover, user="UDECLARER", channel=inc.channel_id, message=report)
    assert factory.sim.mode == "healthy"
    # The report it was pressed on lost the button; the "after recovery" report offers none (chaos ended).
    shown = hbot.slack.message(inc.channel_id, report.ts)
    assert shown is not None and "run_recovery" not in buttons(shown.blocks)
    assert all("run_recovery" not in buttons(m.blocks) for m in hbot.slack.messages[inc.channel_id])

    # The old copy pressed again: a clear answer, no second recovery.
    factory.set_mode("fail")  # chaos again: only a fresh check may offer recovery again
    recoveries = [e.id for e in await hbot.events(inc.id) if e.kind == "recovery"]
    got = said(await press(hbot, recover, user="UDECLARER", channel=inc.channel_id, message=report))
    assert "already" in got and "/incident check" in got
    assert [e.id for e in await hbot.events(inc.id) if e.kind == "recovery"] == recoveries
    assert factory.sim.mode == "fail"

    # A fresh check offers a fresh button, which works.
    await hbot.command("check", channel=inc.channel_id)
    fresh = next(
        m for m in reversed(hbot.slack.messages[inc.channel_id]) if "run_recovery" in buttons(m.blocks)
    )
    assert fresh.ts != report.ts
    await press(
        hbot, buttons(fresh.blocks)["run_recovery"], user="UDECLARER", channel=inc.channel_id, message=fresh
    )
    assert factory.sim.mode == "healthy"


async def test_reopen_button_on_the_resolved_template_reopens_once(bot: BotHarness) -> None:
    await bot.command("declare P2 Checkout slow")
    inc = await incident(bot)
    assert inc.channel_id and inc.template_ts
    await bot.action("resolve_anyway", inc.id, user="UDECLARER", channel=inc.channel_id)
    resolved = bot.slack.message(inc.channel_id, inc.template_ts)
    assert resolved is not None
    reopen = buttons(resolved.blocks)["template_reopen"]

    # An outsider cannot reopen it.
    await press(bot, reopen, user="UOUTSIDER", channel=inc.channel_id, message=resolved)
    assert (await incident(bot)).status == "RESOLVED"

    assert await press(bot, reopen, user="UDECLARER", channel=inc.channel_id, message=resolved) == []  # quiet
    assert (await incident(bot)).status == "INVESTIGATING"
    shown = bot.slack.message(inc.channel_id, inc.template_ts)
    assert shown is not None and "template_reopen" not in buttons(shown.blocks)
    assert "template_resolve" in buttons(shown.blocks)

    before = await counts(bot)
    got = said(await press(bot, reopen, user="UDECLARER", channel=inc.channel_id, message=resolved))
    assert "already open" in got
    assert await counts(bot) == before
    assert (await incident(bot)).cycle == inc.cycle + 1
