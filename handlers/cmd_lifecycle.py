"""Lifecycle subcommands, buttons and forms: update, status, severity, commander/comms, note, resolve,
reopen, timeline, and the declare form. Each handler finds the incident, calls one flow, renders."""

from __future__ import annotations

import logging
from typing import Any

from bot.incidents.flows import DeclareRequest
from bot.incidents.lifecycle import (
    LifecycleFlows,
    Outcome,
    Role,
    TemplateEdit,
    TimelinePage,
    clean_field,
    open_war_rooms,
    status_options,
)
from bot.models import Incident
from bot.permissions import Perm
from bot.ports import ChatError, Reply
from bot.slack_text import from_slack
from handlers import lifecycle_blocks as lb
from handlers.commands import run_declare
from handlers.guard import button_incident
from handlers.parse import Command, UsageError
from handlers.registry import REPLACES_MESSAGE, VIEWS, Ctx, ViewHandler, action, command

log = logging.getLogger("incident_bot.lifecycle")


async def war_room_incident(ctx: Ctx, *, change: bool) -> Incident:
    """The incident of the channel the command came from; elsewhere, say which war rooms are open."""
    inc = await ctx.war_room()
    if inc is None:
        raise UsageError(lb.where_to_run(await open_war_rooms(ctx.svc)))
    return await ctx.incident_to_change() if change else inc


async def incident_by_id(ctx: Ctx, incident_id: str, *, change: bool) -> Incident:
    """For buttons and forms, which carry the incident id: the same checks, against its war room."""
    inc = await ctx.incident_named(incident_id)
    if inc is None or not inc.channel_id:
        raise UsageError("That incident no longer exists.")
    ctx.channel = inc.channel_id
    return await ctx.incident_to_change() if change else inc


def _reply(outcome: Outcome) -> Reply | None:
    """Quiet by default: a change already shows in the war room (the line and the edited template), so the
    person who made it gets no private echo; refusals and no-ops are still answered."""
    if outcome.ok and outcome.changed:
        return None
    return Reply(outcome.text, ok=outcome.ok)


async def _open_form(ctx: Ctx, view: dict[str, Any], fallback: str) -> None:
    if not ctx.trigger_id:
        raise UsageError(fallback)
    try:
        await ctx.svc.chat.open_view(ctx.trigger_id, view)
    except ChatError as exc:
        raise UsageError(f"Slack would not open the form ({exc.error}). {fallback}") from None


# -- commands -----------------------------------------------------------------------------------------------


@command("update")
async def update(ctx: Ctx, cmd: Command) -> Reply | None:
    inc = await war_room_incident(ctx, change=True)
    view = lb.update_modal(inc, ctx.svc.playbook, status_options(inc.status))
    await _open_form(ctx, view, "Try `/incident update` again, or use `/incident status …`.")
    return None


@command("status")
async def status(ctx: Ctx, cmd: Command) -> Reply | None:
    inc = await war_room_incident(ctx, change=True)
    return _reply(await LifecycleFlows(ctx.svc).set_status(inc.id, ctx.user, str(cmd.args["status"])))


@command("severity")
async def severity(ctx: Ctx, cmd: Command) -> Reply | None:
    inc = await war_room_incident(ctx, change=True)
    return _reply(await LifecycleFlows(ctx.svc).set_severity(inc.id, ctx.user, str(cmd.args["severity"])))


async def _role(ctx: Ctx, cmd: Command, role: Role) -> Reply | None:
    inc = await war_room_incident(ctx, change=False)
    await ctx.require(Perm.REASSIGN, inc)
    return _reply(await LifecycleFlows(ctx.svc).set_role(inc.id, ctx.user, role, str(cmd.args["user"])))


@command("commander")
async def commander(ctx: Ctx, cmd: Command) -> Reply | None:
    return await _role(ctx, cmd, "commander")


@command("comms")
async def comms(ctx: Ctx, cmd: Command) -> Reply | None:
    return await _role(ctx, cmd, "comms_lead")


@command("note")
async def note(ctx: Ctx, cmd: Command) -> Reply | None:
    inc = await war_room_incident(ctx, change=True)
    text = from_slack(str(cmd.args["text"]))  # stored as typed: Slack sends a typed `<` as `&lt;`
    return _reply(await LifecycleFlows(ctx.svc).note(inc.id, ctx.user, text))


@command("resolve")
async def resolve(ctx: Ctx, cmd: Command) -> Reply:
    inc = await war_room_incident(ctx, change=True)
    result = await LifecycleFlows(ctx.svc).resolve(inc.id, ctx.user)
    if result.state == "blocked" and result.check is not None:
        text, blocks = lb.resolve_checklist(result.check)
        return Reply(text, blocks, ok=False)
    return Reply(result.text, ok=result.ok)


@command("reopen")
async def reopen(ctx: Ctx, cmd: Command) -> Reply | None:
    inc = await war_room_incident(ctx, change=True)
    return _reply(await LifecycleFlows(ctx.svc).reopen(inc.id, ctx.user))


