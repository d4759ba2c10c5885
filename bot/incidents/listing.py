"""Read-only views over incidents for lists and App Home: what is open, what resolved lately, who is paged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from bot.context import Services
from bot.models import Incident, Page
from bot.oncall.service import LevelNow, Shift, home_oncall
from bot.pir import links
from bot.ports import ChatError
from bot.states import IncidentStatus, PageState

RECENT = timedelta(days=14)
MOST = 20  # Slack's 50-block limit: App Home shows at most this many rows per list


@dataclass(frozen=True)
class IncidentRow:
    id: str
    severity: str
    status: str
    summary: str
    commander: str | None
    declared_at: datetime
    resolved_at: datetime | None
    channel_id: str | None
    is_drill: bool
    pir_url: str | None = None


@dataclass(frozen=True)
class OpenPage:
    incident_id: str
    level: int
    severity: str
    summary: str
    channel_id: str | None
    sent_at: datetime | None


@dataclass(frozen=True)
class Overview:
    now: datetime
    open: list[IncidentRow]
    recent: list[IncidentRow]
    my_pages: list[OpenPage]
    on_call: list[LevelNow]  # each level's schedule and who holds it now
    my_shifts: list[Shift]  # the viewer's shifts starting in the next 7 days
    tz: str | None = None  # the viewer's Slack time zone, when users.info gave one


def _row(inc: Incident, pir_url: str | None = None) -> IncidentRow:
    return IncidentRow(
        inc.id,
        inc.severity,
        inc.status,
        inc.summary,
        inc.commander,
        inc.declared_at,
        inc.resolved_at,
        inc.channel_id,
        inc.is_drill,
        pir_url,
    )


async def open_incidents(svc: Services, *, limit: int = MOST) -> list[IncidentRow]:
    stmt = (
        select(Incident)
        .where(Incident.status != IncidentStatus.RESOLVED)
        .order_by(Incident.severity, Incident.declared_at.desc())
        .limit(limit)
    )
    async with svc.db.session() as s:
        return [_row(i) for i in (await s.execute(stmt)).scalars()]


async def recent_resolved(svc: Services, *, limit: int = MOST) -> list[IncidentRow]:
    now = svc.clock.now()
    stmt = (
        select(Incident)
        .where(Incident.status == IncidentStatus.RESOLVED, Incident.resolved_at >= now - RECENT)
        .order_by(Incident.resolved_at.desc())
        .limit(limit)
    )
    async with svc.db.session() as s:
        rows = list((await s.execute(stmt)).scalars())
    secret, base = svc.settings.link_secret(), svc.settings.public_url
    return [_row(i, links.incident_url(base, i.id, secret, now, suffix="")) for i in rows]


async def open_pages_for(svc: Services, user: str, *, limit: int = MOST) -> list[OpenPage]:
    """Pages sent to `user` for incidents that are still unacknowledged and open."""
    stmt = (
        select(Page, Incident)
        .join(Incident, Incident.id == Page.incident_id)
        .where(
            Incident.status != IncidentStatus.RESOLVED,
            Incident.acknowledged_at.is_(None),
            Page.state == PageState.SENT,
        )
        .order_by(Page.sent_at.desc())
        .limit(200)
    )
    async with svc.db.session() as s:
        rows = (await s.execute(stmt)).all()
    out = [
        OpenPage(inc.id, page.level, inc.severity, inc.summary, inc.channel_id, page.sent_at)
        for page, inc in rows
        if user in ((page.users or {}).get("ids") or [])
    ]
    return out[:limit]


async def overview(svc: Services, user: str) -> Overview:
    now = svc.clock.now()
    on_call, mine = await home_oncall(svc, user, now)
    try:
        tz = await svc.chat.user_tz(user)
    except ChatError:
        tz = None  # cosmetic: times are shown in UTC instead
    return Overview(
        now,
        await open_incidents(svc),
        await recent_resolved(svc, limit=10),
        await open_pages_for(svc, user),
        on_call,
        mine,
        tz,
    )
