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

from bot.permissions import Perm, signoff_perm
from handlers.parse import _PARSERS, USAGE, Command
from handlers.registry import COMMANDS, INSTANT, CommandHandler

# Who may run a command: a bot.permissions.Perm, the same value the handler passes to Ctx.require
# (handlers/guard.py enforces it; tests/security/test_permissions.py checks the column and the handlers agree).
# When the arguments decide (`dr signoff product|ops`), a function of the parsed command gives the Perm.
PermissionOf = Callable[[Command], Perm]


class Permission:
    """The column's names before it used Perm (rows written against the first table): a member-only command
    is Perm.CHANGE (what Ctx.incident_to_change checks), an in-a-war-room one Perm.READ. New rows use Perm."""

    ANYONE = Perm.ANYONE
    IN_WAR_ROOM = Perm.READ
    MEMBER = Perm.CHANGE


@dataclass(frozen=True)
class Row:
    name: str  # the Command.name the handler is registered under
    word: str  # what is typed after `/incident` (one word may parse into several names)
    parse: Callable[[str], Command]
    handler: CommandHandler
    usage: str  # its line of `/incident help`
    permission: Perm | PermissionOf
    instant: bool  # answered inside the ack (no I/O), e.g. help

    def permission_for(self, cmd: Command) -> Perm:
        """The Perm the handler requires for this parsed command."""
        return self.permission if isinstance(self.permission, Perm) else self.permission(cmd)


def _signoff(cmd: Command) -> Perm:
    return signoff_perm(str(cmd.args.get("role", "")))


# word typed -> (names its parser yields, permission). Aliases ("acknowledge") are words of their own.
WORDS: dict[str, tuple[tuple[str, ...], Perm]] = {
    "declare": (("declare", "declare_modal"), Perm.ANYONE),
    "list": (("list",), Perm.ANYONE),
    "ack": (("ack",), Perm.ACK),
    "acknowledge": (("ack",), Perm.ACK),
    "escalate": (("escalate",), Perm.ESCALATE),
    "update": (("update",), Perm.CHANGE),
    "status": (("status",), Perm.CHANGE),
    "severity": (("severity",), Perm.CHANGE),
    "commander": (("commander",), Perm.REASSIGN),
    "comms": (("comms",), Perm.REASSIGN),
    "note": (("note",), Perm.CHANGE),
    "resolve": (("resolve",), Perm.CHANGE),
    "reopen": (("reopen",), Perm.CHANGE),
    "timeline": (("timeline",), Perm.READ),
    "help": (("help",), Perm.ANYONE),
    "check": (("check",), Perm.ANYONE),
    "action": (("action_add", "action_done"), Perm.CHANGE),
    "actions": (("actions",), Perm.READ),
    "pir": (("pir", "pir_done"), Perm.READ),  # `pir done` is a change: see BY_NAME
    "stats": (("stats",), Perm.ANYONE),
    "playbook": (("playbook",), Perm.ANYONE),
    "drill": (("drill",), Perm.DRILL),  # a scenario or the tabletop: DR admins only
    "dr": (("dr_status", "dr_signoff"), Perm.ANYONE),
    # Run in the war room; publishing itself is the commander's, the comms lead's or an admin's.
    "statuspage": (("statuspage",), Perm.READ),
    "alerts": (("alerts",), Perm.ANYONE),  # in a war room its alerts; elsewhere the recorded-only ones
    "oncall": (
        (
            "oncall",
            "oncall_override",
            "oncall_override_modal",
            "oncall_overrides",
            "oncall_remove",
            "oncall_take",
            "oncall_give",
            "oncall_swap",
        ),
        Perm.ANYONE,
    ),
}
# Names whose permission is not their word's.
BY_NAME: dict[str, Perm | PermissionOf] = {"dr_signoff": _signoff, "pir_done": Perm.CHANGE}
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
                BY_NAME.get(name, permission),
                name in INSTANT,
            )
    return rows


def help_text(rows: dict[str, Row]) -> str:
    """`/incident help`: the header, then each row's usage line once, in the order USAGE gives them."""
    lines = {r.usage for r in rows.values() if r.usage}
    header, *body = USAGE.splitlines()
    kept = [line for line in body if line in lines or line.startswith("  ")]
    return "\n".join([header, *kept])
