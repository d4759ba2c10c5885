"""Timeline events that carry people's text, rendered per surface from `kind` + `data`.

The events that hold text people typed (declared, note, pinned, action_item) keep it as typed in `data`,
and the `text` column keeps its old line (as typed too) for compatibility: neither is ever sent to Slack as
is. Each surface renders from `data`: Slack escapes it here (bot.slack_text), the PIR and the web view get
it as typed and escape it for their own format. Rows written before `data` carried the text fall back to
the column, escaped whole for Slack. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.slack_text import esc, from_slack

Plain = Callable[[str], str]  # Slack mrkdwn -> readable text (bot/pir/render.py's Plain)


def _typed(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def slack_text(kind: str, text: str, data: Mapping[str, Any] | None) -> str:
    """The event as a Slack mrkdwn line (the timeline view): people's text escaped, our mentions live."""
    if kind not in PEOPLES_TEXT:
        return text  # built by the bot from ids and its own words
    d = data or {}
    if not _structured(kind, d):
        # A row from before `data` kept the text: its column is what Slack sent (mrkdwn), shown inert.
        return esc(from_slack(text))
    if kind == "note":
        return esc(d["text"])
    if kind == "declared":
        return f"Declared {esc(d['label'])}: {esc(d['summary'])}"
    if kind == "pinned":
        # Slack's own mrkdwn of the message: shown as typed, its mentions and @channel inert.
        return esc(from_slack(str(d.get("text") or text)))
    item = str(d["text"])  # action_item
    number = d.get("number")
    if d.get("status") == "Done":
        return f"Action item #{number} done: {esc(item)}"
    owner = d.get("owner")
    who = f"<@{owner}>" if isinstance(owner, str) and owner[:1] in ("U", "W") and owner.isalnum() else "none"
    due = d.get("due") or "no due date"
    return f"Action item #{number} added: {esc(item)} (owner {who}, due {esc(due)})"


PEOPLES_TEXT = frozenset({"note", "declared", "pinned", "action_item"})


def _structured(kind: str, d: Mapping[str, Any]) -> bool:
    if kind == "declared":
        return _typed(d, "summary") is not None and _typed(d, "label") is not None
    return kind == "pinned" or _typed(d, "text") is not None


def plain_text(kind: str, text: str, data: Mapping[str, Any] | None, to_plain: Plain) -> str:
    """The event as readable text, people's part as typed (the PIR, the web view), before the format's own
    escaping. Slack mrkdwn -> text through `to_plain`, which resolves our mentions to names."""
    if kind == "pinned" or not _structured(kind, data or {}):
        line = str((data or {}).get("text") or text) if kind == "pinned" else text  # Slack's own mrkdwn
    else:
        line = slack_text(kind, text, data)
    return to_plain(line) if ("<" in line or "&" in line) else line
