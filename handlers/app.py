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
from bot.slack_text import esc, from_slack

# The command modules, named explicitly: importing them registers their handlers, actions, events, views.
from handlers import (
    cmd_alerts,
    cmd_dr,
    cmd_health,
    cmd_home,
    cmd_lifecycle,
    cmd_oncall,
    cmd_pir,
    cmd_playbook,
    cmd_shortcuts,
    cmd_statuspage,
    cmd_template,
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

COMMAND_MODULES = (
    commands,
    cmd_lifecycle,
    cmd_health,
    cmd_pir,
    cmd_dr,
    cmd_statuspage,
    cmd_alerts,
    events,
    cmd_home,
    cmd_shortcuts,
    cmd_playbook,
    cmd_template,
    cmd_oncall,
)
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
        # A response_url naming a host Slack does not own is ignored: the answer goes out as an ephemeral.
        if ctx.response_url and ctx.svc.settings.response_url_allowed(ctx.response_url):
            if replace:
                payload["replace_original"] = True
            await ctx.svc.chat.respond(ctx.response_url, payload)
            if reply.public is not None:
                text, blocks = reply.public
                public = {"response_type": "in_channel", "text": text, "blocks": blocks}
                await ctx.svc.chat.respond(ctx.response_url, public)
        else:
            await tell_user(ctx.svc, ctx.user, ctx.channel, reply)
    except ChatError as exc:
        log.warning("could not reply to %s: %s", ctx.user, exc)


async def tell_user(svc: Services, user: str, channel: str, reply: Reply) -> None:
    """An ephemeral in `channel`, or a DM when there is no channel (forms) or Slack refuses it (the person is
    not in it): an answer that matters, such as "your action was lost", must reach the person."""
    try:
        if not channel:
            raise ChatError("chat.postEphemeral", "channel_not_found")
        await svc.chat.ephemeral(channel, user, reply.text, reply.blocks)
    except ChatError:
        await svc.chat.post(await svc.chat.open_dm(user), reply.text, reply.blocks)


# Events a person caused, and what to tell them when handling one failed (the ack went out: no retry).
_EVENT_LOST = {
    "reaction_added": "⚠️ Your 📌 could not be put on the incident timeline ({why}). Remove it and add it again.",
    "reaction_removed": "⚠️ Taking your 📌 off the incident timeline failed ({why}). Add it and remove it again.",
}


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
            "text": f"⏳ Declaring {cmd.args['severity']}: {esc(from_slack(str(cmd.args['summary'])))}…",
        }
    return None


async def _event_failed(svc: Services, event: dict[str, Any], exc: Exception) -> None:
    if isinstance(exc, DatabaseUnavailable):
        log.warning("event %s dropped: database unavailable", event.get("type"))
        why = "the incident database is temporarily unavailable"
    else:
        log.exception("event %s failed", event.get("type"))
        why = "it has been logged"
    template, user = _EVENT_LOST.get(str(event.get("type"))), event.get("user")
    if template is None or not isinstance(user, str) or not user:
        return
    item = event.get("item")
    channel = item.get("channel") if isinstance(item, dict) else None
    try:
        await tell_user(
            svc, user, channel if isinstance(channel, str) else "", Reply(template.format(why=why))
        )
    except ChatError as tell_exc:
        log.warning("could not tell %s their event was lost: %s", user, tell_exc)


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

    @app.command(svc.settings.slash_command)
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
        replace = action_id in registry.REPLACES_MESSAGE
        svc.tasks.spawn(run_guarded(ctx, handler(ctx, body), replace=replace), f"action-{action_id}")

    @app.shortcut(re.compile(r".+"))
    async def on_shortcut(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        callback_id = str(body.get("callback_id") or "")
        handler = registry.SHORTCUTS.get(callback_id)
        if handler is None:
            return
        ctx = registry.Ctx(
            svc,
            user=(body.get("user") or {}).get("id", ""),
            channel=(body.get("channel") or {}).get("id", ""),
            trigger_id=body.get("trigger_id"),
            response_url=body.get("response_url"),
        )
        svc.tasks.spawn(run_guarded(ctx, handler(ctx, body)), f"shortcut-{callback_id}")

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
            try:
                event_id = body.get("event_id")
                if event_id and not await service.claim_request_once(
                    svc.db, f"event:{event_id}", svc.clock.now()
                ):
                    return  # Slack's retry of an event we already handled
                await handler(svc, event)
            except Exception as exc:
                await _event_failed(svc, event, exc)

        svc.tasks.spawn(work(), f"event-{event.get('type')}")

    return app
