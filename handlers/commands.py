"""Core subcommands: declare, ack, escalate, help. A listener acks, parses, calls one flow, renders."""

from __future__ import annotations

from typing import Any

from bot.escalation import flows as esc
from bot.incidents.flows import Declared, DeclareRequest, IncidentFlows
from bot.permissions import Perm
from bot.ports import Reply
from bot.slack_text import from_slack
from handlers import table
from handlers.parse import Command
from handlers.registry import Ctx, action, command


@command("help")
async def help_(ctx: Ctx, cmd: Command) -> Reply:
    return Reply(table.help_text(table.build()))


def declared_reply(ctx: Ctx, declared: Declared) -> Reply:
    result, card = declared.result, declared.card
    if result.state == "rate_limited":
        return Reply(f"🛑 Slow down: {result.error}. Try again in a minute.", ok=False)
    if result.state == "open_for_problem":
        return Reply(f"{result.incident_id} is already open for this problem: <#{result.channel_id}>")
    if result.incident_id is None:
        return Reply("That request was already handled.")
    if declared.unavailable:
        return Reply(f"{result.incident_id} declared; its war room follows as soon as the database is back.")
    assert card is not None
    text, blocks = ctx.svc.render.declared_reply(card, result.channel_id, result.error)
    public = None
    if result.created and result.error is None and result.channel_id and ctx.channel != result.channel_id:
        # Everyone where it was declared sees it, with a way in; the declarer's own answer stays private.
        public = ctx.svc.render.declared_public(card, ctx.user, result.channel_id)
    return Reply(text, blocks, ok=result.error is None, public=public)


async def run_declare(ctx: Ctx, req: DeclareRequest) -> Reply:
    return declared_reply(ctx, await IncidentFlows(ctx.svc).declare_and_show(req))


@command("declare")
async def declare(ctx: Ctx, cmd: Command) -> Reply:
    a: dict[str, Any] = cmd.args
    req = DeclareRequest(
        severity=str(a["severity"]),
        summary=from_slack(str(a["summary"])),  # stored as typed: Slack sends a typed `<` as `&lt;`
        user=ctx.user,
        area=a.get("area"),  # type: ignore[arg-type]
        request_key=f"trigger:{ctx.trigger_id}" if ctx.trigger_id else None,
    )
    return await run_declare(ctx, req)


@command("ack")
async def ack(ctx: Ctx, cmd: Command) -> Reply:
    inc = await ctx.incident_here()
    await ctx.require(Perm.ACK, inc)
    result = await esc.acknowledge(ctx.svc, inc.id, ctx.user, "command")
    return _ack_reply(result)


def _ack_reply(result: esc.AckResult) -> Reply:
    if result.state == "acked":
        return Reply(
            f"Acknowledged {result.incident_id}. Escalation paused; unresolved-time steps still apply."
        )
    if result.state == "already":
        return Reply(f"{result.incident_id} was already acknowledged by <@{result.by}>.")
    if result.state == "resolved":
        return Reply(f"{result.incident_id} is already resolved.")
    return Reply("No such incident.", ok=False)


@command("escalate")
async def escalate(ctx: Ctx, cmd: Command) -> Reply:
    inc = await ctx.incident_here()
    await ctx.require(Perm.ESCALATE, inc)
    return Reply(await esc.escalate_now(ctx.svc, inc.id, ctx.user))


@action("ack_incident")
async def ack_button(ctx: Ctx, body: dict[str, Any]) -> Reply:
    inc = await ctx.incident_named(str(body["actions"][0].get("value", "")))
    if inc is None:
        return Reply("That incident no longer exists.", ok=False)
    # The value names the incident; whoever presses must be allowed to acknowledge *that* one.
    await ctx.require(Perm.ACK, inc)
    return _ack_reply(await esc.acknowledge(ctx.svc, inc.id, ctx.user, "button"))


@action("retry_provision")
async def retry_provision(ctx: Ctx, body: dict[str, Any]) -> Reply:
    incident_id = str(body["actions"][0].get("value", ""))
    return declared_reply(ctx, await IncidentFlows(ctx.svc).retry_provision(incident_id))
