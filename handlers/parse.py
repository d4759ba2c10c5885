"""The `/incident` grammar: text -> Command, or UsageError with the message to show. Pure and fuzzed."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from bot import timefmt
from bot.errors import UserFacingError
from bot.playbook import AREAS, SEVERITIES, STATUSES
from bot.states import IncidentStatus

MAX_SUMMARY = 500
MAX_NOTE = 2900
MAX_TEXT = 4000

USAGE = """*`/incident` commands*
• `/incident declare P0|P1|P2|P3 <summary> [--area db|app|infra|security|api|frontend]` — open a war room
  (no arguments: a form)
• `/incident list [open|recent]` — open incidents, or those resolved lately
• `/incident ack` — acknowledge the page · `/incident escalate` — page the next level now
• `/incident update` — edit the pinned template
• `/incident status NEW|INVESTIGATING|IDENTIFIED|MONITORING`
• `/incident severity P0|P1|P2|P3` · `/incident commander @user` · `/incident comms @user`
• `/incident note <text>`
• `/incident resolve` · `/incident reopen` · `/incident timeline [all]`
• `/incident check` — health of the JWT Pizza Factory and service
• `/incident action add "<text>" @owner YYYY-MM-DD` · `/incident action done <n>` · `/incident actions`
• `/incident pir` · `/incident pir done` (closes the war room)
• `/incident stats [30d]` · `/incident playbook [section]`
• `/incident statuspage [resolved]` — write a public status-page update (commander, comms lead, admins)
• `/incident alerts` — the incident's alerts (outside a war room: alerts only recorded)
• `/incident drill fail|throttle|badjwt|service-down|tabletop`
• `/incident dr signoff product|ops` · `/incident dr status`
• `/incident oncall [level|team]` — who is on call now · `oncall override @user <level> <start> <duration|end>`
  · `oncall overrides` · `oncall remove <n>` · `oncall take <level>` · `oncall give @user <level>`
  · `oncall swap @user <level>`
