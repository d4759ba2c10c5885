"""Buttons on the pinned template: Take command, Update, Run check, Resolve (Acknowledge is ack_incident);
Reopen once it is resolved.

Each one does what its slash command does, with the same permission checks, for the incident whose template
carries the button (a button of another incident's template cannot reach this one). A press on a button
whose moment has passed (an old copy of the template still shown by a client after the resolve) is answered
and changes nothing."""

from __future__ import annotations

from typing import Any

from bot.incidents.lifecycle import LifecycleFlows
from bot.ports import ChatError, Reply
from bot.states import IncidentStatus
from handlers.cmd_health import check
from handlers.cmd_lifecycle import incident_by_id, reopen, resolve, update
from handlers.parse import Command, UsageError
from handlers.registry import Ctx, action


async def _bound(ctx: Ctx, body: dict[str, Any], *, change: bool) -> str:
    """The incident named by the button, with ctx.channel set to its war room; a resolved one is refused
    before anything else (the buttons of an open incident are stale once it is resolved)."""
    incident_id = str(body["actions"][0].get("value", "")).partition("|")[0]
    inc = await ctx.incident_named(incident_id)
    if inc is not None and inc.status == IncidentStatus.RESOLVED:
        room = f" in <#{inc.channel_id}>" if inc.channel_id else ""
        raise UsageError(
            f"{inc.id} is already resolved: that button is from before the resolve, so nothing was done."
            f" `/incident reopen`{room} reopens it."
        )
    return (await incident_by_id(ctx, incident_id, change=change)).id


@action("take_command")
async def take_command(ctx: Ctx, body: dict[str, Any]) -> Reply | None:
    """ "Take command" while nobody commands; "Take over command" (confirmed in Slack) carries the commander the
    template showed, so a stale press never takes over from someone else than the person the presser saw."""
    incident_id = await _bound(ctx, body, change=False)
    _, _, shown = str(body["actions"][0].get("value", "")).partition("|")
    inc = await incident_by_id(ctx, incident_id, change=True)
    if inc.commander == ctx.user:
        return Reply(f"You already command {inc.id}.", ok=False)
    if inc.commander and inc.commander != shown:
        return Reply(f"<@{inc.commander}> already commands {inc.id}.", ok=False)
    outcome = await LifecycleFlows(ctx.svc).set_role(inc.id, ctx.user, "commander", ctx.user)
    if outcome.ok and outcome.changed:
        return None  # the hand-over shows in the room (its line, the template): no private echo
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


@action("template_reopen")
async def template_reopen(ctx: Ctx, body: dict[str, Any]) -> Reply | None:
    """On a resolved template: what `/incident reopen` does; a press after a reopen is answered, not repeated."""
    inc = await incident_by_id(ctx, str(body["actions"][0].get("value", "")), change=False)
    if inc.status != IncidentStatus.RESOLVED:
        return Reply(f"{inc.id} is already open ({inc.status}): nothing to reopen.", ok=False)
    return await reopen(ctx, Command("reopen"))


@action("join_war_room")
async def join_war_room(ctx: Ctx, body: dict[str, Any]) -> Reply:
    """From an announcement: anyone in the workspace may join the war room (it is a public channel)."""
    inc = await incident_by_id(ctx, str(body["actions"][0].get("value", "")), change=False)
    assert inc.channel_id is not None
    try:
        await ctx.svc.chat.invite(inc.channel_id, [ctx.user])
    except ChatError as exc:
        if exc.error != "already_in_channel":
            return Reply(
                f"Could not add you to <#{inc.channel_id}> ({exc.error}); open it from the channel list."
            )
    return Reply(f"You are in <#{inc.channel_id}>, the war room of {inc.id}.")
