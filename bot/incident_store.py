"""The incident store: rows of incidents, their timeline and processed Slack requests (queries only, no
flow). A store module, below every domain package, so escalation, the outbox and the flows all use it."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database
from bot.event_text import Line, stored
from bot.models import Incident, Page, ProcessedRequest, TimelineEvent
from bot.states import IncidentStatus


async def get(session: AsyncSession, incident_id: str, *, for_update: bool = False) -> Incident | None:
    stmt = select(Incident).where(Incident.id == incident_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_channel(session: AsyncSession, channel_id: str) -> Incident | None:
    return (
        await session.execute(select(Incident).where(Incident.channel_id == channel_id))
    ).scalar_one_or_none()


async def open_for_problem(session: AsyncSession, problem_key: str) -> Incident | None:
    stmt = (
        select(Incident)
        .where(Incident.problem_key == problem_key, Incident.status != IncidentStatus.RESOLVED)
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def declared_since(session: AsyncSession, user: str, since: datetime) -> int:
    """How many incidents `user` declared since `since`, counted under a per-user lock held until the
    transaction ends, so the count and the insert that follows are one step: at READ COMMITTED, twelve
    concurrent declarations would otherwise all count four and all insert. PostgreSQL: a transaction-scoped
    advisory lock on the user; SQLite: every write transaction already holds the database lock (BEGIN
    IMMEDIATE, bot/db.py)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(_lock_key("declare", user))))
    stmt = select(func.count()).where(
        Incident.declared_by == user, Incident.declared_at >= since, Incident.source != "monitor"
    )
    return int((await session.execute(stmt)).scalar_one())


def _lock_key(purpose: str, name: str) -> int:
    """A stable signed 64-bit advisory-lock key (Python's hash() differs per process)."""
    digest = hashlib.blake2b(f"{purpose}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def id_taken(session: AsyncSession, incident_id: str) -> bool:
    return (await session.execute(select(Incident.id).where(Incident.id == incident_id))).first() is not None


def _insert(session: AsyncSession, model: type[Any]) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


async def claim_request(session: AsyncSession, key: str, at: datetime, ref: str | None = None) -> bool:
    """Record a Slack request id; False when it was already processed (a retry or a double submit)."""
    stmt = _insert(session, ProcessedRequest).values(key=key, at=at, ref=ref).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def request_ref(session: AsyncSession, key: str) -> str | None:
    row = (await session.execute(select(ProcessedRequest.ref).where(ProcessedRequest.key == key))).first()
    return row[0] if row else None


async def set_request_ref(session: AsyncSession, key: str, ref: str) -> None:
    row = await session.get(ProcessedRequest, key)
    if row is not None:
        row.ref = ref


async def add_event(
    session: AsyncSession,
    incident_id: str,
    kind: str,
    text: str | Line,
    *,
    at: datetime,
    actor: str | None = None,
    data: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> bool:
    """Append to the timeline. With a dedupe key, a second insert is a no-op and returns False.

    `text` is plain (a `str`) or a `Line` naming people and channels by id, never Slack mrkdwn: it is kept
    in `data["line"]` and the column gets its neutral text (bot.event_text)."""
    values = event_values(incident_id, kind, text, at=at, actor=actor, data=data, dedupe_key=dedupe_key)
    if dedupe_key is None:
        session.add(TimelineEvent(**values))
        await session.flush()
        return True
    stmt = _insert(session, TimelineEvent).values(**values).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


def event_values(
    incident_id: str,
    kind: str,
    text: str | Line,
    *,
    at: datetime,
    actor: str | None = None,
    data: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> dict[str, Any]:
    """One timeline row's columns, as `add_event` stores them (for `add_events`)."""
    column, stored_data = stored(kind, text, data)
    return dict(
        incident_id=incident_id,
        at=at,
        kind=kind,
        actor=actor,
        text=column,
        data=stored_data,
        dedupe_key=dedupe_key,
    )


async def add_events(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Several timeline rows (`event_values`, each with a dedupe key) in one statement; those whose key is
    taken already are left out. An executemany: one compiled statement whatever the number of rows (a
    VALUES list per size was not)."""
    if rows:
        await session.execute(_insert(session, TimelineEvent).on_conflict_do_nothing(), rows)


async def has_event(session: AsyncSession, dedupe_key: str) -> bool:
    stmt = select(TimelineEvent.id).where(TimelineEvent.dedupe_key == dedupe_key)
    return (await session.execute(stmt)).first() is not None


async def event_incident(session: AsyncSession, dedupe_key: str) -> str | None:
    """Which incident the event with this dedupe key belongs to (None: no such event)."""
    stmt = select(TimelineEvent.incident_id).where(TimelineEvent.dedupe_key == dedupe_key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def events(
    session: AsyncSession, incident_id: str, *, include_removed: bool = True
) -> list[TimelineEvent]:
    stmt = select(TimelineEvent).where(TimelineEvent.incident_id == incident_id)
    if not include_removed:
        stmt = stmt.where(TimelineEvent.removed.is_(False))
    stmt = stmt.order_by(TimelineEvent.at, TimelineEvent.id)
    return list((await session.execute(stmt)).scalars())


async def event_kinds(session: AsyncSession, incident_id: str) -> list[str]:
    return [e.kind for e in await events(session, incident_id)]


def ago(now: datetime, then: datetime) -> timedelta:
    return now - then


# -- one-shot reads and claims with their own transaction, for adapters (no sessions in handlers) ----------


async def load(db: Database, incident_id: str) -> Incident | None:
    async with db.session() as s:
        return await get(s, incident_id)


async def load_by_channel(db: Database, channel_id: str) -> Incident | None:
    async with db.session() as s:
        return await by_channel(s, channel_id)


async def claim_request_once(db: Database, key: str, at: datetime) -> bool:
    """True the first time `key` is seen (then it is recorded), False for a retry of it."""
    async with db.session() as s:
        return await claim_request(s, key, at)


async def was_paged(db: Database, incident_id: str, user: str) -> bool:
    """True when one of the incident's pages went to `user` (who may then acknowledge it)."""
    async with db.session() as s:
        rows = (await s.execute(select(Page.users).where(Page.incident_id == incident_id))).scalars()
        return any(user in (u or {}).get("ids", []) for u in rows)


async def record_event(
    db: Database,
    incident_id: str,
    kind: str,
    text: str | Line,
    *,
    at: datetime,
    actor: str | None = None,
    data: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> bool:
    """add_event in its own transaction (a refusal on the timeline, from the permission guard)."""
    async with db.session() as s:
        return await add_event(
            s, incident_id, kind, text, at=at, actor=actor, data=data, dedupe_key=dedupe_key
        )
