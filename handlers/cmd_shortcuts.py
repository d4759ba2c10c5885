"""Shortcuts: "Declare incident" from anywhere (global) and "Add to incident timeline" on any message."""

from __future__ import annotations

from typing import Any

from bot.incidents.lifecycle import LifecycleFlows
from bot.ports import Reply
from handlers import lifecycle_blocks as lb
from handlers.cmd_lifecycle import _DECLARE_HINT, _open_form
from handlers.parse import UsageError
from handlers.registry import Ctx, shortcut


@shortcut("declare_incident")
async def declare_incident(ctx: Ctx, body: dict[str, Any]) -> Reply | None:
    await _open_form(ctx, lb.declare_modal(ctx.svc.playbook, ctx.channel), "Use " + _DECLARE_HINT)
    return None


@shortcut("add_to_timeline")
async def add_to_timeline(ctx: Ctx, body: dict[str, Any]) -> Reply:
    message = body.get("message") or {}
    ts = message.get("ts") or body.get("message_ts")
    if not isinstance(ts, str) or not ts:
        raise UsageError("Slack did not say which message that was; try again.")
    inc = await ctx.incident_here()  # a clear answer outside war rooms
    added = await LifecycleFlows(ctx.svc).pin(ctx.channel, ts, ctx.user)
    if added:
        return Reply(f"📌 Added to the {inc.id} timeline.")
    return Reply(f"That message is already on the {inc.id} timeline.")
