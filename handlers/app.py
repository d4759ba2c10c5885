"""Builds the Bolt AsyncApp: listeners ack at once and hand the work to a tracked task."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from bot import incident_store as service
from bot.context import Services
from bot.db import DatabaseUnavailable
from bot.errors import UserFacingError
from bot.ports import ChatError, Reply

# The command modules, named explicitly: importing them registers their handlers, actions, events, views.
from handlers import (
    cmd_dr,
    cmd_health,
    cmd_lifecycle,
    cmd_pir,
    commands,
    events,
    registry,
    table,
)
from handlers.parse import UsageError, parse

log = logging.getLogger("incident_bot.handlers")

UNAVAILABLE = (
    "⚠️ The incident database is temporarily unavailable. Nothing was changed; try again in a minute."
)
BROKEN = "⚠️ Something went wrong handling that. It has been logged; try again."

COMMAND_MODULES = (commands, cmd_lifecycle, cmd_health, cmd_pir, cmd_dr, events)
TABLE = table.build()


def _load_modules() -> tuple[object, ...]:
    """The command modules are imported with this module; kept for callers written before the table."""
    return COMMAND_MODULES


async def reply_to(ctx: registry.Ctx, reply: Reply | None, *, replace: bool = False) -> None:
    if reply is None:
        return
    payload: dict[str, Any] = {"response_type": "ephemeral", "text": reply.text}
    if reply.blocks:
        payload["blocks"] = reply.blocks
    try:
        if ctx.response_url:
            if replace:
                payload["replace_original"] = True
            await ctx.svc.chat.respond(ctx.response_url, payload)
        else:
            await ctx.svc.chat.ephemeral(ctx.channel, ctx.user, reply.text, reply.blocks)
    except ChatError as exc:
        log.warning("could not reply to %s: %s", ctx.user, exc)


async def run_guarded(ctx: registry.Ctx, work: Any, *, replace: bool = False) -> None:
    """Run a handler after the ack; every outcome becomes an answer to the person, never a stack trace."""
    try:
        reply = await work
    except UserFacingError as exc:  # UsageError, DrillRefused, SignoffError: the message is the answer
        reply = Reply(exc.message, ok=False)
    except DatabaseUnavailable:
        reply = Reply(UNAVAILABLE, ok=False)
    except Exception:
        log.exception("handler failed")
        reply = Reply(BROKEN, ok=False)
    await reply_to(ctx, reply, replace=replace)


async def command_ack(svc: Services, command: dict[str, Any]) -> dict[str, Any] | None:
    """Handle `/incident …`: returns the ack body at once (None = empty 200) and leaves the work to a task.

    Shared by the Bolt listener and the fast path in wiring.app, so both behave the same."""
    ctx = registry.Ctx(
        svc,
        user=command.get("user_id", ""),
        channel=command.get("channel_id", ""),
        trigger_id=command.get("trigger_id"),
        response_url=command.get("response_url"),
        text=command.get("text") or "",
    )
    try:
        cmd = parse(command.get("text"))
    except UsageError as exc:
        return {"response_type": "ephemeral", "text": exc.message}
    svc.metrics.commands.labels(sub=cmd.name).inc()
    row = TABLE.get(cmd.name)
    if row is None:
        return {
            "response_type": "ephemeral",
            "text": f"`/incident {cmd.name}` is not available in this build.",
        }
    handler = row.handler
    if row.instant:
        reply = await handler(ctx, cmd)
        return {"response_type": "ephemeral", "text": reply.text if reply else ""}
    svc.tasks.spawn(run_guarded(ctx, handler(ctx, cmd), replace=cmd.name == "declare"), f"cmd-{cmd.name}")
    if cmd.name == "declare":
        return {
            "response_type": "ephemeral",
            "text": f"⏳ Declaring {cmd.args['severity']}: {cmd.args['summary']}…",
        }
    return None


def build_bolt_app(svc: Services, client: AsyncWebClient) -> AsyncApp:
    token = svc.settings.secret("slack_bot_token")

    async def authorize(enterprise_id: str | None, team_id: str | None, **_: Any) -> AuthorizeResult:
        # Single workspace: no auth.test round trip on the ack path (see shared perf notes).
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)

    app = AsyncApp(
        client=client,
        signing_secret=svc.settings.secret("slack_signing_secret"),
        authorize=authorize,
        process_before_response=True,  # respond when the listener returns: it acks and returns at once
        ignoring_self_events_enabled=False,
        ssl_check_enabled=False,
        url_verification_enabled=True,
    )

    @app.command("/incident")
    async def on_command(ack: Any, command: dict[str, Any]) -> None:
        payload = await command_ack(svc, command)
        await (ack(**payload) if payload else ack())

    @app.action(re.compile(r".+"))
    async def on_action(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        action_id = (body.get("actions") or [{}])[0].get("action_id", "")
        handler = registry.ACTIONS.get(action_id)
        if handler is None:
            return
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
        ctx = registry.Ctx(
            svc,
            user=(body.get("user") or {}).get("id", ""),
            channel=channel,
            trigger_id=body.get("trigger_id"),
            response_url=body.get("response_url"),
        )
        svc.tasks.spawn(run_guarded(ctx, handler(ctx, body)), f"action-{action_id}")

    @app.view(re.compile(r".+"))
    async def on_view(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        handler = registry.VIEWS.get(view.get("callback_id", ""))
        if handler is None:
            await ack()
            return
        values = registry.view_values(view)
        errors = handler.validate(values)
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        ctx = registry.Ctx(svc, user=(body.get("user") or {}).get("id", ""), channel="")
        svc.tasks.spawn(run_guarded(ctx, handler.submit(ctx, view, values)), "view")

    @app.event(re.compile(r".+"))
    async def on_event(ack: Any, body: dict[str, Any], event: dict[str, Any]) -> None:
        await ack()
        handler = registry.EVENTS.get(event.get("type", ""))
        if handler is None:
            return

        async def work() -> None:
            event_id = body.get("event_id")
            if event_id and not await service.claim_request_once(
                svc.db, f"event:{event_id}", svc.clock.now()
            ):
                return  # Slack's retry of an event we already handled
            await handler(svc, event)

        svc.tasks.spawn(work(), f"event-{event.get('type')}")

    return app
