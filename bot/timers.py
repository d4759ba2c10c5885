"""Durable timers: due rows in SQL, claimed by workers (bot.claim). Only the store: what a timer of each kind
does is registered at wiring (bot.dispatch), so this module imports no domain."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import update

from bot.claim import claim_rows
from bot.db import Database
from bot.models import Timer
from bot.states import TimerState

log = logging.getLogger("incident_bot.timers")

__all__ = ["TimerState", "claim", "finish", "recover_stale", "renew", "retry_later"]


async def claim(
    db: Database, worker: str, now: datetime, limit: int = 50, incident_id: str | None = None
) -> list[Timer]:
    where = [Timer.state == TimerState.PENDING, Timer.due_at <= now]
    if incident_id is not None:
        where.append(Timer.incident_id == incident_id)
    return await claim_rows(
        db,
        Timer,
        where=where,
        order_by=(Timer.due_at, Timer.id),
        limit=limit,
        values={
            "state": TimerState.CLAIMED,
            "claimed_by": worker,
            "claimed_at": now,
            "attempts": Timer.attempts + 1,
        },
    )


async def renew(db: Database, timer_ids: list[int], worker: str, now: datetime) -> bool:
    """Extend `worker`'s claims on these timers (their lease counts from `now`), in one statement. False when
    none of them is `worker`'s any more: the lease ran out and another worker took them, or they were finished
    or put back."""
    stmt = (
        update(Timer)
        .where(Timer.id.in_(timer_ids), Timer.state == TimerState.CLAIMED, Timer.claimed_by == worker)
        .values(claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    async with db.session() as s:
        result = await s.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def recover_stale(db: Database, now: datetime, lease: timedelta) -> int:
    """A worker that died holding claims: put them back. The page's own unique row prevents a double send."""
    stmt = (
        update(Timer)
        .where(Timer.state == TimerState.CLAIMED, Timer.claimed_at < now - lease)
        .values(state=TimerState.PENDING, claimed_by=None)
        .execution_options(synchronize_session=False)
    )
    async with db.session() as s:
        result = await s.execute(stmt)
    n = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if n:
        log.warning("recovered %d timers from a worker that stopped mid-flight", n)
    return n


async def finish(
    db: Database, timer_id: int, state: str, *, error: str | None = None, at: datetime | None = None
) -> None:
    async with db.session() as s:
        t = await s.get(Timer, timer_id)
        if t is not None:
            t.state, t.last_error = state, error
            if at is not None:
                t.fired_at = at


async def retry_later(db: Database, timer_id: int, when: datetime, error: str) -> None:
    async with db.session() as s:
        t = await s.get(Timer, timer_id)
        if t is not None and t.state == TimerState.CLAIMED:
            t.state, t.due_at, t.last_error, t.claimed_by = TimerState.PENDING, when, error, None