• `/incident help`"""

DECLARE_USAGE = (
    "Usage: `/incident declare P0|P1|P2|P3 <summary> [--area db|app|infra|security|api|frontend]`, "
    "e.g. `/incident declare P1 Factory orders failing`. Run `/incident declare` alone for a form."
)

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_PERIOD = re.compile(r"^([0-9]{1,4})d$")
MAX_ACTION_NUMBER = 99_999
_ACTION_NUMBER = re.compile(r"[1-9][0-9]{0,4}")


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
    if verb == "done" and len(words) == 2:
        # ASCII digits, bounded: `isdigit()` accepts `²` and a 23-digit number overflows the database's integer.
        if not _ACTION_NUMBER.fullmatch(words[1]):
            raise UsageError(f"`{words[1][:20]}` is not an action item number (1 to {MAX_ACTION_NUMBER}).")
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


def _timeline(rest: str) -> Command:
    which = rest.lower()
    if which not in ("", "all"):
        raise UsageError("Usage: `/incident timeline [all]` (all: with the bot's bookkeeping entries)")
    return Command("timeline", {"all": which == "all"})


def _list(rest: str) -> Command:
    which = rest.lower() or "open"
    if which not in ("open", "recent"):
        raise UsageError("Usage: `/incident list [open|recent]`")
    return Command("list", {"which": which})


def _pir(rest: str) -> Command:
    if rest.lower() == "done":
        return Command("pir_done")
    if rest:
        raise UsageError("Usage: `/incident pir` or `/incident pir done` (in the war room)")
    return Command("pir")


def _statuspage(rest: str) -> Command:
    word = rest.lower()
    if word not in ("", "resolved"):
        raise UsageError(
            "Usage: `/incident statuspage` (in the war room), or `/incident statuspage resolved`"
        )
    return Command("statuspage", {"resolved": word == "resolved"})


ONCALL_USAGE = (
    "Usage: `/incident oncall [level|team]` · `/incident oncall override @user <level> <start> <duration|end>` "
    "(start `now` or `YYYY-MM-DDTHH:MM`, in the schedule's zone unless it ends in `Z` or `+hh:mm`; duration like "
    "`8h`, or an end time) · `oncall overrides [level]` · `oncall remove <n>` · `oncall take <level>` · "
    "`oncall give @user <level>` · `oncall swap @user <level>`"
)
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_MAX_OVERRIDE = timedelta(days=99_999)


def _oncall_length(token: str) -> timedelta | None:
    """A length in the one duration grammar (bot.timefmt: `30m`, `8h`, `2d`), with its unit written (a bare
    number here is no length); None when the token is not one (it may be an end time)."""
    if not token[-1:].isalpha():
        return None
    try:
        length = timefmt.parse_duration(token)
    except (ValueError, OverflowError):
        return None
    if length is not None and length > _MAX_OVERRIDE:
        raise UsageError(f"`{token[:40]}` is too long for an override.")
    return length


def _oncall_ref(token: str) -> str:
    if not _REF.match(token):
        raise UsageError(f"`{token[:40]}` is not a level or team.\n{ONCALL_USAGE}")
    return token


def _oncall_time(token: str) -> datetime | str:
    """`now`, or an ISO date-time (naive: read in the schedule's zone by the handler)."""
    if token.lower() == "now":
        return "now"
    try:
        when = datetime.fromisoformat(token.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"`{token[:40]}` is not a time: use `now` or `YYYY-MM-DDTHH:MM`.") from None
    if when.year < 2000 or when.year > 2200:
        raise UsageError(f"`{token[:40]}` is out of range.")
    return when


def oncall_window(start_text: str, end_text: str) -> tuple[datetime | str, datetime | timedelta]:
    """An override's `<start> <duration|end>` (also the modal's two fields)."""
    start = _oncall_time(start_text.strip())
    length = _oncall_length(end_text.strip().lower())
    if length is not None:
        if length <= timedelta(0):
            raise UsageError("The override needs a length above zero.")
        return start, length
    end = _oncall_time(end_text.strip())
    if isinstance(end, str):
        raise UsageError("The end of an override cannot be `now`: give a length like `8h` or an end time.")
    return start, end


def _oncall(rest: str) -> Command:
    words = _split(rest)
    if not words:
        return Command("oncall", {"ref": None})
    verb = words[0].lower()
    if verb == "override":
        if len(words) == 1:
            return Command("oncall_override_modal")
        if len(words) != 5:
            raise UsageError(ONCALL_USAGE)
        user, ref = _mention(words[1]), _oncall_ref(words[2])
        start, end = oncall_window(words[3], words[4])
        return Command("oncall_override", {"user": user, "ref": ref, "start": start, "end": end})
    if verb == "overrides" and len(words) <= 2:
        return Command("oncall_overrides", {"ref": _oncall_ref(words[1]) if len(words) == 2 else None})
    if verb == "remove" and len(words) == 2:
        number = words[1].removeprefix("#")
        if not number.isascii() or not number.isdigit() or len(number) > 12:
            raise UsageError(
                "Usage: `/incident oncall remove <n>` (the number from `/incident oncall overrides`)"
            )
        return Command("oncall_remove", {"number": int(number)})
    if verb == "take" and len(words) == 2:
        return Command("oncall_take", {"ref": _oncall_ref(words[1])})
    if verb in ("give", "swap") and len(words) == 3:
        return Command(f"oncall_{verb}", {"user": _mention(words[1]), "ref": _oncall_ref(words[2])})
    if verb in ("override", "overrides", "remove", "take", "give", "swap"):
        raise UsageError(ONCALL_USAGE)
    if len(words) == 1:
        return Command("oncall", {"ref": _oncall_ref(words[0])})
    raise UsageError(ONCALL_USAGE)


_PARSERS = {
    "oncall": _oncall,
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
    "timeline": _timeline,
    "help": lambda rest: Command("help"),
    "check": _no_args("check"),
    "action": _action,
    "actions": _no_args("actions"),
    "pir": _pir,
    "stats": _stats,
    "playbook": _playbook,
    "drill": _drill,
    "dr": _dr,
    "statuspage": _statuspage,
    "alerts": _no_args("alerts"),
    "list": _list,
}
