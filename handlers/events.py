"""Events API listeners: 📌 reactions put war-room messages on the timeline; joins are recorded.

The app claims each event_id before calling these, so Slack's retries never reach them twice."""

from __future__ import annotations

from typing import Any

from bot.context import Services
from bot.incidents.lifecycle import LifecycleFlows
from handlers.registry import event

PIN = "pushpin"


def _pinned_message(ev: dict[str, Any]) -> tuple[str, str, str] | None:
    """(channel, ts, user) for a 📌 on a message; None for other reactions or items (files, etc.)."""
    item = ev.get("item") or {}
    if ev.get("reaction") != PIN or item.get("type") != "message":
        return None
    channel, ts, user = item.get("channel"), item.get("ts"), ev.get("user")
    if not (isinstance(channel, str) and isinstance(ts, str) and isinstance(user, str)) or not (
        channel and ts
    ):
        return None
    return channel, ts, user


@event("reaction_added")
async def reaction_added(svc: Services, ev: dict[str, Any]) -> None:
    target = _pinned_message(ev)
    if target is not None:
        await LifecycleFlows(svc).pin(*target)


@event("reaction_removed")
async def reaction_removed(svc: Services, ev: dict[str, Any]) -> None:
    target = _pinned_message(ev)
    if target is not None:
        await LifecycleFlows(svc).unpin(*target)


@event("member_joined_channel")
async def member_joined(svc: Services, ev: dict[str, Any]) -> None:
    channel, user = ev.get("channel"), ev.get("user")
    if isinstance(channel, str) and isinstance(user, str) and channel and user:
        await LifecycleFlows(svc).joined(channel, user)
