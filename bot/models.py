"""SQLAlchemy 2 models. The schema itself is owned by Alembic (migrations/); tests may call create_all."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.states import (
    AlertNotificationState,
    AlertStatus,
    ComponentState,
    IncidentStatus,
    MonitorAlertState,
    OutboxState,
    PageState,
    ProvisionState,
    PublicIncidentStatus,
    StatusUpdateState,
    TimerState,
    check_in,
)

# Integer primary keys autoincrement on SQLite only as INTEGER; BIGINT elsewhere.
BigId = BigInteger().with_variant(Integer, "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Always hands back aware UTC datetimes; SQLite stores them naive, PostgreSQL as timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), date: Date()}


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    severity: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(16), default=IncidentStatus.NEW)
    summary: Mapped[str] = mapped_column(Text)
    impact: Mapped[str] = mapped_column(Text, default="")
    root_cause: Mapped[str] = mapped_column(Text, default="")
    next_steps: Mapped[str] = mapped_column(Text, default="")
    area: Mapped[str | None] = mapped_column(String(32))
    commander: Mapped[str | None] = mapped_column(String(32))
    comms_lead: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    channel_name: Mapped[str | None] = mapped_column(String(80))
    template_ts: Mapped[str | None] = mapped_column(String(32))
    # pending -> ready, or failed (with the step that failed); a retry resumes, never recreates the channel.
    provision_state: Mapped[str] = mapped_column(String(16), default=ProvisionState.PENDING)
    provision_error: Mapped[str | None] = mapped_column(Text)
    declared_by: Mapped[str] = mapped_column(String(32))
    declared_at: Mapped[datetime]
    detected_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(32))
    monitoring_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]  # last template update, drives update reminders
    # Fencing token: every state change that re-plans timers bumps it; a timer with an older one is dropped.
    plan_version: Mapped[int] = mapped_column(Integer, default=1)
    cycle: Mapped[int] = mapped_column(Integer, default=1)  # bumped by reopen; pages are unique per cycle
    ack_cycle: Mapped[int] = mapped_column(Integer, default=0)  # the cycle someone last acknowledged in
    cycle_started_at: Mapped[datetime | None]  # reopen restarts the ladder's clock
    is_drill: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16), default="slash")
    problem_key: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint(check_in("status", IncidentStatus), name="status"),
        CheckConstraint(check_in("provision_state", ProvisionState), name="provision_state"),
        Index("ix_incidents_status", "status"),
        Index("ix_incidents_declared_at", "declared_at"),
    )


class TimelineEvent(Base):
    __tablename__ = "timeline_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_timeline_incident_at", "incident_id", "at", "id"),)


class ProcessedRequest(Base):
    """Slack request ids (event_id, trigger_id, action ids) already handled: retries become no-ops."""

    __tablename__ = "processed_requests"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    at: Mapped[datetime]
    ref: Mapped[str | None] = mapped_column(String(64))  # what it produced, e.g. the incident id


class Timer(Base):
    __tablename__ = "timers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))  # page | reminder | pir_reminder | ...
    step: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(12), default=TimerState.PENDING)
    # The incident's plan_version when planned (both start at 1); an older one than the incident's is dropped.
    plan_version: Mapped[int] = mapped_column(Integer, default=1)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    fired_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (
        UniqueConstraint("incident_id", "kind", "step", "plan_version", name="uq_timers_step_version"),
        Index("ix_timers_state_due", "state", "due_at"),
        CheckConstraint(check_in("state", TimerState), name="state"),
    )


class Page(Base):
    """One escalation step actually sent (or being sent). The unique key is the exactly-once guard."""

    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    step: Mapped[str] = mapped_column(String(32))
    level: Mapped[int] = mapped_column(Integer)
    users: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"ids": [...]}
    reason: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(12), default=PageState.SENDING)
    dm: Mapped[dict[str, Any]] = mapped_column(default=dict)  # user -> {"channel":..., "ts":...}
    acked_by: Mapped[str | None] = mapped_column(String(32))
    acked_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("incident_id", "cycle", "step", name="uq_pages_step"),
        CheckConstraint(check_in("state", PageState), name="state"),
    )


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(12), default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)

    __table_args__ = (
        Index("ix_outbox_state_next", "state", "next_attempt_at"),
        # "Blocked by an earlier unsent row of this channel" (bot.outbox._claim) is a lookup on these two.
        Index("ix_outbox_channel_id", "channel", "id"),
        CheckConstraint(check_in("state", OutboxState), name="state"),
    )


class SlackPause(Base):
    """A Slack Retry-After, per method, shared by every process: none calls the method before `until`."""

    __tablename__ = "slack_pauses"

    method: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[datetime]
    set_at: Mapped[datetime]


class CheckSample(Base):
    __tablename__ = "check_samples"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime]
    probe: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(12))
    http_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column()
    detail: Mapped[str] = mapped_column(Text, default="")
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))

    __table_args__ = (Index("ix_check_samples_at", "at"),)


class AlertState(Base):
    """The monitor's alert state for one problem (Prometheus-rule style): inactive -> pending -> firing ->
    resolving -> inactive again after a clean window. Bound to the incident it opened; `tick_*` is the lease
    that lets one worker own a tick. (Not the Grafana/Alertmanager webhook alerts: those are another table.)"""

    __tablename__ = "alert_states"

    problem_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(12), default=MonitorAlertState.INACTIVE)
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    pending_since: Mapped[datetime | None]  # the first failing sample: the detection time
    firing_since: Mapped[datetime | None]
    resolving_since: Mapped[datetime | None]
    last_sample_at: Mapped[datetime | None]
    last_failing_at: Mapped[datetime | None]
    failing_samples: Mapped[int] = mapped_column(Integer, default=0)
    flaps: Mapped[int] = mapped_column(Integer, default=0)
    tick_owner: Mapped[str | None] = mapped_column(String(64))
    tick_until: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (CheckConstraint(check_in("state", MonitorAlertState), name="state"),)


class ActionItem(Base):
    __tablename__ = "action_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(64))
    due_date: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(16), default="Open")
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("incident_id", "number", name="uq_action_items_number"),)


class Drill(Base):
    __tablename__ = "drills"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    scenario: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Signoff(Base):
    __tablename__ = "signoffs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    role: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(32))
    plan_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


# -- public status page (bot/statuspage) ------------------------------------------------------------------


class StatusComponent(Base):
    """A component's public state: `state` as the last public update set it, `automated_state` as the
    monitor judged it; `effective` (the worse) is what the page shows."""

    __tablename__ = "status_components"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="operational")
    automated_state: Mapped[str | None] = mapped_column(String(16))
    automated_at: Mapped[datetime | None]
    automated_reason: Mapped[str] = mapped_column(Text, default="")  # internal: never rendered
    effective: Mapped[str] = mapped_column(String(16), default="operational")
    updated_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint(check_in("state", ComponentState), name="state"),
        CheckConstraint(check_in("automated_state", ComponentState), name="automated_state"),
        CheckConstraint(check_in("effective", ComponentState), name="effective"),
    )


class StatusComponentChange(Base):
    """Every change of a component's effective state: the 90-day availability bars."""

    __tablename__ = "status_component_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    component: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(16))  # update | automated

    __table_args__ = (
        Index("ix_status_component_changes_component_at", "component", "at"),
        CheckConstraint(check_in("state", ComponentState), name="state"),
    )


