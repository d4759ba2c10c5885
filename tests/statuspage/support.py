"""Helpers for the status-page tests: drive the Slack flow and read the public surfaces."""

from __future__ import annotations

from typing import Any

from bot.models import Incident
from sandbox.slack_standin import Message
from tests.support import BotHarness, form_values

COMMANDER, MEMBER, OUTSIDER = "UDECLARER", "UOTHER", "UOUTSIDER"


async def declare(bot: BotHarness, text: str = "declare P1 Factory orders failing") -> Incident:
    await bot.command(text, user=COMMANDER)
    incs = await bot.incidents()
    assert incs and incs[-1].provision_state == "ready"
    return incs[-1]


def opened_views(bot: BotHarness, callback_id: str) -> list[dict[str, Any]]:
    return [v["view"] for v in bot.slack.views.values() if v["view"]["callback_id"] == callback_id]


def room(bot: BotHarness, inc: Incident) -> list[Message]:
    return list(bot.slack.messages.get(inc.channel_id or "", []))


def ephemerals(bot: BotHarness, inc: Incident, user: str) -> list[Message]:
    return [m for m in room(bot, inc) if m.ephemeral_to == user]


def buttons(msg: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for b in msg.blocks or []:
        for el in b.get("elements", []) if b.get("type") == "actions" else []:
            out[el["action_id"]] = el.get("value", "")
    return out


def last_response_text(bot: BotHarness) -> str:
    """The reply to the last button press (buttons answer on their response_url)."""
    got = [r for rs in bot.slack.responses.values() for r in rs]
    assert got, "no reply to the button"
    return str(got[-1].get("text", ""))


async def compose_and_preview(
    bot: BotHarness,
    inc: Incident,
    *,
    user: str = COMMANDER,
    title: str = "Some pizza orders are failing",
    message: str = "Orders may fail at checkout. We are working on it.",
    status: str = "investigating",
    states: dict[str, str] | None = None,
) -> Message:
    """`/incident statuspage`, fill the modal, submit: returns the ephemeral preview."""
    before = len(opened_views(bot, "statuspage_compose"))
    await bot.command("statuspage", user=user, channel=inc.channel_id or "")
    views = opened_views(bot, "statuspage_compose")
    assert len(views) == before + 1, "the compose modal did not open"
    overrides: dict[str, str | None] = {"title": title, "message": message, "status": status}
    for k, v in (states or {"ordering": "degraded"}).items():
        overrides[f"c:{k}"] = v
    n = len(ephemerals(bot, inc, user))
    resp = await bot.view_submission(
        "statuspage_compose", form_values(views[-1], overrides), user=user, private_metadata=inc.id
    )
    assert resp.status_code == 200 and not resp.content.strip(b"{}"), resp.text
    got = ephemerals(bot, inc, user)
    assert len(got) == n + 1, "no preview came back"
    return got[-1]
