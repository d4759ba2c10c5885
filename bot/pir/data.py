"""Everything a PIR shows for one incident, loaded in a handful of queries into plain immutable data.

The timeline is read as bare rows (no ORM objects, no per-row type decorators) in keyset pages, which keeps
a 100,000-event incident inside the bench's budget and lets a caller stream it (`event_pages`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import String, and_, case, func, null, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db import Database
from bot.event_text import people_in
from bot.incident_facts import IncidentFacts, facts_of
from bot.models import ActionItem, CheckSample, Incident, Page, TimelineEvent
from bot.pir.alert_rows import AlertRow, load_alerts
from bot.pir.metrics import Times
from bot.playbook import Playbook

EVENT_BATCH = 25_000


@dataclass(frozen=True, kw_only=True)
class IncidentInfo(IncidentFacts):
    channel_name: str | None
    detected_at: datetime | None
    acknowledged_at: datetime | None
    monitoring_at: datetime | None
    resolved_at: datetime | None
    source: str
    cycle: int
    identified_at: datetime | None = None  # from the timeline: the first move to IDENTIFIED

    def times(self, escalated: bool = False) -> Times:
        return Times(
            severity=self.severity,
            declared_at=self.declared_at,
            detected_at=self.detected_at,
            acknowledged_at=self.acknowledged_at,
            monitoring_at=self.monitoring_at,
            resolved_at=self.resolved_at,
            escalated=escalated,
        )


@dataclass(frozen=True)
class PageRow:
    cycle: int
    level: int
    level_name: str
    users: tuple[str, ...]
    reason: str
    due_at: datetime
    sent_at: datetime | None
    state: str
    acked_by: str | None
    acked_at: datetime | None


@dataclass(frozen=True)
class ActionRow:
    number: int
    text: str
    owner: str | None
    due_date: date | None
    status: str


# One visible timeline event: (utc, kind, actor, text, data, id). `utc` is its time as UTC text,
# 'YYYY-MM-DD HH:MM:SS[.ffffff]' (what SQLite stores, and what PostgreSQL formats for us), so 100,000 rows
# need no datetime objects; `data` is decoded only for DATA_KINDS (None otherwise). The loader hands out the
# driver's rows as they are; `Event` builds one by hand.
EventRow = tuple[str, str, str | None, str, dict[str, Any] | None, int]


class Event(NamedTuple):
    utc: str
    kind: str
    actor: str | None
    text: str
    data: dict[str, Any] | None = None
    id: int = 0


def event_time(e: EventRow) -> datetime:
    return datetime.fromisoformat(e[0]).replace(tzinfo=UTC)


@dataclass(frozen=True)
class ProbeSummary:
    probe: str
    samples: int
    failing: int  # degraded or down
    first_failure: datetime | None
    last_at: datetime
    last_status: str
    last_detail: str
    avg_latency_ms: float
    max_latency_ms: float


@dataclass(frozen=True)
class PirData:
    incident: IncidentInfo
    pages: list[PageRow]
    actions: list[ActionRow]
    checks: list[ProbeSummary]
    events: list[EventRow]
    generated_at: datetime
    names: dict[str, str] = field(default_factory=dict)  # user id -> display name (roster)
    alerts: list[AlertRow] = field(default_factory=list)  # Grafana/Alertmanager alerts (bot/alerts)

    @property
    def escalated(self) -> bool:
        return any(p.level >= 2 for p in self.pages)

    @property
    def times(self) -> Times:
        return self.incident.times(self.escalated)


def incident_info(inc: Incident, severity_label: str = "", team: str | None = None) -> IncidentInfo:
    return IncidentInfo(
        **facts_of(inc, severity_label, team),
        channel_name=inc.channel_name,
        detected_at=inc.detected_at,
        acknowledged_at=inc.acknowledged_at,
        monitoring_at=inc.monitoring_at,
        resolved_at=inc.resolved_at,
        source=inc.source or "slash",
        cycle=inc.cycle or 1,
    )


# Only these kinds' JSON is decoded: parsing 100,000 `data` blobs nobody renders is most of a big load.
# Every other row brings only its stored line (bot.event_text), extracted by the database: `{"line": [...]}`,
# or nothing for a row from before lines were stored.
DATA_KINDS = ("pinned",)


def _data(dialect: str) -> Any:
    T = TimelineEvent
    line: Any
    if dialect == "sqlite":
        line = func.json_extract(T.data, "$.line")
        only_line = func.json_object("line", func.json(line))
    elif dialect == "postgresql":
        line = T.data["line"]
        only_line = func.json_build_object("line", line)
    else:
        raise NotImplementedError(f"timeline reads support sqlite and postgresql, not {dialect}")
    return case(
        (T.kind.in_(DATA_KINDS), T.data),
        (line.is_not(None), type_coerce(only_line, T.data.type)),
        else_=null(),
    )


def _utc_text(dialect: str) -> Any:
    """`at` as UTC text straight from the database: skipping the per-row UTCDateTime conversion is most of
    what keeps a 100,000-event load fast."""
    if dialect == "sqlite":
        return type_coerce(TimelineEvent.at, String())
    if dialect == "postgresql":
        return func.to_char(
            func.timezone("UTC", TimelineEvent.at), "YYYY-MM-DD HH24:MI:SS.US", type_=String()
        )
    raise NotImplementedError(f"timeline reads support sqlite and postgresql, not {dialect}")


async def event_pages(
    s: AsyncSession, incident_id: str, batch: int = EVENT_BATCH
) -> AsyncIterator[Sequence[EventRow]]:
    """The visible timeline, oldest first, in keyset pages of up to `batch` rows: each page is one indexed
    query fetched whole (much faster than a row cursor on aiosqlite), and a streaming consumer holds one
    page at a time. Rows are handed out as the driver made them: no per-row Python objects.

    Removed rows (an un-pinned 📌, a retracted note) are history, not timeline: the PIR never shows them."""
    conn = await s.connection()
    T = TimelineEvent
    data = _data(conn.dialect.name)
    cols = (_utc_text(conn.dialect.name).label("utc"), T.kind, T.actor, T.text, data.label("data"), T.id)
    base = select(*cols).where(T.incident_id == incident_id, T.removed.is_(False))
    stmt = base
    while True:
        rows = (await conn.execute(stmt.order_by(T.at, T.id).limit(batch))).all()
        yield cast("Sequence[EventRow]", rows)  # Rows are tuples of exactly these columns
        if len(rows) < batch:
            return
        last_at, last_id = event_time(rows[-1]), rows[-1][5]
        stmt = base.where(or_(T.at > last_at, and_(T.at == last_at, T.id > last_id)))


async def load_checks(s: AsyncSession, inc: IncidentInfo, now: datetime) -> list[ProbeSummary]:
    """Samples the monitor tied to the incident, plus every sample taken while it was open."""
    end = inc.resolved_at or now
    start = min(inc.detected_at or inc.declared_at, inc.declared_at)
    # Samples tied to another incident are that incident's (the monitor tags them since their detection).
    during = or_(
        CheckSample.incident_id == inc.id,
        and_(CheckSample.incident_id.is_(None), CheckSample.at.between(start, end)),
    )
    failing = CheckSample.status.in_(("degraded", "down", "fail", "failed"))
    agg = (
        select(
            CheckSample.probe,
            func.count(),
            func.sum(case((failing, 1), else_=0)),
            func.min(case((failing, CheckSample.at))),
            func.max(CheckSample.at),
            func.avg(CheckSample.latency_ms),
            func.max(CheckSample.latency_ms),
        )
        .where(during)
        .group_by(CheckSample.probe)
        .order_by(CheckSample.probe)
    )
    rows = (await s.execute(agg)).all()
    if not rows:
        return []
    # The latest sample per probe, for its status and detail: one query over the same window.
    latest = (
        select(CheckSample.probe, CheckSample.status, CheckSample.detail, CheckSample.at)
        .where(during)
        .order_by(CheckSample.probe, CheckSample.at.desc(), CheckSample.id.desc())
    )
    last: dict[str, tuple[str, str]] = {}
    for probe, status, detail, _at in (await s.execute(latest)).all():
        last.setdefault(probe, (status, detail or ""))
    out = []
    for probe, n, bad, first_bad, last_at, avg, peak in rows:
        status, detail = last.get(probe, ("?", ""))
        out.append(
            ProbeSummary(
                probe=probe,
                samples=int(n),
                failing=int(bad or 0),
                first_failure=_aware(first_bad),
                last_at=_aware(last_at) or now,
                last_status=status,
                last_detail=detail,
                avg_latency_ms=float(avg or 0),
                max_latency_ms=float(peak or 0),
            )
        )
    return out


def _aware(value: datetime | str | None) -> datetime | None:
    """Aggregates may bypass the column type, so SQLite can hand back naive datetimes (or strings)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def load(
    db: Database,
    incident_id: str,
    now: datetime,
    *,
    severity_labels: dict[str, str] | None = None,
    teams: dict[str, str] | None = None,
    level_names: dict[int, str] | None = None,
    names: dict[str, str] | None = None,
) -> PirData | None:
    """One read transaction: incident, pages, action items, check summary and the visible timeline."""
    async with db.session() as s:
        inc = (await s.execute(select(Incident).where(Incident.id == incident_id))).scalar_one_or_none()
        if inc is None:
            return None
        info = incident_info(
            inc, (severity_labels or {}).get(inc.severity, inc.severity), (teams or {}).get(inc.area or "")
        )
        pages = [
            PageRow(
                cycle=p.cycle,
                level=p.level,
                level_name=(level_names or {}).get(p.level, f"Level {p.level}"),
                users=tuple(str(u) for u in (p.users or {}).get("ids", [])),
                reason=p.reason or "",
                due_at=p.due_at,
                sent_at=p.sent_at,
                state=p.state,
                acked_by=p.acked_by,
                acked_at=p.acked_at,
            )
            for p in (
                await s.execute(
                    select(Page)
                    .where(Page.incident_id == incident_id)
                    .order_by(Page.cycle, Page.level, Page.id)
                )
            ).scalars()
        ]
        actions = [
            ActionRow(a.number, a.text, a.owner, a.due_date, a.status)
            for a in (
                await s.execute(
                    select(ActionItem)
                    .where(ActionItem.incident_id == incident_id)
                    .order_by(ActionItem.number)
                )
            ).scalars()
        ]
        checks = await load_checks(s, info, now)
        alerts = await load_alerts(s, incident_id)
        events: list[EventRow] = []
        async for page in event_pages(s, incident_id):
            events.extend(page)
    info = replace(info, identified_at=identified_at(events, info))
    return PirData(info, pages, actions, checks, events, now, dict(names or {}), alerts)