class StatusIncident(Base):
    __tablename__ = "status_incidents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[str | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), unique=True
    )
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    impact: Mapped[str] = mapped_column(String(16), default="operational")
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    external_id: Mapped[str | None] = mapped_column(String(64))  # Atlassian Statuspage incident id

    __table_args__ = (
        CheckConstraint(check_in("status", PublicIncidentStatus), name="status"),
        CheckConstraint(check_in("impact", ComponentState), name="impact"),
    )


class StatusUpdate(Base):
    """A public update: a draft until someone allowed publishes it (and, for P0 when configured, a second
    person approves). Only published rows are ever shown to customers."""

    __tablename__ = "status_updates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    status_incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("status_incidents.id", ondelete="CASCADE")
    )
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    components: Mapped[dict[str, Any]] = mapped_column(default=dict)  # key -> state
    state: Mapped[str] = mapped_column(String(20), default=StatusUpdateState.DRAFT)
    author: Mapped[str] = mapped_column(String(32))
    approved_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None]
    preview_token: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        Index("ix_status_updates_state_published", "state", "published_at"),
        CheckConstraint(check_in("state", StatusUpdateState), name="state"),
        CheckConstraint(check_in("status", PublicIncidentStatus), name="status"),
    )


class StatusMaintenance(Base):
    __tablename__ = "status_maintenance"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text, default="")
    components: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"keys": [...]}
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)


class StatusSubscriber(Base):
    """A webhook subscriber: each published update is POSTed to `url`, signed with `secret` (HMAC-SHA256)."""

    __tablename__ = "status_subscribers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), default="webhook")
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class AlertNotification(Base):
    """One webhook body from Grafana or Alertmanager, stored as received before the sender gets its 2xx:
    processing happens afterwards (and again after a crash), so nothing the sender handed over is lost."""

    __tablename__ = "alert_notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))  # alertmanager | grafana
    received_at: Mapped[datetime]
    body: Mapped[str] = mapped_column(Text)  # the JSON exactly as sent
    group_key: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="")  # the notification's firing|resolved
    alert_count: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(12), default=AlertNotificationState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (
        Index("ix_alert_notifications_state", "state", "received_at"),
        CheckConstraint(check_in("state", AlertNotificationState), name="state"),
    )


class Alert(Base):
    """One alert (by fingerprint) as seen for one incident, or unattached (`scope` '-') when routing only
    records it. Repeats of the same notification change `repeats`, nothing else that is shown."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    fingerprint: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(40))  # the incident id, or '-' when not attached
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    group_key: Mapped[str] = mapped_column(Text, default="")
    name: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))  # AlertStatus
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    links: Mapped[dict[str, Any]] = mapped_column(
        default=dict
    )  # generator, dashboard, panel, silence, runbook
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rule: Mapped[str] = mapped_column(String(64), default="")  # the routing rule, or 'unmatched'
    action: Mapped[str] = mapped_column(String(16), default="record")  # declare | attach | record | flap
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    repeats: Mapped[int] = mapped_column(Integer, default=0)  # "still firing" notifications
    flaps: Mapped[int] = mapped_column(Integer, default=0)  # resolved -> firing again
    notifications: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (
        UniqueConstraint("source", "fingerprint", "scope", name="uq_alerts_source_fingerprint_scope"),
        Index("ix_alerts_incident", "incident_id"),
        CheckConstraint(check_in("status", AlertStatus), name="status"),
    )


class OncallOverride(Base):
    """Someone covers a schedule for a while (an override, a taken shift, one half of a swap)."""

    __tablename__ = "oncall_overrides"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[str] = mapped_column(String(32))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16), default="override")  # override | take | swap
    note: Mapped[str] = mapped_column(Text, default="")
    made_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]
    removed_by: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_oncall_overrides_schedule_end", "schedule", "end_at"),)


class OncallFeed(Base):
    """The last good copy of an external iCal feed, kept when a refresh fails."""

    __tablename__ = "oncall_feeds"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # <schedule>/<layer>
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    fetched_at: Mapped[datetime | None]
    attempted_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


ALL_TABLES = [t.name for t in Base.metadata.sorted_tables]
