"""Slack side effects that must not be lost, as rows written in the same transaction as the state change.

Delivered right after commit by whoever made the change, and by the worker until they succeed: 429s wait for
Retry-After, 5xx and timeouts back off, permanent errors land in the timeline and are told to the commander.
Rows of one channel go out in order: a row is eligible only when no earlier row of its channel is unsent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import aliased

from bot.context import Services
from bot.incidents import service
from bot.models import OutboxMessage
from bot.ports import ChatError
from bot.priority import NORMAL, with_priority

log = logging.getLogger("incident_bot.outbox")

LEASE = timedelta(seconds=60)
# The process that wrote a row delivers it right after commit; the worker only takes rows older than this,
# so it does not race the web process for a fresh declaration's war room.
WORKER_GRACE = timedelta(seconds=5)
GIVE_UP_AFTER = timedelta(hours=24)


async def enqueue(
    s: Any,
    kind: str,
    *,
    channel: str,
    at: datetime,
    incident_id: str | None = None,
    payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> None:
    """Add an effect to the caller's transaction. `channel` orders delivery (an incident id before the
    war room exists)."""
    s.add(
        OutboxMessage(
            incident_id=incident_id,
            channel=channel,
            method=kind,
            payload=payload or {},
            state="pending",
            attempts=0,
            next_attempt_at=at,
            created_at=at,
            dedupe_key=dedupe_key,
        )
    )


async def _claim(
    svc: Services, now: datetime, limit: int, incident_id: str | None, min_age: timedelta = timedelta(0)
) -> list[OutboxMessage]:
    earlier = aliased(OutboxMessage)
    blocked = exists().where(
        and_(
            earlier.channel == OutboxMessage.channel,
            earlier.id < OutboxMessage.id,
            earlier.state.in_(("pending", "sending")),
        )
    )
    inner = select(OutboxMessage.id).where(
        OutboxMessage.state.in_(("pending", "sending")), OutboxMessage.next_attempt_at <= now, ~blocked
    )
    if incident_id is not None:
        inner = inner.where(OutboxMessage.incident_id == incident_id)
    if min_age:
        inner = inner.where((OutboxMessage.attempts > 0) | (OutboxMessage.created_at <= now - min_age))
    inner = inner.order_by(OutboxMessage.id).limit(limit)
    if svc.db.dialect == "postgresql":
        inner = inner.with_for_update(skip_locked=True)
    # 'sending' rows whose lease ran out belong to a process that died: they are taken over here.
    stmt = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(inner.scalar_subquery()))
        .values(state="sending", next_attempt_at=now + LEASE, attempts=OutboxMessage.attempts + 1)
        .returning(OutboxMessage)
        .execution_options(synchronize_session=False)
    )
    async with svc.db.session() as s:
        return sorted((await s.execute(stmt)).scalars(), key=lambda r: r.id)


async def deliver(
    svc: Services, *, incident_id: str | None = None, limit: int = 10, min_age: timedelta = timedelta(0)
) -> int:
    """Send what is due, oldest first per channel. Returns how many rows went out.

    Small batches: every claimed row is held until its turn, so a slow Slack call must not hold many rows
    hostage from the other processes for a whole lease."""
    sent = 0
    while True:
        rows = await _claim(svc, svc.clock.now(), limit, incident_id, min_age)
        if not rows:
            return sent
        progressed = False
        done: set[int] = set()
        try:
            for row in rows:
                outcome = await _send(svc, row)
                done.add(row.id)
                sent += outcome == "sent"
                progressed |= outcome != "retry"  # a row given up on unblocks its channel too
        finally:
            if len(done) < len(rows):  # stopped or failed midway: hand the untouched rows back at once
                await _release(svc, [r.id for r in rows if r.id not in done])
        if not progressed:
            return sent


async def _release(svc: Services, ids: list[int]) -> None:
    try:
        async with svc.db.session() as s:
            await s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.state == "sending")
                .values(state="pending", next_attempt_at=svc.clock.now(), attempts=OutboxMessage.attempts - 1)
                .execution_options(synchronize_session=False)
            )
    except Exception as exc:  # the lease hands them back anyway
        log.warning("could not release %d outbox rows: %s", len(ids), exc)


async def _send(svc: Services, row: OutboxMessage) -> str:
    """sent | failed (given up) | retry."""
    try:
        # Reminders and announcements yield to pages when Slack's limits are tight.
        with with_priority(int(row.payload.get("priority", NORMAL))):
            result = await _perform(svc, row)
    except ChatError as exc:
        return await _failed(svc, row, exc)
    async with svc.db.session() as s:
        r = await s.get(OutboxMessage, row.id)
        if r is not None:
            r.state, r.sent_at, r.result, r.last_error = "sent", svc.clock.now(), result or {}, None
    return "sent"


# -- the effect registry: each domain registers the kinds it enqueues (one table, one deliverer) -----------
Effect = Callable[[Services, OutboxMessage], Awaitable["dict[str, Any] | None"]]
_EFFECTS: dict[str, Effect] = {}
_wired = False


def register(kind: str, handler: Effect) -> None:
    """Declare how an outbox kind is delivered. Raises ChatError for Slack failures (transient ones retry)."""
    if _EFFECTS.get(kind, handler) is not handler:
        raise ValueError(f"outbox kind {kind!r} is registered twice")
    _EFFECTS[kind] = handler


def kinds() -> list[str]:
    _wire()
    return sorted(_EFFECTS)


async def _post(svc: Services, row: OutboxMessage) -> dict[str, Any]:
    p = row.payload
    ts = await svc.chat.post(str(p.get("to") or row.channel), str(p.get("text", "")), p.get("blocks"))
    return {"ts": ts}


async def _update(svc: Services, row: OutboxMessage) -> None:
    p = row.payload
    await svc.chat.update(str(p["channel"]), str(p["ts"]), str(p.get("text", "")), p.get("blocks"))


register("post", _post)
register("update", _update)


def _wire() -> None:
    """The domains' registrations (explicit, in one place; imported late: the domains import the outbox)."""
    global _wired
    if _wired:
        return
    from bot.escalation import flows as escalation
    from bot.incidents import flows as incidents
    from bot.incidents import lifecycle

    incidents.register_effects(register)
    lifecycle.register_effects(register)
    escalation.register_effects(register)
    _wired = True