def identified_at(events: Sequence[EventRow], info: IncidentInfo) -> datetime | None:
    """When the cause was found: the first status change to IDENTIFIED after the declaration."""
    for e in events:
        if e[1] == "status" and (e[4] or {}).get("to") == "IDENTIFIED":
            at = event_time(e)
            if at >= info.declared_at:
                return at
    return None


class ReadDeps(Protocol):
    """What read-only PIR code needs: bot.context.Services, or the CLI's offline stand-in."""

    @property
    def db(self) -> Database: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def playbook(self) -> Playbook: ...


_USER_ID = re.compile(r"<@([UW][A-Z0-9]{2,})(?:\|[^>]*)?>")


def user_ids(pir: PirData) -> set[str]:
    """Every Slack user the PIR names: roles, pages, owners, actors and mentions in the timeline."""
    inc = pir.incident
    ids = {u for u in (inc.commander, inc.comms_lead, inc.declared_by, inc.acknowledged_by) if u}
    ids |= {u for p in pir.pages for u in p.users} | {p.acked_by for p in pir.pages if p.acked_by}
    ids |= {a.owner for a in pir.actions if a.owner}
    for e in pir.events:
        if e[2]:
            ids.add(e[2])
        ids.update(_USER_ID.findall(e[3]))  # old rows' mentions, and mentions people typed
        ids.update(people_in(e[4]))
    return {u for u in ids if u[:1] in ("U", "W")}


async def load_for(svc: ReadDeps, incident_id: str) -> PirData | None:
    """`load` with the names and labels from the app's playbook; people who are not on the roster are
    looked up in Slack (cached) where the caller has a chat port, so the PIR shows names, not ids."""
    pir = await _load_for(svc, incident_id)
    if pir is None:
        return None
    if pir.incident.channel_id and pir.incident.channel_name:
        pir.names.setdefault(pir.incident.channel_id, pir.incident.channel_name)
    chat = getattr(svc, "chat", None)
    if chat is not None and hasattr(chat, "user_name"):
        for uid in sorted(user_ids(pir) - set(pir.names)):
            name = await chat.user_name(uid)
            if name:
                pir.names[uid] = name
    return pir


async def _load_for(svc: ReadDeps, incident_id: str) -> PirData | None:
    pb = svc.playbook
    return await load(
        svc.db,
        incident_id,
        svc.clock.now(),
        severity_labels={k: v.label for k, v in pb.severities.severities.items()},
        teams={area: route.title for area, route in pb.routing.items()},
        level_names={n: lvl.name for n, lvl in pb.roster.levels.items()},
        names=dict(pb.roster.names),
    )
