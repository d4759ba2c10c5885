"""Timeline events that carry people's text, rendered per surface from `kind` + `data`.

The events that hold text people typed (declared, note, pinned, action_item) keep it as typed in `data`;
the `text` column keeps a Slack-safe mrkdwn line for compatibility. Each surface renders from `data`:
Slack escapes it here (bot.slack_text), the PIR and the web view get the text as typed and escape it for
their own format. Rows written before `data` carried the text fall back to the column, escaped whole for
Slack (the column then held the text raw). Pure.
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
    """The event as a Slack mrkdwn line (the timeline view)."""
    d = data or {}
    if kind == "note":
        typed = _typed(d, "text")
        return esc(typed) if typed is not None else esc(text)
    if kind == "declared":
        summary, label = _typed(d, "summary"), _typed(d, "label")
        if summary is not None and label is not None:
            return f"Declared {esc(label)}: {esc(summary)}"
        return text if summary is not None else esc(text)
    if kind == "pinned":
        raw = _typed(d, "mrkdwn")
        # Slack's own mrkdwn of the message: shown as typed, its mentions and @channel inert.
        return esc(from_slack(raw)) if raw is not None else esc(from_slack(text))
    if kind == "action_item" and _typed(d, "text") is None and "added:" in text:
        return esc(text)  # an old row: the item's text was written raw
    return text


def plain_text(kind: str, text: str, data: Mapping[str, Any] | None, to_plain: Plain) -> str:
    """The event as readable text as typed (the PIR, the web view), before the format's own escaping."""
    d = data or {}
    if kind == "note" and (typed := _typed(d, "text")) is not None:
        return typed
    if kind == "declared":
        summary, label = _typed(d, "summary"), _typed(d, "label")
        if summary is not None and label is not None:
            return f"Declared {label}: {summary}"
    if kind == "pinned" and (raw := _typed(d, "mrkdwn")) is not None:
        return to_plain(raw)
    return to_plain(text) if ("<" in text or "&" in text) else text
