"""The state machines' states, one StrEnum each. Stored as their string values (CHECK constraints in migration
0002 keep the columns to these), so a row written before this module existed reads back the same."""

from __future__ import annotations

from enum import StrEnum


class IncidentStatus(StrEnum):
    NEW = "NEW"
    INVESTIGATING = "INVESTIGATING"
    IDENTIFIED = "IDENTIFIED"
    MONITORING = "MONITORING"
    RESOLVED = "RESOLVED"


OPEN_STATUSES: tuple[IncidentStatus, ...] = tuple(
    s for s in IncidentStatus if s is not IncidentStatus.RESOLVED
)


class ProvisionState(StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


class TimerState(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    DROPPED = "dropped"  # a newer plan replaced it (fencing token), or the incident moved on
    FAILED = "failed"


class PageState(StrEnum):
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the DM may or may not have gone out (a timeout): never resent blindly


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed; its lease is next_attempt_at
    SENT = "sent"
    FAILED = "failed"


def check_in(column: str, states: type[StrEnum]) -> str:
    """The SQL of a CHECK constraint keeping `column` to the enum's values (models and migration share it)."""
    return f"{column} IN ({', '.join(repr(s.value) for s in states)})"
