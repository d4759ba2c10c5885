"""Buttons on the pinned template: Take command, Update, Run check, Resolve (Acknowledge is ack_incident).

Each one does what its slash command does, with the same permission checks, for the incident whose template
carries the button (a button of another incident's template cannot reach this one)."""

from __future__ import annotations

from typing import Any

from bot.incidents.lifecycle import LifecycleFlows
from bot.ports import Reply
from handlers.cmd_health import check
from handlers.cmd_lifecycle import incident_by_id, resolve, update
from handlers.parse import Command
from handlers.registry import Ctx, action


async def _bound(ctx: Ctx, body: dict[str, Any], *, change: bool) -> str:
    """The incident named by the button, with ctx.channel set to its war room."""
    inc = await incident_by_id(ctx, str(body["actions"][0].get("value", "")), change=change)
    return inc.id


@action("take_command")
async def take_command(ctx: Ctx, body: dict[str, Any]) -> Reply:
    incident_id = await _bound(ctx, body, change=True)
    outcome = await LifecycleFlows(ctx.svc).set_role(incident_id, ctx.user, "commander", ctx.user)
    return Reply(outcome.text, ok=outcome.ok)


@action("template_update")
async def template_update(ctx: Ctx, body: dict[str, Any]) -> Reply | None:
    await _bound(ctx, body, change=False)
    return await update(ctx, Command("update"))


@action("template_check")
async def template_check(ctx: Ctx, body: dict[str, Any]) -> Reply | None:
    await _bound(ctx, body, change=False)
    return await check(ctx, Command("check"))


@action("template_resolve")
async def template_resolve(ctx: Ctx, body: dict[str, Any]) -> Reply | None:
    await _bound(ctx, body, change=False)
    return await resolve(ctx, Command("resolve"))
