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


# -- the public status page (bot/statuspage) ----------------------------------------------------------------


class ComponentState(StrEnum):
    """A component's public state, best to worst (the order is the ranking: bot.statuspage.model.worst)."""

    OPERATIONAL = "operational"
    DEGRADED = "degraded"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"


class PublicIncidentStatus(StrEnum):
    """A public incident's status as customers read it (Atlassian Statuspage's words)."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class StatusUpdateState(StrEnum):
    DRAFT = "draft"
    AWAITING_APPROVAL = "awaiting_approval"  # a P0 update waiting for a second person
    PUBLISHED = "published"  # the only state customers ever see
    DISCARDED = "discarded"


class AlertNotificationState(StrEnum):
    """A stored Grafana/Alertmanager webhook body (bot/alerts): processed once, after the sender's 2xx."""

    PENDING = "pending"
    PROCESSING = "processing"  # claimed; a claim older than the lease belongs to a dead process
    DONE = "done"
    FAILED = "failed"  # gave up after MAX_ATTEMPTS


class AlertStatus(StrEnum):
    """One alert as the sender reports it."""

    FIRING = "firing"
    RESOLVED = "resolved"


class MonitorAlertState(StrEnum):
    """The monitor's alert per problem (table alert_states), Prometheus alerting-rule style."""

    INACTIVE = "inactive"
    PENDING = "pending"  # failing, not yet for `for`
    FIRING = "firing"
    RESOLVING = "resolving"  # clean again, not yet for `clean_for`


def check_in(column: str, states: type[StrEnum]) -> str:
    """The SQL of a CHECK constraint keeping `column` to the enum's values (models and migration share it)."""
    return f"{column} IN ({', '.join(repr(s.value) for s in states)})"
