"""The `/incident` grammar: text -> Command, or UsageError with the message to show. Pure and fuzzed."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import date

from bot.errors import UserFacingError
from bot.playbook import AREAS, SEVERITIES, STATUSES
from bot.states import IncidentStatus

MAX_SUMMARY = 500
MAX_NOTE = 2900
MAX_TEXT = 4000

USAGE = """*`/incident` commands*
• `/incident declare P0|P1|P2|P3 <summary> [--area db|app|infra|security|api|frontend]` — open a war room
  (no arguments: a form)
• `/incident ack` — acknowledge the page · `/incident escalate` — page the next level now
• `/incident update` — edit the pinned template
• `/incident status NEW|INVESTIGATING|IDENTIFIED|MONITORING`
• `/incident severity P0|P1|P2|P3` · `/incident commander @user` · `/incident comms @user`
• `/incident note <text>`
• `/incident resolve` · `/incident reopen` · `/incident timeline`
• `/incident check` — health of the JWT Pizza Factory and service
• `/incident action add "<text>" @owner YYYY-MM-DD` · `/incident action done <n>` · `/incident actions`
• `/incident pir` · `/incident stats [30d]` · `/incident playbook [section]`
• `/incident drill fail|throttle|badjwt|service-down|tabletop`
• `/incident dr signoff product|ops` · `/incident dr status`
• `/incident help`"""

DECLARE_USAGE = (
    "Usage: `/incident declare P0|P1|P2|P3 <summary> [--area db|app|infra|security|api|frontend]`, "
    "e.g. `/incident declare P1 Factory orders failing`. Run `/incident declare` alone for a form."
)

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_PERIOD = re.compile(r"^(\d{1,4})d$")


class UsageError(UserFacingError, ValueError):
    """Bad command text, or the wrong place to run it: the usage to show."""


@dataclass(frozen=True)
class Command:
    name: str
    args: dict[str, object] = field(default_factory=dict)


def _clean(text: str) -> str:
    # Slack sends what people type, including odd whitespace and NULs; keep printable text only.
    text = "".join(ch for ch in text if ch.isprintable() or ch in " \t\n")
    return text.strip()


def _mention(token: str) -> str:
    m = _MENTION.match(token.strip())
    if not m:
        raise UsageError(
            f"`{token[:40]}` is not a Slack mention. Type @ and pick the person, so Slack sends their id."
        )
    return m.group(1)


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()  # an unbalanced quote: fall back to plain words


def parse(text: str | None) -> Command:
    text = _clean(text or "")
    if len(text) > MAX_TEXT:
        raise UsageError(f"That command is {len(text)} characters long; keep it under {MAX_TEXT}.")
    if not text:
        return Command("help")
    sub, _, rest = text.partition(" ")
    sub, rest = sub.lower(), rest.strip()
    parser = _PARSERS.get(sub)
    if parser is None:
        raise UsageError(f"Unknown command `{sub[:30]}`.\n{USAGE}")
    return parser(rest)


def _no_args(name: str):
    def p(rest: str) -> Command:
        if rest:
            raise UsageError(f"`/incident {name}` takes no arguments.")
        return Command(name)

    return p


def _declare(rest: str) -> Command:
    if not rest:
        return Command("declare_modal")
    area = None
    m = re.search(r"(?:^|\s)--area(?:=|\s+)(\S+)", rest)
    if m:
        area = m.group(1).lower()
        if area not in AREAS:
            raise UsageError(f"Unknown area `{area[:20]}`: use one of {', '.join(AREAS)}.\n{DECLARE_USAGE}")
        rest = (rest[: m.start()] + " " + rest[m.end() :]).strip()
    sev, _, summary = rest.partition(" ")
    sev = sev.upper()
    if sev not in SEVERITIES:
        raise UsageError(f"`{sev[:20]}` is not a severity.\n{DECLARE_USAGE}")
    summary = " ".join(summary.split())
    if not summary:
        raise UsageError(f"A summary is required.\n{DECLARE_USAGE}")
    if len(summary) > MAX_SUMMARY:
        raise UsageError(f"Keep the summary under {MAX_SUMMARY} characters (it is {len(summary)}).")
    return Command("declare", {"severity": sev, "summary": summary, "area": area})


def _status(rest: str) -> Command:
    st = rest.upper()
    allowed = [s for s in STATUSES if s != IncidentStatus.RESOLVED]
    if st == IncidentStatus.RESOLVED:
        raise UsageError("Use `/incident resolve` to resolve: it checks the resolution criteria.")
    if st not in allowed:
        raise UsageError(f"Usage: `/incident status {'|'.join(allowed)}`")
    return Command("status", {"status": st})


def _severity(rest: str) -> Command:
    sev = rest.upper()
    if sev not in SEVERITIES:
        raise UsageError("Usage: `/incident severity P0|P1|P2|P3`")
    return Command("severity", {"severity": sev})


def _commander(rest: str) -> Command:
    if not rest or len(rest.split()) != 1:
        raise UsageError("Usage: `/incident commander @user`")
    return Command("commander", {"user": _mention(rest)})


def _comms(rest: str) -> Command:
    if not rest or len(rest.split()) != 1:
        raise UsageError("Usage: `/incident comms @user`")
    return Command("comms", {"user": _mention(rest)})


def _note(rest: str) -> Command:
    if not rest:
        raise UsageError("Usage: `/incident note <text>`")
    if len(rest) > MAX_NOTE:
        raise UsageError(f"Keep a note under {MAX_NOTE} characters (it is {len(rest)}).")
    return Command("note", {"text": rest})


_ACTION_USAGE = 'Usage: `/incident action add "<text>" @owner YYYY-MM-DD` or `/incident action done <n>`'


def _action(rest: str) -> Command:
    words = _split(rest)
    if not words:
        raise UsageError(_ACTION_USAGE)
    verb = words[0].lower()
    if verb == "done" and len(words) == 2 and words[1].isdigit():
        return Command("action_done", {"number": int(words[1])})
    if verb == "add" and len(words) == 4:
        text, owner, due = words[1].strip(), _mention(words[2]), words[3]
        try:
            due_date = date.fromisoformat(due)
        except ValueError:
            raise UsageError(f"`{due[:20]}` is not a date: use YYYY-MM-DD.\n{_ACTION_USAGE}") from None
        if not text or len(text) > 1000:
            raise UsageError("The action item needs a text under 1000 characters.")
        return Command("action_add", {"text": text, "owner": owner, "due": due_date})
    raise UsageError(_ACTION_USAGE)


def _stats(rest: str) -> Command:
    if not rest:
        return Command("stats", {"days": 30})
    m = _PERIOD.match(rest.lower())
    if not m or int(m.group(1)) == 0:
        raise UsageError("Usage: `/incident stats [30d]`")
    return Command("stats", {"days": int(m.group(1))})


def _playbook(rest: str) -> Command:
    return Command("playbook", {"section": rest.lower()[:60] or None})


DRILLS = ("fail", "throttle", "badjwt", "service-down", "tabletop")


def _drill(rest: str) -> Command:
    kind = rest.lower()
    if kind not in DRILLS:
        raise UsageError(f"Usage: `/incident drill {'|'.join(DRILLS)}`")
    return Command("drill", {"scenario": kind})


def _dr(rest: str) -> Command:
    words = rest.lower().split()
    if words == ["status"]:
        return Command("dr_status")
    if len(words) == 2 and words[0] == "signoff" and words[1] in ("product", "ops"):
        return Command("dr_signoff", {"role": words[1]})
    raise UsageError("Usage: `/incident dr signoff product|ops` or `/incident dr status`")


def _pir(rest: str) -> Command:
    if rest:
        raise UsageError("Usage: `/incident pir` (in the war room)")
    return Command("pir")


_PARSERS = {
    "declare": _declare,
    "ack": _no_args("ack"),
    "acknowledge": _no_args("ack"),
    "escalate": _no_args("escalate"),
    "update": _no_args("update"),
    "status": _status,
    "severity": _severity,
    "commander": _commander,
    "comms": _comms,
    "note": _note,
    "resolve": _no_args("resolve"),
    "reopen": _no_args("reopen"),
    "timeline": _no_args("timeline"),
    "help": lambda rest: Command("help"),
    "check": _no_args("check"),
    "action": _action,
    "actions": _no_args("actions"),
    "pir": _pir,
    "stats": _stats,
    "playbook": _playbook,
    "drill": _drill,
    "dr": _dr,
}
