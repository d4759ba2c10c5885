"""The pinned template carries the buttons a responder needs; each does what its command does, checked."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from bot.incidents.flows import IncidentFlows
from bot.models import Incident
from tests.support import BotHarness


def _buttons(bot: BotHarness, inc: Incident) -> dict[str, dict[str, Any]]:
    assert inc.channel_id and inc.template_ts
    msg = bot.slack.message(inc.channel_id, inc.template_ts)
    assert msg is not None
    return {
        e["action_id"]: e
        for b in msg.blocks or []
        if b["type"] == "actions" and b.get("block_id") == "template_actions"
        for e in b["elements"]
    }


async def _incident(bot: BotHarness) -> Incident:
    return (await bot.incidents())[-1]


async def test_template_buttons_follow_the_incident(bot: BotHarness) -> None:
    await bot.command("declare P1 Orders failing")
    inc = await _incident(bot)
    assert set(_buttons(bot, inc)) == {
        "ack_incident",
        "take_command",  # "Take over command" from the declarer, who commands
        "template_update",
        "template_check",
        "template_resolve",
    }
    assert all(b["value"] == inc.id for k, b in _buttons(bot, inc).items() if k != "take_command")

    # A monitor-declared incident has no commander: the template offers to take command.
    async with bot.svc.db.session() as s:
        await s.execute(update(Incident).where(Incident.id == inc.id).values(commander=None))
    await IncidentFlows(bot.svc).refresh_template(inc.id)
    assert "take_command" in _buttons(bot, inc)

    # An outsider (not in the war room) cannot take command.
    await bot.action("take_command", inc.id, user="UOUTSIDER", channel=inc.channel_id or "")
    assert (await _incident(bot)).commander is None
    # A member can; the button then becomes "Take over command", naming who commands now (confirmed first).
    await bot.action("take_command", inc.id, user="UDECLARER", channel=inc.channel_id or "")
    inc = await _incident(bot)
    assert inc.commander == "UDECLARER"
    over = _buttons(bot, inc)["take_command"]
    assert over["text"]["text"] == "Take over command" and over["value"] == f"{inc.id}|UDECLARER"
    assert over["confirm"]["confirm"]["text"] == "Take over"
    # A press of the old "Take command" (no commander shown) never takes over; the hand-over button does.
    await bot.action("take_command", inc.id, user="U01PRIMARY", channel=inc.channel_id or "")
    assert (await _incident(bot)).commander == "UDECLARER"
    await bot.action("take_command", f"{inc.id}|UOTHER", user="U01PRIMARY", channel=inc.channel_id or "")
    assert (await _incident(bot)).commander == "UDECLARER"  # it showed someone else: stale
    await bot.action("take_command", over["value"], user="U01PRIMARY", channel=inc.channel_id or "")
    inc = await _incident(bot)
    assert inc.commander == "U01PRIMARY"
    assert _buttons(bot, inc)["take_command"]["value"] == f"{inc.id}|U01PRIMARY"

    # Acknowledge from the template: the button goes away once acknowledged.
    await bot.action("ack_incident", inc.id, user="U01PRIMARY", channel=inc.channel_id or "")
    inc = await _incident(bot)
    assert inc.acknowledged_by == "U01PRIMARY"
    assert "ack_incident" not in _buttons(bot, inc)

    # Update opens the same form as /incident update.
    await bot.action("template_update", inc.id, user="UDECLARER", channel=inc.channel_id or "")
    assert bot.slack.calls_to("views.open", ok=True)

    # Resolve before the criteria are met answers with the checklist, and resolves nothing.
    await bot.action("template_resolve", inc.id, user="UDECLARER", channel=inc.channel_id or "")
    assert (await _incident(bot)).status != "RESOLVED"
    # U01PRIMARY commands now (resolving anyway is the commander's).
    await bot.action("resolve_anyway", inc.id, user="U01PRIMARY", channel=inc.channel_id or "")
    inc = await _incident(bot)
    assert inc.status == "RESOLVED"
    # A resolved template is a record: only Reopen, and closing the war room once the review is done.
    assert set(_buttons(bot, inc)) == {"template_reopen", "template_pir_done"}


async def test_a_button_of_another_incident_cannot_reach_this_one(bot: BotHarness) -> None:
    await bot.command("declare P1 First")
    first = await _incident(bot)
    await bot.command("declare P2 Second", user="UOTHER")
    second = await _incident(bot)
    assert first.id != second.id
    # UOTHER is in the second war room, not the first: pressing a button that names the first is refused.
    await bot.action("take_command", first.id, user="UOTHER", channel=second.channel_id or "")
    assert (await _incident(bot)).commander == "UOTHER"
    async with bot.svc.db.session() as s:
        got = await s.get(Incident, first.id)
    assert got is not None and got.commander == "UDECLARER"
