"""Pure Block Kit builders. Every text is clipped to Slack's limits here, so no caller can exceed them."""

from __future__ import annotations

from typing import Any

from bot.incidents.card import IncidentCard
from bot.slack_text import esc, esc_clip

Blocks = list[dict[str, Any]]

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
BUTTON_MAX = 75
MAX_BLOCKS = 50


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_MAX), "emoji": True}}


def section(
    text: str, fields: list[str] | None = None, accessory: dict[str, Any] | None = None
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": clip(text or " ", SECTION_MAX)},
    }
    if fields:
        block["fields"] = [{"type": "mrkdwn", "text": clip(f, FIELD_MAX)} for f in fields[:10]]
    if accessory:
        block["accessory"] = accessory
    return block


def context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(t, 3000)} for t in texts[:10]]}


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str = "", style: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(text, BUTTON_MAX), "emoji": True},
        "action_id": action_id,
        "value": clip(value, 2000),
    }
    if style:
        b["style"] = style
    return b


def pir_done_button(incident_id: str) -> dict[str, Any]:
    """`/incident pir done` as a button: confirmed first, because Slack does not let a bot unarchive."""
    b = button("PIR done: close the war room", "template_pir_done", incident_id)
    b["confirm"] = confirm_dialog(
        "Close the war room?",
        "The bot posts the closing summary with the PIR link and archives this channel. Slack does not let a "
        "bot unarchive it: a recurrence becomes a new incident.",
        "Close it",
        "Not yet",
    )
    return b


def confirm_dialog(title: str, text: str, yes: str, no: str) -> dict[str, Any]:
    """Slack's confirmation dialog on a button (plain text; Slack's limits: title 100, text 300, buttons 30)."""
    return {
        "title": {"type": "plain_text", "text": clip(title, 100)},
        "text": {"type": "plain_text", "text": clip(text, 300)},
        "confirm": {"type": "plain_text", "text": clip(yes, 30)},
        "deny": {"type": "plain_text", "text": clip(no, 30)},
    }


def actions(*buttons: dict[str, Any], block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "actions", "elements": list(buttons[:25])}
    if block_id:
        block["block_id"] = block_id
    return block


def _user(u: str | None) -> str:
    return f"<@{u}>" if u else "_unassigned_"


def _or_dash(text: str, limit: int = 2900) -> str:
    """A template field as typed, escaped for mrkdwn (people's text never becomes a mention or a link)."""
    return esc_clip(text.strip(), limit) if text.strip() else "_not yet known_"


TEMPLATE_ACTIONS = "template_actions"


def template_actions(card: IncidentCard) -> dict[str, Any]:
    """The buttons people need on the pinned template; each is permission-checked when pressed."""
    buttons = []
    if not card.acked:
        buttons.append(button("Acknowledge", "ack_incident", card.id, "primary"))
    if not card.commander:
        buttons.append(button("Take command", "take_command", card.id, None if buttons else "primary"))
    else:  # handing over: the value names who commands now, so a stale press cannot take it from someone else
        over = button("Take over command", "take_command", f"{card.id}|{card.commander}")
        over["confirm"] = confirm_dialog(
            "Take over command?",
            "You become the incident commander instead of the current one; the hand-over is on the timeline "
            "and in this channel.",
            "Take over",
            "Cancel",
        )
        buttons.append(over)
    buttons += [
        button("Update", "template_update", card.id),
        button("Run check", "template_check", card.id),
        button("Resolve", "template_resolve", card.id),
    ]
    return actions(*buttons, block_id=TEMPLATE_ACTIONS)