async def _perform(svc: Services, row: OutboxMessage) -> dict[str, Any] | None:
    _wire()
    handler = _EFFECTS.get(row.method)
    if handler is None:
        raise ChatError(row.method, "unknown_outbox_kind")
    return await handler(svc, row)


async def requeue(s: Any, dedupe_key: str, now: datetime) -> bool:
    """Make a keyed row due now again (a retry button, Slack's retry after a failure). A row some delivery
    holds ('sending') is left alone: its holder is the only one allowed to act on it."""
    stmt = (
        update(OutboxMessage)
        .where(OutboxMessage.dedupe_key == dedupe_key, OutboxMessage.state.in_(("pending", "failed")))
        .values(state="pending", next_attempt_at=now, created_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool((await s.execute(stmt)).rowcount)


async def state_of(svc: Services, dedupe_key: str) -> str | None:
    async with svc.db.session() as s:
        stmt = select(OutboxMessage.state).where(OutboxMessage.dedupe_key == dedupe_key)
        return (await s.execute(stmt)).scalar_one_or_none()


async def _failed(svc: Services, row: OutboxMessage, exc: ChatError) -> str:
    now = svc.clock.now()
    give_up = not exc.transient or now - row.created_at > GIVE_UP_AFTER
    backoff = timedelta(seconds=exc.backoff(row.attempts, cap=256))
    async with svc.db.session() as s:
        r = await s.get(OutboxMessage, row.id)
        if r is None:
            return "failed"
        r.last_error = exc.error
        if not give_up:
            r.state, r.next_attempt_at = "pending", now + backoff
            return "retry"
        r.state = "failed"
        if row.incident_id:
            await service.add_event(
                s,
                row.incident_id,
                "slack_failed",
                f"Gave up on {row.method} to Slack: {exc.error}",
                at=now,
                data={
                    "outbox_id": row.id,
                    "method": exc.method,
                    "error": exc.error,
                    "attempts": row.attempts,
                },
            )
            inc = await service.get(s, row.incident_id)
            commander = inc.commander if inc else None
        else:
            commander = None
    log.warning("outbox %s (%s) failed for good: %s", row.id, row.method, exc.error)
    if commander:
        try:
            dm = await svc.chat.open_dm(commander)
            await svc.chat.post(dm, f"⚠️ {row.incident_id}: could not {row.method} in Slack ({exc.error}).")
        except ChatError:
            pass
    return "failed"


async def outbox_tick(svc: Services) -> None:
    await deliver(svc, min_age=WORKER_GRACE)


async def pending_count(svc: Services) -> int:
    from sqlalchemy import func

    async with svc.db.session() as s:
        stmt = select(func.count()).where(OutboxMessage.state.in_(("pending", "sending")))
        return int((await s.execute(stmt)).scalar_one())
