"""Pure Block Kit for the lifecycle: the update and declare forms, the resolve checklist, timeline pages.

Every text is clipped here to Slack's limits (header 150, section 3000, option 75, modal title 24,
≤50 blocks a message, ≤100 a view), so no incident content can make Slack refuse a message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot import timefmt
from bot.event_text import slack_text
from bot.incidents.lifecycle import (
    MAX_FIELD,
    OPEN_STATUSES,
    ResolveCheck,
    TimelineEntry,
    TimelinePage,
)
from bot.models import Incident
from bot.playbook import AREAS, SEVERITIES, Playbook
from bot.slack_text import esc
from bot.states import IncidentStatus
from handlers.blocks import SECTION_MAX, Blocks, actions, clip, context, divider, header, section
from handlers.parse import MAX_SUMMARY

UPDATE_CALLBACK = "incident_update"
DECLARE_CALLBACK = "incident_declare"
VALUE = "value"  # the action_id of every form element: view_values keys by block_id
TITLE_MAX = 24
OPTION_MAX = 75
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_BLOCKS = 50
LINE_MAX = 700  # one timeline entry; several share a section
PAGE_SIZE = 20

KIND_ICONS = {
    "declared": "🚨",
    "status": "🔄",
    "severity": "⚠️",
    "role": "👤",
    "note": "🗒️",
    "pinned": "📌",
    "page": "📟",
    "acknowledged": "✅",
    "escalated": "⏫",
    "resolved": "✅",
    "reopened": "🔁",
    "update": "📝",
    "reminder": "⏰",
    "slack_failed": "❗",
    "announce": "📣",
    "command": "⌨️",
    "joined": "👋",
    "check": "🩺",
    "ticket": "🎫",
    "public_update": "📣",
    "refused": "🛑",
}


def plain(text: str, limit: int = 2000) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text or " ", limit), "emoji": True}


def option(label: str, value: str) -> dict[str, Any]:
    return {"text": plain(label, OPTION_MAX), "value": value[:150]}


def select(options: list[tuple[str, str]], initial: str | None, placeholder: str) -> dict[str, Any]:
    opts = [option(label, value) for label, value in options]
    el: dict[str, Any] = {"type": "static_select", "action_id": VALUE, "options": opts}
    el["placeholder"] = plain(placeholder, 150)
    chosen = next((o for o in opts if o["value"] == initial), None)
    if chosen is not None:  # Slack refuses an initial_option that is not exactly one of the options
        el["initial_option"] = chosen
    return el


def text_input(
    initial: str, max_length: int, *, multiline: bool = False, placeholder: str = ""
) -> dict[str, Any]:
    el: dict[str, Any] = {"type": "plain_text_input", "action_id": VALUE, "max_length": max_length}
    if multiline:
        el["multiline"] = True
    if initial:
        el["initial_value"] = initial[:max_length]
    if placeholder:
        el["placeholder"] = plain(placeholder, 150)
    return el


def input_block(
    block_id: str, label: str, element: dict[str, Any], *, optional: bool = False, hint: str = ""
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, 2000),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def modal(callback_id: str, title: str, blocks: Blocks, *, submit: str, metadata: str = "") -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, TITLE_MAX),
        "submit": plain(submit, TITLE_MAX),
        "close": plain("Cancel", TITLE_MAX),
        "private_metadata": metadata[:3000],
        "blocks": blocks[:MAX_VIEW_BLOCKS],
    }


def severity_options(playbook: Playbook) -> list[tuple[str, str]]:
    sevs = playbook.severities
    return [(f"{sevs.label(k)} · {sevs[k].definition}", k) for k in SEVERITIES]


def area_options(playbook: Playbook) -> list[tuple[str, str]]:
    return [(f"{a} · {playbook.routing[a].title}" if a in playbook.routing else a, a) for a in AREAS]


# -- forms --------------------------------------------------------------------------------------------------


def update_modal(inc: Incident, playbook: Playbook, statuses: list[str]) -> dict[str, Any]:
    """The template as a form, prefilled; block ids are the Incident column names."""
    blocks: Blocks = [
        context(f"*{inc.id}* · {playbook.severities.label(inc.severity)} · {inc.status}"),
        input_block("summary", "Summary", text_input(inc.summary, MAX_SUMMARY)),
        input_block(
            "impact",
            "Impact",
            text_input(inc.impact, MAX_FIELD, multiline=True, placeholder="Who is affected, how many users"),
            optional=True,
        ),
        input_block(
            "root_cause",
            "Root Cause",
            text_input(inc.root_cause, MAX_FIELD, multiline=True, placeholder="What we know so far"),
            optional=True,
        ),
        input_block(
            "next_steps",
            "Next Steps",
            text_input(inc.next_steps, MAX_FIELD, multiline=True, placeholder="What we're doing next"),
            optional=True,
        ),
    ]
    if inc.status == IncidentStatus.RESOLVED:
        blocks.append(context("Status: *RESOLVED*. Use `/incident reopen` to work on it again."))
    else:
        blocks.append(
            input_block(
                "status",
                "Status",
                select([(s, s) for s in statuses], inc.status, "Status"),
                hint="RESOLVED goes through `/incident resolve`, which checks the resolution criteria.",
            )
        )
    blocks.append(
        input_block("severity", "Severity", select(severity_options(playbook), inc.severity, "Severity"))
    )
    return modal(UPDATE_CALLBACK, "Update incident", blocks, submit="Save", metadata=inc.id)


def declare_modal(playbook: Playbook, origin_channel: str) -> dict[str, Any]:
    blocks: Blocks = [
        input_block("severity", "Severity", select(severity_options(playbook), None, "How bad is it?")),
        input_block("summary", "Summary", text_input("", MAX_SUMMARY, placeholder="Factory orders failing")),
        input_block(
            "impact",
            "Impact",
            text_input("", MAX_FIELD, multiline=True, placeholder="Who is affected, how many users"),
            optional=True,
        ),
        input_block(
            "area",
            "Area",
            select(area_options(playbook), None, "Where it seems to be"),
            optional=True,
            hint="Routes the incident to a team, who are invited to the war room.",
        ),
    ]
    return modal(DECLARE_CALLBACK, "Declare an incident", blocks, submit="Declare", metadata=origin_channel)


def _too_long(errors: dict[str, str], values: dict[str, Any], key: str, label: str, limit: int) -> None:
    value = values.get(key)
    if isinstance(value, str) and len(value) > limit:
        errors[key] = f"{label} must be at most {limit} characters (it is {len(value)})."


def validate_update(values: dict[str, Any]) -> dict[str, str]:
    """Field errors for the update form, shown inside the modal (`response_action: errors`)."""
    errors: dict[str, str] = {}
    if not str(values.get("summary") or "").strip():
        errors["summary"] = "A summary is required."
    _too_long(errors, values, "summary", "The summary", MAX_SUMMARY)
    for key, label in (("impact", "Impact"), ("root_cause", "Root Cause"), ("next_steps", "Next Steps")):
        _too_long(errors, values, key, label, MAX_FIELD)
    status = values.get("status")
    if "status" in values and status not in OPEN_STATUSES:
        errors["status"] = "Pick a status; RESOLVED goes through `/incident resolve`."
    if values.get("severity") not in SEVERITIES:
        errors["severity"] = "Pick a severity."
    return errors


def validate_declare(values: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if values.get("severity") not in SEVERITIES:
        errors["severity"] = "Pick a severity."
    if not str(values.get("summary") or "").strip():
        errors["summary"] = "A summary is required."
    _too_long(errors, values, "summary", "The summary", MAX_SUMMARY)
    _too_long(errors, values, "impact", "Impact", MAX_FIELD)
    if values.get("area") not in (None, "", *AREAS):
        errors["area"] = f"Pick one of {', '.join(AREAS)}, or none."
    return errors


# -- resolve ------------------------------------------------------------------------------------------------


def resolve_checklist(check: ResolveCheck) -> tuple[str, Blocks]:
    """Why `/incident resolve` did not resolve, what is left, and the override."""
    need = timefmt.fmt_elapsed(check.required)

    def box(ok: bool) -> str:
        return "✅" if ok else "⬜"

    status_line = f"{box(check.in_monitoring)} Status is MONITORING" + (
        ""
        if check.in_monitoring
        else f" (now {check.status}: `/incident status MONITORING` once the fix is in)"
    )
    so_far = timefmt.fmt_elapsed(check.monitoring_for) if check.in_monitoring else "not started"
    time_line = f"{box(check.time_met)} Monitored for {need}+ with no issues ({so_far}"
    time_line += f"; {timefmt.fmt_elapsed(check.remaining)} to go)" if not check.time_met else ")"
    if check.health:  # the health gate: a fresh check and the monitor's clean window
        time_line += f"\n{box(False)} Healthy: {esc(check.health)}"  # alert names, Factory text
    text = f"{check.incident_id} is not ready to resolve: {esc(check.summary())}."
    blocks: Blocks = [
        header(f"Not ready to resolve {check.incident_id}"),
        section(f"*Resolution criteria*\n{status_line}\n{time_line}"[:2900]),
        section(
            "*Confirm before resolving*\n• Service is fully operational\n• All metrics are within normal "
            "thresholds\n• No active error conditions\n• Affected systems are back to normal"
        ),
        actions(resolve_anyway_button(check.incident_id), block_id="resolve_anyway"),
        context("Resolving anyway is recorded on the timeline."),
    ]
    return text, blocks


def resolve_anyway_button(incident_id: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": plain("Resolve anyway", 75),
        "action_id": "resolve_anyway",
        "value": incident_id,
        "style": "danger",
        "confirm": {
            "title": plain("Resolve without the criteria?", 100),
            "text": plain(
                f"{incident_id} will be resolved now and the override recorded on its timeline.", 300
            ),
            "confirm": plain("Resolve", 30),
            "deny": plain("Keep monitoring", 30),
        },
    }


# -- timeline -----------------------------------------------------------------------------------------------


def zone(tz: str | None) -> ZoneInfo | None:
    return timefmt.zone(tz)


def entry_line(e: TimelineEntry, tz: ZoneInfo | None) -> str:
    when = f"`{e.at:%H:%M:%S}` UTC"
    if tz is not None:
        when += f" ({e.at.astimezone(tz):%H:%M %Z})"
    icon = KIND_ICONS.get(e.kind, "•")
    if e.kind == "pinned":
        who = f"<@{e.actor}>" if e.actor and e.actor.startswith(("U", "W")) else "someone"
        link = e.data.get("permalink")
        said = " ".join(slack_text(e.kind, e.text, e.data).split())
        body = f"{who}: “{clip(said, LINE_MAX - 150)}”" + (f" <{link}|open>" if _slack_url(link) else "")
    else:
        body = slack_text(e.kind, e.text, e.data)
    return clip(f"{when} {icon} {body}", LINE_MAX)


def _slack_url(link: object) -> bool:
    """A permalink we got from Slack; anything else is not put inside `<…|open>`."""
    return (
        isinstance(link, str)
        and link.startswith(("https://", "http://"))
        and not any(c in link for c in "<>| ")
    )


def timeline_blocks(page: TimelinePage) -> tuple[str, Blocks]:
    """One page: newest last, one day heading per date, an Older button while older entries exist."""
    tz = zone(page.tz)
    last = page.first_number + len(page.entries) - 1
    title = f"🕒 Timeline of {page.incident_id}"
    text = (
        f"{title}: entries {page.first_number}–{last} of {page.total}" if page.entries else f"{title}: empty"
    )
    blocks: Blocks = [header(title)]
    where = f"your local time ({page.tz}) in brackets" if tz else "your Slack profile has no time zone"
    blocks.append(
        context(
            f"Entries {page.first_number}–{last} of {page.total}, newest last · times in UTC, {where}"
            + (
                f" · {page.hidden} bookkeeping entries hidden: `/incident timeline all` shows them"
                if page.hidden
                else ""
            )
        )
    )
    chunks: list[str] = []
    current, day = "", None
    for e in page.entries:
        line = entry_line(e, tz)
        if e.at.date() != day:
            day = e.at.date()
            line = f"*{_date(e.at)}*\n{line}"
        if current and len(current) + 1 + len(line) > SECTION_MAX:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    if not chunks:
        chunks.append("_Nothing on the timeline yet._")
    room = MAX_MESSAGE_BLOCKS - len(blocks) - 2
    blocks += [section(c) for c in chunks[:room]]
    if page.older_cursor is not None:
        blocks.append(divider())
        older = f"{page.incident_id}|{page.older_cursor}" + ("|all" if page.all_kinds else "")
        blocks.append(
            actions(
                {
                    "type": "button",
                    "text": plain("Older", 75),
                    "action_id": "timeline_older",
                    "value": older,
                },
                block_id="timeline_older",
            )
        )
    return text, blocks[:MAX_MESSAGE_BLOCKS]


def _date(at: datetime) -> str:
    return f"{at:%a %Y-%m-%d}"


def parse_older(value: str) -> tuple[str, int, bool] | None:
    """The Older button's value `INC-…|<event id>[|all]`; None if it was tampered with."""
    incident_id, _, rest = value.partition("|")
    cursor, _, which = rest.partition("|")
    if not incident_id or not cursor.isdigit() or which not in ("", "all"):
        return None
    return incident_id, int(cursor), which == "all"


def where_to_run(rooms: list[tuple[str, str]]) -> str:
    if not rooms:
        return "Run this in an incident's war room channel (`#incident-…`). No incident is open right now."
    listed = ", ".join(f"<#{channel}> ({incident_id})" for incident_id, channel in rooms)
    return f"Run this in the incident's war room: {listed}."
