"""The SQL side of the status page: load a Snapshot, keep component states and their history.

Only columns written for customers are read into a Snapshot (titles, messages, states, times): internal
incident text (summary, impact, notes, timeline) is never selected here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.incident_store import _insert
from bot.models import (
    StatusComponent,
    StatusComponentChange,
    StatusIncident,
    StatusMaintenance,
    StatusUpdate,
)
from bot.states import StatusUpdateState
from bot.statuspage.config import PageConfig
from bot.statuspage.model import (
    STATES,
    Change,
    ComponentView,
    IncidentView,
    MaintenanceView,
    Snapshot,
    UpdateView,
    day_bars,
    worst,
)


async def _component_row(s: AsyncSession, key: str, at: datetime, *, lock: bool = False) -> StatusComponent:
    """The component's row, created on first use. Two workers' monitors may both create it: the insert does
    nothing on conflict, then the row is read (locked on PostgreSQL, so their changes serialise)."""
    await s.execute(
        _insert(s, StatusComponent)
        .values(key=key, state="operational", effective="operational", automated_reason="", updated_at=at)
        .on_conflict_do_nothing()
    )
    stmt = select(StatusComponent).where(StatusComponent.key == key)
    if lock and s.bind is not None and s.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return (await s.execute(stmt)).scalar_one()


def _recompute(s: AsyncSession, row: StatusComponent, at: datetime, source: str) -> bool:
    effective = worst((row.state, row.automated_state))
    if effective == row.effective:
        return False
    row.effective, row.updated_at = effective, at
    s.add(StatusComponentChange(component=row.key, state=effective, at=at, source=source))
    return True


async def set_automated_state(
    session: AsyncSession, component: str, state: str | None, reason: str, at: datetime
) -> bool:
    """The monitor's judgement of one component, in the caller's transaction. `None` or "operational" clears
    it. `reason` is kept for responders and never shown publicly. Returns whether the page changed."""
    if state is not None and state not in STATES:
        raise ValueError(f"unknown component state {state!r}")
    row = await _component_row(session, component, at, lock=True)
    new = None if state in (None, "operational") else state
    if new == row.automated_state:
        return False
    row.automated_state, row.automated_at, row.automated_reason = new, at, reason[:2000]
    return _recompute(session, row, at, "automated")


async def set_public_state(session: AsyncSession, component: str, state: str, at: datetime) -> bool:
    """The state a published update gives a component (humans, on purpose)."""
    row = await _component_row(session, component, at, lock=True)
    row.state = state
    return _recompute(session, row, at, "update")


async def _bars(s: AsyncSession, config: PageConfig, now: datetime) -> dict[str, tuple[Any, ...]]:
    start = (now - timedelta(days=config.history_days)).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = (
        await s.execute(
            select(StatusComponentChange)
            .where(StatusComponentChange.at >= start)
            .order_by(StatusComponentChange.at, StatusComponentChange.id)
        )
    ).scalars()
    changes: dict[str, list[Change]] = {}
    for r in rows:
        changes.setdefault(r.component, []).append(Change(r.at, r.state))
    out: dict[str, tuple[Any, ...]] = {}
    for c in config.components:
        prior = (
            await s.execute(
                select(StatusComponentChange.state)
                .where(StatusComponentChange.component == c.key, StatusComponentChange.at < start)
                .order_by(StatusComponentChange.at.desc(), StatusComponentChange.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        out[c.key] = day_bars(changes.get(c.key, []), config.history_days, now, prior or "operational")
    return out


def update_view(u: StatusUpdate, config: PageConfig, at: datetime | None = None) -> UpdateView:
    names = {c.key: c.name for c in config.components}
    comps = tuple((names[k], st) for k, st in (u.components or {}).items() if k in names and st in STATES)
    return UpdateView(u.id or 0, u.status, u.message, at or u.published_at or u.created_at, comps)


async def snapshot(s: AsyncSession, config: PageConfig, now: datetime, url: str) -> Snapshot:
    rows = {r.key: r for r in (await s.execute(select(StatusComponent))).scalars()}
    bars = await _bars(s, config, now)
    components = []
    for c in config.components:
        r = rows.get(c.key)
        state = r.effective if r is not None else "operational"
        automated = bool(r is not None and r.automated_state and rank_gt(r.automated_state, r.state))
        components.append(
            ComponentView(
                c.key,
                c.name,
                c.description,
                state,
                automated=automated,
                automated_at=r.automated_at if r is not None and automated else None,
                days=bars[c.key],
            )
        )
    since = now - timedelta(days=config.history_days)
    incs = list(
        (
            await s.execute(
                select(StatusIncident)
                .where(or_(StatusIncident.resolved_at.is_(None), StatusIncident.resolved_at >= since))
                .order_by(StatusIncident.created_at.desc())
                .limit(200)
            )
        ).scalars()
    )
    updates: dict[int, list[UpdateView]] = {}
    if incs:
        ups = (
            await s.execute(
                select(StatusUpdate)
                .where(
                    StatusUpdate.status_incident_id.in_([i.id for i in incs]),
                    StatusUpdate.state == StatusUpdateState.PUBLISHED,
                )
                .order_by(StatusUpdate.published_at.desc(), StatusUpdate.id.desc())
            )
        ).scalars()
        for u in ups:
            updates.setdefault(u.status_incident_id or 0, []).append(update_view(u, config))
    incidents = [
        IncidentView(
            i.id, i.title, i.status, i.impact, i.created_at, i.resolved_at, tuple(updates.get(i.id, ()))
        )
        for i in incs
    ]
    incidents.sort(key=lambda i: (i.status == "resolved", -i.updated_at.timestamp()))
    maint_rows = (
        await s.execute(
            select(StatusMaintenance)
            .where(
                and_(
                    StatusMaintenance.cancelled.is_(False),
                    StatusMaintenance.ends_at >= now - timedelta(days=1),
                )
            )
            .order_by(StatusMaintenance.starts_at)
            .limit(20)
        )
    ).scalars()
    names = {c.key: c.name for c in config.components}
    maintenance = tuple(
        MaintenanceView(
            m.id,
            m.title,
            m.message,
            m.starts_at,
            m.ends_at,
            tuple(names[k] for k in (m.components or {}).get("keys", []) if k in names),
        )
        for m in maint_rows
    )
    return Snapshot(
        title=config.title,
        url=url,
        generated_at=now,
        components=tuple(components),
        incidents=tuple(incidents),
        maintenance=maintenance,
        support_url=config.support_url,
        history_days=config.history_days,
    )


def rank_gt(a: str, b: str) -> bool:
    return STATES.index(a) > STATES.index(b) if a in STATES and b in STATES else False


async def schedule_maintenance(
    s: AsyncSession,
    config: PageConfig,
    *,
    title: str,
    message: str,
    starts_at: datetime,
    ends_at: datetime,
    components: list[str],
    by: str | None,
    at: datetime,
) -> StatusMaintenance:
    if ends_at <= starts_at:
        raise ValueError("maintenance must end after it starts")
    unknown = [k for k in components if config.component(k) is None]
    if unknown:
        raise ValueError(f"unknown components: {', '.join(unknown)}")
    row = StatusMaintenance(
        title=title.strip()[:200],
        message=message.strip()[:2000],
        components={"keys": components},
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=by,
        created_at=at,
        cancelled=False,
    )
    s.add(row)
    await s.flush()
    return row
