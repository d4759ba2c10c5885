"""Which timeline events are bookkeeping: the bot's own housekeeping, kept for audit but not the story.

The default timeline view and the PIR's main timeline leave them out; `/incident timeline all` and the PIR's
"Bookkeeping" section show them. Pure."""

from __future__ import annotations

BOOKKEEPING_KINDS = frozenset(
    {
        "reminder",  # "Update due" nudges: many per incident, say nothing about the incident itself
        "slack",  # set the topic, posted/pinned the template, invited responders
        "command",  # "viewed the timeline" and other read-only commands
        "pir_shared",  # who handed out a PIR link
    }
)


def is_bookkeeping(kind: str) -> bool:
    return kind in BOOKKEEPING_KINDS
