"""Subcommand and action registries. Each handlers/cmd_*.py module registers what it serves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot import incident_store as service
from bot.context import Services
from bot.models import Incident
from bot.permissions import Perm
from bot.ports import Reply
from handlers import guard
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

    async def war_room(self) -> Incident | None:
        """The incident whose war room this channel is, if it is one (the request's context, not a flow)."""
        return await service.load_by_channel(self.svc.db, self.channel)

    async def incident_named(self, incident_id: str) -> Incident | None:
        """The incident a button or form names (its value, clipped as ids are), if it exists."""
        return await service.load(self.svc.db, incident_id[:40])

    async def incident_here(self) -> Incident:
        """The incident whose war room this is, or a clear answer saying where to run the command."""
        inc = await self.war_room()
        if inc is None:
            raise UsageError("Run this in an incident's war room channel (`#incident-…`).")
        return inc

    async def incident_to_change(self) -> Incident:
        """As incident_here, and the caller must be a member of the war room to change it. Fails closed:
        when Slack cannot say who is in the channel, the answer is "try again", not yes."""
        inc = await self.incident_here()
        await self.require(Perm.CHANGE, inc)
        return inc

    async def require(self, perm: Perm, inc: Incident | None = None, *, channel: str | None = None) -> None:
        """The one permission check (handlers/guard.py); `perm` is a bot.permissions.Perm, `channel`
        the room whose members count when there is no incident (a tabletop)."""
        await guard.require(self.svc, self.user, perm, inc, channel)


CommandHandler = Callable[[Ctx, Command], Awaitable[Reply | None]]
# Buttons whose answer replaces the message they sit on (paging through one view), not a new message.
REPLACES_MESSAGE: set[str] = set()
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


# Global and message shortcuts by callback_id (the manifest declares them).
SHORTCUTS: dict[str, ActionHandler] = {}


def shortcut(*callback_ids: str) -> Callable[[ActionHandler], ActionHandler]:
    def register(fn: ActionHandler) -> ActionHandler:
        for c in callback_ids:
            SHORTCUTS[c] = fn
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