class BlockKitRenderer:
    """Implements bot.ports.Renderer."""

    def template(self, card: IncidentCard) -> tuple[str, Blocks]:
        drill = "[DRILL] " if card.is_drill else ""
        title = f"{drill}🚨 {card.id}: {card.summary}"  # plain_text: Slack reads no markup in it
        blocks: Blocks = [
            header(title),
            section(
                f"*Summary*\n{esc_clip(card.summary, 1900)}",
                fields=[
                    f"*Incident ID*\n{card.id}",
                    f"*Severity*\n{card.severity_label}",
                    f"*Status*\n{card.status}",
                    f"*Commander*\n{_user(card.commander)}",
                ],
            ),
            section(f"*Impact*\n{_or_dash(card.impact)}"),
            section(f"*Root Cause*\n{_or_dash(card.root_cause)}"),
            section(f"*Next Steps*\n{_or_dash(card.next_steps)}"),
        ]
        extra = [f"Declared by <@{card.declared_by}> at {card.declared_at:%Y-%m-%d %H:%M:%S} UTC"]
        if card.team:
            extra.append(f"Team: {card.team}")
        if card.acknowledged_by:
            extra.append(f"Acknowledged by <@{card.acknowledged_by}>")
        if card.comms_lead:
            extra.append(f"Comms: <@{card.comms_lead}>")
        if card.is_drill:
            extra.append("*DRILL — not a real incident*")
        blocks.append(context(*extra))
        if card.status != "RESOLVED":
            blocks.append(template_actions(card))
        else:  # a resolved incident's template is a record: only reopening, or closing after the review, apply
            blocks.append(
                actions(
                    button("Reopen", "template_reopen", card.id),
                    pir_done_button(card.id),
                    block_id=TEMPLATE_ACTIONS,
                )
            )
        blocks.append(context("Edit with `/incident update` · this message is edited in place"))
        return f"{drill}{card.id} [{card.severity_label}] {card.status}: {esc(card.summary)}", blocks

    def declared_reply(
        self, card: IncidentCard, channel_id: str | None, error: str | None
    ) -> tuple[str, Blocks]:
        if error:
            where = f" in <#{channel_id}>" if channel_id else ""
            text = (
                f"⚠️ {card.id} is recorded{where}, but setting up the war room failed: {error}. "
                "Nothing is lost; press Retry or run the same command again."
            )
            return text, [
                section(text),
                actions(button("Retry setup", "retry_provision", card.id, "primary")),
            ]
        text = f"{card.id} declared ({card.severity_label}). War room: <#{channel_id}>"
        return text, [section(f"✅ {text}")]

    def declared_public(self, card: IncidentCard, by: str, channel_id: str) -> tuple[str, Blocks]:
        summary = card.summary.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        drill = "[DRILL] " if card.is_drill else ""
        text = f"{drill}🚨 <@{by}> declared {card.id} ({card.severity_label}): {summary} — war room <#{channel_id}>"
        return text, [
            section(clip(text, SECTION_MAX)),
            actions(button("Join war room", "join_war_room", card.id), block_id="declared"),
        ]

    def page_dm(self, page: Any) -> tuple[str, Blocks]:
        drill = "[DRILL] " if page.is_drill else ""
        text = f"{drill}Page L{page.level}: {page.incident_id} {page.severity_label}: {esc(page.summary)}"
        blocks: Blocks = [
            header(f"{drill}📟 {page.incident_id} needs you"),
            _page_card(page, f"*Open for*\n{page.open_for}"),
        ]
        if page.acked_by:  # a later page (an "until resolved" level): someone already answered
            blocks.append(context(f"✅ Acknowledged by <@{page.acked_by}>{_at(page.acked_at)}"))
        else:
            blocks.append(
                actions(
                    button("Acknowledge", "ack_incident", page.incident_id, "primary"), block_id="page_ack"
                )
            )
        return text, blocks

    def page_acked(self, page: Any, by: str) -> tuple[str, Blocks]:
        """The page's moment has passed: no button, but everything the responder needs next."""
        drill = "[DRILL] " if page.is_drill else ""
        text = (
            f"{drill}{page.incident_id} {page.severity_label}: {esc(page.summary)} — acknowledged by <@{by}>"
            f" · war room {_room(page)}"
        )
        return text, [
            header(f"{drill}📟 {page.incident_id}: acknowledged"),
            _page_card(page, f"*Acknowledged by*\n<@{by}>"),
            context(f"✅ Acknowledged by <@{by}>{_at(page.acked_at)} · Page L{page.level}"),
        ]

    def announcement(self, text: str, incident_id: str, channel_id: str | None) -> Blocks:
        """A stakeholder line; with a war room, a button that lets anyone reading it join."""
        blocks: Blocks = [section(text)]
        if channel_id:
            blocks.append(actions(button("Join war room", "join_war_room", incident_id), block_id="announce"))
        return blocks

    def page_resolved(self, page: Any, by: str) -> tuple[str, Blocks]:
        """The final state: when and by whom it was resolved, the PIR link; the context stays."""
        drill = "[DRILL] " if page.is_drill else ""
        who = "the monitor" if by == "incident-bot" else f"<@{by}>"
        when = _at(page.resolved_at)
        outcome = f"Acknowledged by <@{page.acked_by}>" if page.acked_by else "Nothing to do"
        pir = f" — <{page.pir_url}|Post-incident review>" if page.pir_url else ""
        text = (
            f"{drill}{page.incident_id} {page.severity_label}: {esc(page.summary)} — resolved by {who}"
            + ("" if page.acked_by else " — nothing to do")
            + f" · war room {_room(page)}"
        )
        return text, [
            header(f"{drill}📟 {page.incident_id}: resolved"),
            _page_card(page, f"*Outcome*\n{outcome}"),
            context(f"✅ Resolved{when} by {who}{pir}"),
        ]


def _room(page: Any) -> str:
    return f"<#{page.channel_id}>" if page.channel_id else "(war room not ready yet)"


def _at(when: Any) -> str:
    return f" at {when:%Y-%m-%d %H:%M} UTC" if when is not None else ""


def _page_card(page: Any, last: str) -> dict[str, Any]:
    """The incident as every state of a page DM shows it: summary, severity, war room, why this person."""
    return section(
        f"*{esc_clip(page.summary, 1500)}*",
        fields=[
            f"*Severity*\n{page.severity_label}",
            last,
            f"*War room*\n{_room(page)}",
            f"*Why you*\nL{page.level} ({page.level_name}): {esc_clip(page.reason, 1500)}",
        ],
    )


def usage_blocks(text: str) -> Blocks:
    return [section(text)]
