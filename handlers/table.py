"""The one command table: every `/incident` subcommand as a row (name, parse, handler, usage, permission,
instant). Bolt's listener, Socket Mode and the slash fast path all answer through `command_ack`
(handlers/app.py), which dispatches on the table it builds; `/incident help` is the usage column.

Handlers still register with `@command` (handlers/registry.py) and parsers with `handlers/parse.py`; the
table is where they meet, checked by tests/handlers/test_table.py: every usage line has a handler, every
handler a row and a usage line, every word the grammar accepts a row."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from handlers.parse import _PARSERS, USAGE, Command
from handlers.registry import COMMANDS, INSTANT, CommandHandler


class Permission(StrEnum):
    """Who may run a command. The handlers enforce it (Ctx.incident_here / incident_to_change); the table
    says it, so a reviewer sees it in one place."""

    ANYONE = "anyone"
    IN_WAR_ROOM = "in a war room"  # run in an incident's channel
    MEMBER = "war-room member"  # and be a member of it: it changes the incident


@dataclass(frozen=True)
class Row:
    name: str  # the Command.name the handler is registered under
    word: str  # what is typed after `/incident` (one word may parse into several names)
    parse: Callable[[str], Command]
    handler: CommandHandler
    usage: str  # its line of `/incident help`
    permission: Permission
    instant: bool  # answered inside the ack (no I/O), e.g. help


# word typed -> (names its parser yields, permission). Aliases ("acknowledge") are words of their own.
WORDS: dict[str, tuple[tuple[str, ...], Permission]] = {
    "declare": (("declare", "declare_modal"), Permission.ANYONE),
    "ack": (("ack",), Permission.IN_WAR_ROOM),
    "acknowledge": (("ack",), Permission.IN_WAR_ROOM),
    "escalate": (("escalate",), Permission.IN_WAR_ROOM),
    "update": (("update",), Permission.MEMBER),
    "status": (("status",), Permission.MEMBER),
    "severity": (("severity",), Permission.MEMBER),
    "commander": (("commander",), Permission.MEMBER),
    "comms": (("comms",), Permission.MEMBER),
    "note": (("note",), Permission.MEMBER),
    "resolve": (("resolve",), Permission.MEMBER),
    "reopen": (("reopen",), Permission.MEMBER),
    "timeline": (("timeline",), Permission.IN_WAR_ROOM),
    "help": (("help",), Permission.ANYONE),
    "check": (("check",), Permission.ANYONE),
    "action": (("action_add", "action_done"), Permission.MEMBER),
    "actions": (("actions",), Permission.IN_WAR_ROOM),
    "pir": (("pir",), Permission.IN_WAR_ROOM),
    "stats": (("stats",), Permission.ANYONE),
    "playbook": (("playbook",), Permission.ANYONE),
    "drill": (("drill",), Permission.ANYONE),
    "dr": (("dr_status", "dr_signoff"), Permission.ANYONE),
}
ALIASES = {"acknowledge": "ack"}


def usage_line(word: str) -> str:
    """The USAGE line that documents `/incident <word>` ('' when none does)."""
    pattern = re.compile(rf"/incident {re.escape(word)}(?![\w-])")
    return next((line for line in USAGE.splitlines() if pattern.search(line)), "")


def build() -> dict[str, Row]:
    """Rows by Command.name. A word in WORDS without a parser or handler is skipped here and reported by
    the table test, so a half-added command cannot crash the app at start. Call it once the command
    modules are imported (handlers/app.py imports them all)."""
    rows: dict[str, Row] = {}
    for word, (names, permission) in WORDS.items():
        parser = _PARSERS.get(word)
        if parser is None:
            continue
        for name in names:
            handler = COMMANDS.get(name)
            if handler is None or name in rows:
                continue
            rows[name] = Row(
                name,
                word,
                parser,
                handler,
                usage_line(ALIASES.get(word, word)),
                permission,
                name in INSTANT,
            )
    return rows


def help_text(rows: dict[str, Row]) -> str:
    """`/incident help`: the header, then each row's usage line once, in the order USAGE gives them."""
    lines = {r.usage for r in rows.values() if r.usage}
    header, *body = USAGE.splitlines()
    kept = [line for line in body if line in lines or line.startswith("  ")]
    return "\n".join([header, *kept])
