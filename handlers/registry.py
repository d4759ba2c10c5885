"""Subcommand and action registries. Each handlers/cmd_*.py module registers what it serves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot import incident_store as service
from bot.context import Services
from bot.models import Incident
from bot.ports import ChatError, Reply
from handlers.parse import Command, UsageError


@dataclass
class Ctx:
    """One request from Slack, as a listener sees it."""

    svc: Services
    user: str
    channel: str
    trigger_id: str | None = None
    response_url: str | None = None
    text: str = ""

    async def incident_here(self) -> Incident:
        """The incident whose war room this is, or a clear answer saying where to run the command."""
        inc = await service.load_by_channel(self.svc.db, self.channel)
        if inc is None:
            raise UsageError("Run this in an incident's war room channel (`#incident-…`).")
        return inc

    async def incident_to_change(self) -> Incident:
        """As incident_here, and the caller must be a member of the war room to change it."""
        inc = await self.incident_here()
        try:
            members = await self.svc.chat.members(self.channel)
        except ChatError:
            return inc  # cannot tell: do not lock responders out because Slack is slow
        if self.user not in members:
            raise UsageError(
                f"Only members of <#{self.channel}> can change {inc.id}. Join the channel first."
            )
        return inc


CommandHandler = Callable[[Ctx, Command], Awaitable[Reply | None]]
ActionHandler = Callable[[Ctx, dict[str, Any]], Awaitable[Reply | None]]

COMMANDS: dict[str, CommandHandler] = {}
ACTIONS: dict[str, ActionHandler] = {}
# Subcommands answered in the ack itself (they need no I/O), e.g. help.
INSTANT: set[str] = {"help"}


def command(*names: str) -> Callable[[CommandHandler], CommandHandler]:
    def register(fn: CommandHandler) -> CommandHandler:
        for n in names:
            COMMANDS[n] = fn
        return fn

    return register


def action(*ids: str) -> Callable[[ActionHandler], ActionHandler]:
    def register(fn: ActionHandler) -> ActionHandler:
        for i in ids:
            ACTIONS[i] = fn
        return fn

    return register


EventHandler = Callable[[Services, dict[str, Any]], Awaitable[None]]
EVENTS: dict[str, EventHandler] = {}


def event(*types: str) -> Callable[[EventHandler], EventHandler]:
    def register(fn: EventHandler) -> EventHandler:
        for t in types:
            EVENTS[t] = fn
        return fn

    return register


@dataclass(frozen=True)
class ViewHandler:
    """A modal: `validate` runs before the ack (errors go back into the modal), `submit` after it."""

    validate: Callable[[dict[str, Any]], dict[str, str]]
    submit: Callable[[Ctx, dict[str, Any], dict[str, Any]], Awaitable[Reply | None]]


VIEWS: dict[str, ViewHandler] = {}


def view_values(view: dict[str, Any]) -> dict[str, Any]:
    """Flatten a view_submission's state into {block_id: value}."""
    out: dict[str, Any] = {}
    for block_id, by_action in (view.get("state") or {}).get("values", {}).items():
        for _action_id, v in by_action.items():
            kind = v.get("type")
            if kind == "static_select":
                out[block_id] = (v.get("selected_option") or {}).get("value")
            elif kind in ("users_select",):
                out[block_id] = v.get("selected_user")
            else:
                out[block_id] = v.get("value")
    return out