@command("timeline")
async def timeline(ctx: Ctx, cmd: Command) -> Reply:
    inc = await war_room_incident(ctx, change=False)
    page = await LifecycleFlows(ctx.svc).view_timeline(
        inc.id, ctx.user, page_size=lb.PAGE_SIZE, all_kinds=bool(cmd.args.get("all"))
    )
    return _timeline_reply(page)


async def _timeline_page(ctx: Ctx, incident_id: str, before: int | None, *, all_kinds: bool = False) -> Reply:
    page = await LifecycleFlows(ctx.svc).timeline(
        incident_id, ctx.user, before=before, page_size=lb.PAGE_SIZE, all_kinds=all_kinds
    )
    return _timeline_reply(page)


def _timeline_reply(page: TimelinePage | None) -> Reply:
    if page is None:
        raise UsageError("That incident no longer exists.")
    text, blocks = lb.timeline_blocks(page)
    return Reply(text, blocks)


@command("declare_modal")
async def declare_form(ctx: Ctx, cmd: Command) -> Reply | None:
    await _open_form(ctx, lb.declare_modal(ctx.svc.playbook, ctx.channel), "Use " + _DECLARE_HINT)
    return None


_DECLARE_HINT = "`/incident declare P1 <summary> [--area db|app|infra|security|api|frontend]`."


# -- buttons ------------------------------------------------------------------------------------------------


@action("resolve_anyway")
async def resolve_anyway(ctx: Ctx, body: dict[str, Any]) -> Reply:
    inc = await button_incident(ctx.svc, str(body["actions"][0].get("value", "")), ctx.channel)
    await ctx.require(Perm.RESOLVE_ANYWAY, inc)
    result = await LifecycleFlows(ctx.svc).resolve(inc.id, ctx.user, force=True)
    return Reply(result.text, ok=result.ok)


REPLACES_MESSAGE.add("timeline_older")


@action("timeline_older")
async def timeline_older(ctx: Ctx, body: dict[str, Any]) -> Reply:
    parsed = lb.parse_older(str(body["actions"][0].get("value", "")))
    if parsed is None:
        raise UsageError("That button is out of date; run `/incident timeline` again.")
    inc = await incident_by_id(ctx, parsed[0], change=False)
    return await _timeline_page(ctx, inc.id, parsed[1], all_kinds=parsed[2])


# -- forms --------------------------------------------------------------------------------------------------


async def _tell(ctx: Ctx, reply: Reply) -> None:
    """Forms have no response_url: answer in the channel ephemerally, or by DM if that is refused
    (e.g. someone who is not in the war room)."""
    try:
        if not ctx.channel:
            raise ChatError("chat.postEphemeral", "channel_not_found")
        await ctx.svc.chat.ephemeral(ctx.channel, ctx.user, reply.text, reply.blocks)
    except ChatError:
        try:
            await ctx.svc.chat.post(await ctx.svc.chat.open_dm(ctx.user), reply.text, reply.blocks)
        except ChatError as exc:
            log.warning("could not answer %s: %s", ctx.user, exc)


async def submit_update(ctx: Ctx, view: dict[str, Any], values: dict[str, Any]) -> None:
    try:
        inc = await incident_by_id(ctx, str(view.get("private_metadata") or ""), change=True)
        edit = TemplateEdit(
            summary=" ".join(clean_field(values.get("summary")).split()),
            impact=clean_field(values.get("impact")),
            root_cause=clean_field(values.get("root_cause")),
            next_steps=clean_field(values.get("next_steps")),
            severity=str(values.get("severity") or inc.severity),
            status=values.get("status"),
        )
        outcome = await LifecycleFlows(ctx.svc).update_template(inc.id, ctx.user, edit)
    except UsageError as exc:
        outcome = Outcome(False, exc.message)
    reply = _reply(outcome)
    if reply is not None:  # success shows as the edited template and the line in the channel
        await _tell(ctx, reply)


async def submit_declare(ctx: Ctx, view: dict[str, Any], values: dict[str, Any]) -> None:
    ctx.channel = str(view.get("private_metadata") or "")  # where /incident declare was typed
    req = DeclareRequest(
        severity=str(values["severity"]),
        summary=" ".join(clean_field(values.get("summary")).split()),
        user=ctx.user,
        impact=clean_field(values.get("impact")),
        area=values.get("area") or None,
        # A double submit (or Slack's retry) of the same form declares once.
        request_key=f"view:{view['id']}" if view.get("id") else None,
        source="modal",
    )
    await _tell(ctx, await run_declare(ctx, req))


VIEWS[lb.UPDATE_CALLBACK] = ViewHandler(lb.validate_update, submit_update)
VIEWS[lb.DECLARE_CALLBACK] = ViewHandler(lb.validate_declare, submit_declare)
