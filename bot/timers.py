"""Durable timers: due rows in SQL claimed by workers. Claiming is the one dialect-specific query.

PostgreSQL: `FOR UPDATE SKIP LOCKED` lets several workers claim disjoint rows. SQLite: BEGIN IMMEDIATE (see
bot.db) serialises writers, so the same UPDATE … RETURNING is atomic there too.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update

from bot.context import Services
from bot.db import Database
from bot.models import Timer

log = logging.getLogger("incident_bot.timers")

Handler = Callable[[Services, Timer, str], Awaitable[None]]


async def claim(
    db: Database, worker: str, now: datetime, limit: int = 50, incident_id: str | None = None
) -> list[Timer]:
    inner = select(Timer.id).where(Timer.state == "pending", Timer.due_at <= now)
    if incident_id is not None:
        inner = inner.where(Timer.incident_id == incident_id)
    inner = inner.order_by(Timer.due_at, Timer.id).limit(limit)
    if db.dialect == "postgresql":
        inner = inner.with_for_update(skip_locked=True)
    stmt = (
        update(Timer)
        .where(Timer.id.in_(inner.scalar_subquery()))
        .values(state="claimed", claimed_by=worker, claimed_at=now, attempts=Timer.attempts + 1)
        .returning(Timer)
        .execution_options(synchronize_session=False)
    )
    async with db.session() as s:
        rows = list((await s.execute(stmt)).scalars())
    return sorted(rows, key=lambda t: (t.due_at, t.id))


async def recover_stale(db: Database, now: datetime, lease: timedelta) -> int:
    """A worker that died holding claims: put them back. The page's own unique row prevents a double send."""
    stmt = (
        update(Timer)
        .where(Timer.state == "claimed", Timer.claimed_at < now - lease)
        .values(state="pending", claimed_by=None)
        .execution_options(synchronize_session=False)
    )
    async with db.session() as s:
        result = await s.execute(stmt)
    n = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if n:
        log.warning("recovered %d timers from a worker that stopped mid-flight", n)
    return n


def _handlers() -> dict[str, Handler]:
    # Imported here: the flows import this module (claim, finish, retry_later).
    from bot.escalation import flows as esc
    from bot.oncall.worker import fire_handoff
    from bot.pir import flows as pir_flows

    return {
        "page": esc.fire_page,
        "reminder": esc.fire_reminder,
        "pir_reminder": pir_flows.fire_pir_reminder,
        "oncall_handoff": fire_handoff,
    }


async def run_due(
    svc: Services, worker: str, *, limit: int = 50, incident_id: str | None = None, concurrency: int = 16
) -> int:
    """Claim and fire what is due now. Safe from any number of processes at once.

    One incident's steps fire in due order; different incidents fire concurrently (bounded), so a burst of
    due pages is not serialised behind Slack's round trips."""
    timers = await claim(svc.db, worker, svc.clock.now(), limit, incident_id)
    handlers = _handlers()
    by_incident: dict[str | None, list[Timer]] = defaultdict(list)
    for t in timers:
        by_incident[t.incident_id].append(t)
    gate = asyncio.Semaphore(concurrency)

    async def fire_in_order(batch: list[Timer]) -> None:
        async with gate:
            for t in batch:
                await _fire(svc, handlers, t, worker)

    await asyncio.gather(*(fire_in_order(b) for b in by_incident.values()))
    return len(timers)


async def _fire(svc: Services, handlers: dict[str, Handler], t: Timer, worker: str) -> None:
    handler = handlers.get(t.kind)
    if handler is None:
        await finish(svc.db, t.id, "failed", error=f"no handler for {t.kind}")
        return
    try:
        await handler(svc, t, worker)
    except Exception as exc:
        log.exception("timer %s (%s %s) failed", t.id, t.kind, t.step)
        await retry_later(svc.db, t.id, svc.clock.now() + timedelta(seconds=5), repr(exc))


async def finish(
    db: Database, timer_id: int, state: str, *, error: str | None = None, at: datetime | None = None
):
    async with db.session() as s:
        t = await s.get(Timer, timer_id)
        if t is not None:
            t.state, t.last_error = state, error
            if at is not None:
                t.fired_at = at


async def retry_later(db: Database, timer_id: int, when: datetime, error: str) -> None:
    async with db.session() as s:
        t = await s.get(Timer, timer_id)
        if t is not None and t.state == "claimed":
            t.state, t.due_at, t.last_error, t.claimed_by = "pending", when, error, None
