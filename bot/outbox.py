"""Slack side effects that must not be lost, as rows written in the same transaction as the state change.

Delivered right after commit by whoever made the change, and by the worker until they succeed: 429s wait for
Retry-After, 5xx and timeouts back off, permanent errors land in the timeline and are told to the commander.
Rows of one channel go out in order: a row is eligible only when no earlier row of its channel is unsent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    exists,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import aliased

from bot import incident_store as service
from bot.claim import claim_rows, keep_claim
from bot.context import Services
from bot.db import DatabaseUnavailable
from bot.event_text import SLACK, Line, Person, render_line
from bot.models import OutboxMessage
from bot.ports import ChatError, Mark
from bot.priority import NORMAL, with_priority
from bot.states import OutboxState

log = logging.getLogger("incident_bot.outbox")

LEASE = timedelta(seconds=60)
# While an effect runs, its holder pushes the lease forward this often (real seconds): a send slowed past the
# lease by the rate gate or a slow Slack is not taken over and sent again by another process.
RENEW_EVERY = 10.0
# The process that wrote a row delivers it right after commit; the worker only takes rows older than this,
# so it does not race the web process for a fresh declaration's war room.
WORKER_GRACE = timedelta(seconds=5)
GIVE_UP_AFTER = timedelta(hours=24)
# Recording a sent effect is retried for this long (real seconds, well inside the lease) through a database
# outage before the deliverer gives up on the record.
RECORD_RETRIES = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
UNSENT = (OutboxState.PENDING, OutboxState.SENDING)
_OUTBOX = cast(Table, OutboxMessage.__table__)


def effect_row(
    kind: str,
    *,
    channel: str,
    at: datetime,
    incident_id: str | None = None,
    payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> dict[str, Any]:
    """An effect's outbox columns. `channel` orders delivery (an incident id before the war room exists)."""
    return dict(
        incident_id=incident_id,
        channel=channel,
        method=kind,
        payload=payload or {},
        state=OutboxState.PENDING,
        attempts=0,
        next_attempt_at=at,
        created_at=at,
        dedupe_key=dedupe_key,
    )


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
    """Add an effect to the caller's transaction (`effect_row` says what the arguments are)."""
    s.add(
        OutboxMessage(
            **effect_row(
                kind, channel=channel, at=at, incident_id=incident_id, payload=payload, dedupe_key=dedupe_key
            )
        )
    )


async def enqueue_rows(s: Any, rows: list[dict[str, Any]]) -> None:
    """Several effects (`effect_row`s) in the caller's transaction in one statement, in the order given (a
    burst of pages: ORM objects for thousands of rows were a large part of a page's CPU)."""
    if rows:  # Core, not the ORM's bulk insert: that sent one INSERT per row here
        await s.execute(insert(_OUTBOX), rows)


async def enqueue_dm(
    s: Any,
    user: str,
    payload: dict[str, Any],
    *,
    at: datetime,
    incident_id: str | None = None,
    dedupe_key: str | None = None,
) -> None:
    """A `post` to a person's DM, opened when it is sent (a Slack hiccup there is retried like the post);
    one person's DMs go out in order."""
    await enqueue(
        s,
        "post",
        channel=f"dm:{user}",
        at=at,
        incident_id=incident_id,
        payload={**payload, "dm": user},
        dedupe_key=dedupe_key,
    )


_EARLIER = aliased(OutboxMessage)  # built once: an alias per claim was a measurable part of a page's CPU
# Served by ix_outbox_channel_id (migration 0002): without it this is a scan per candidate row.
_BLOCKED = exists().where(
    and_(
        _EARLIER.channel == OutboxMessage.channel,
        _EARLIER.id < OutboxMessage.id,
        _EARLIER.state.in_(UNSENT),
    )
)


async def _claim(
    svc: Services,
    now: datetime,
    limit: int,
    incident_ids: Sequence[str] | None,
    min_age: timedelta = timedelta(0),
) -> list[OutboxMessage]:
    where = [OutboxMessage.state.in_(UNSENT), OutboxMessage.next_attempt_at <= now, ~_BLOCKED]
    if incident_ids is not None:
        where.append(OutboxMessage.incident_id.in_(incident_ids))
    if min_age:
        where.append((OutboxMessage.attempts > 0) | (OutboxMessage.created_at <= now - min_age))
    # 'sending' rows whose lease ran out belong to a process that died: they are taken over here.
    return await claim_rows(
        svc.db,
        OutboxMessage,
        where=where,
        order_by=(OutboxMessage.id,),
        limit=limit,
        values={
            "state": OutboxState.SENDING,
            "next_attempt_at": now + LEASE,
            "attempts": OutboxMessage.attempts + 1,
        },
    )


async def deliver(
    svc: Services,
    *,
    incident_id: str | None = None,
    incident_ids: Sequence[str] | None = None,
    limit: int = 10,
    min_age: timedelta = timedelta(0),
) -> int:
    """Send what is due, oldest first per channel. Returns how many rows went out.

    A claim takes at most one row per channel (a row waits while an earlier row of its channel is unsent),
    so the rows of one claim go out concurrently, and are marked sent together in one transaction; then the
    next claim takes the rows they unblocked. Small claims by default: every claimed row is held until it is
    sent, so a slow Slack must not hold many rows from the other processes (the lease is renewed meanwhile)."""
    ids = [incident_id] if incident_id is not None else incident_ids
    sent = 0
    while True:
        rows = await _claim(svc, svc.clock.now(), limit, ids, min_age)
        if not rows:
            return sent
        outcomes = await _send_round(svc, rows)
        sent += sum(o == "sent" for o in outcomes.values())
        if all(o == "retry" for o in outcomes.values()):  # a row given up on unblocks its channel too
            return sent


async def _send_round(svc: Services, rows: list[OutboxMessage]) -> dict[int, str]:
    """Carry out one claim's rows (one per channel) concurrently; row id -> sent | failed (given up) | retry |
    lost (another process holds the row now). Whatever ends the round (all done, an error, the task being
    cancelled), every row is settled before this returns: what Slack took is marked sent, a row whose effect
    was under way is handed back keeping its try count (`may_be_done`), an untouched one gets its count back."""
    outcomes: dict[int, str] = {}
    performed: dict[int, dict[str, Any]] = {}  # Slack took it: marked sent at the end of the round
    started: set[int] = set()
    errors: list[Exception] = []
    held = {r.id: r for r in rows}  # whose lease the beat renews: until marked or settled otherwise
    prepared = await _prepare(svc, rows)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(row: OutboxMessage) -> None:
        async with gate:
            started.add(row.id)
            try:
                # Reminders and announcements yield to pages when Slack's limits are tight.
                with with_priority(int(row.payload.get("priority", NORMAL))):
                    result = await _perform(svc, row, prepared)
            except ChatError as exc:
                outcomes[row.id] = await _failed(svc, row, exc)
                held.pop(row.id, None)
                return
            except Exception as exc:  # not Slack's answer: the row is handed back below, the error raised
                errors.append(exc)
                return
            performed[row.id] = result or {}

    stop = asyncio.Event()
    beat = asyncio.create_task(_keep_leases(svc, held, stop))
    try:
        # A task group, not gather: cancelled (the process stopping), it waits for every row's task to end
        # before the rows are settled below.
        async with asyncio.TaskGroup() as tg:
            for row in rows:
                tg.create_task(one(row))
    finally:
        stop.set()  # stopped, not cancelled (bot.claim.keep_claim says why)
        await beat
        try:
            if performed:
                outcomes.update(await _mark_sent(svc, [(held[i], r) for i, r in performed.items()]))
        finally:
            untouched = [r.id for r in rows if r.id not in started]
            interrupted = [i for i in started if i not in performed and i not in outcomes]
            if untouched or interrupted:
                await _release(svc, untouched, interrupted=interrupted)
    if errors:
        raise errors[0]
    return outcomes


# Rows of one round in flight at once (distinct channels, so their order is not at stake): as many as the
# worker's concurrent timers, so a burst of pages is not serialised behind Slack's round trips.
CONCURRENCY = 16


async def _prepare(svc: Services, rows: list[OutboxMessage]) -> dict[int, Any]:
    """What the round's rows of each kind with a preparer need, loaded in one statement per kind."""
    prepared: dict[int, Any] = {}
    by_kind: dict[str, list[OutboxMessage]] = {}
    for row in rows:
        if row.method in svc.dispatch.preparers:
            by_kind.setdefault(row.method, []).append(row)
    for kind, these in by_kind.items():
        prepared.update(await svc.dispatch.preparers[kind](svc, these))
    return prepared


async def _release(svc: Services, ids: list[int], *, interrupted: Sequence[int] = ()) -> None:
    """Hand claimed rows back. The untouched ones get their claim's count back; the ones whose effect was
    under way keep it, so their next holder knows they may have been carried out (`may_be_done`)."""

    def hand_back(these: Sequence[int], undo: int) -> Any:
        return (
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(these), OutboxMessage.state == OutboxState.SENDING)
            .values(
                state=OutboxState.PENDING,
                next_attempt_at=svc.clock.now(),
                attempts=OutboxMessage.attempts - undo,
            )
            .execution_options(synchronize_session=False)
        )

    try:
        async with svc.db.session() as s:
            if ids:
                await s.execute(hand_back(ids, 1))
            if interrupted:
                await s.execute(hand_back(interrupted, 0))
    except Exception as exc:  # the lease hands them back anyway
        log.warning("could not release %d outbox rows: %s", len(ids) + len(interrupted), exc)


def may_be_done(row: OutboxMessage) -> bool:
    """Claimed before: a try whose outcome we never learnt (a timeout, a lost answer, a holder killed or
    stopped after Slack took the effect) may have been carried out."""
    return row.attempts > 1


async def find_posted(svc: Services, row: OutboxMessage, channel: str) -> dict[str, Any] | None:
    """The post an earlier try of `row` made in `channel`, if one may have been made and Slack has it:
    {"ts", "found": True, **the data it was posted with}."""
    if not may_be_done(row):
        return None
    found = await svc.chat.find_marked(channel, _mark_key(row))
    if found is None:
        return None
    log.info("outbox row %s: found its earlier post %s in %s", row.id, found["ts"], channel)
    return {**{k: v for k, v in found.items() if k != "key"}, "found": True}


async def post_once(
    svc: Services, row: OutboxMessage, channel: str, text: str, blocks: Any, /, **data: Any
) -> dict[str, Any]:
    """chat.postMessage for an outbox row, at most once per row where Slack lets us tell: a row that may have
    been posted already is looked for before it is posted again. Returns {"ts", **data} (`data` as it was
    when first posted, for a post found again)."""
    found = await find_posted(svc, row, channel)
    if found is not None:
        return {**data, **found}
    return await post_marked(svc, row, channel, text, blocks, **data)


async def post_marked(
    svc: Services, row: OutboxMessage, channel: str, text: str, blocks: Any, /, **data: Any
) -> dict[str, Any]:
    """Post with the row's mark (for a caller that looked with `find_posted` already): {"ts", **data}."""
    return {**data, "ts": await svc.chat.post(channel, text, blocks, mark=Mark(_mark_key(row), data))}


def _mark_key(row: OutboxMessage) -> str:
    return f"outbox:{row.id}"


async def _mark_sent(svc: Services, done: list[tuple[OutboxMessage, dict[str, Any]]]) -> dict[int, str]:
    """Record that Slack took the effects, retrying through a short database outage: unrecorded, a row's
    lease would run out and its effect would be sent a second time (a page DM twice)."""
    for pause in (*RECORD_RETRIES, None):
        try:
            return await _mark_sent_once(svc, done)
        except (DatabaseUnavailable, DBAPIError) as exc:
            if pause is None:
                raise
            log.warning("recording %d outbox rows sent failed (%s); retrying", len(done), exc)
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


# Fenced by the claim's token (`attempts`), one executemany for the round, no read first.
_MARK = (
    update(_OUTBOX)
    .where(
        _OUTBOX.c.id == bindparam("b_id"),
        _OUTBOX.c.state == OutboxState.SENDING,
        _OUTBOX.c.attempts == bindparam("b_attempts"),
    )
    .values(state=OutboxState.SENT, sent_at=bindparam("b_at"), result=bindparam("b_result"), last_error=None)
)


async def _mark_sent_once(svc: Services, done: list[tuple[OutboxMessage, dict[str, Any]]]) -> dict[int, str]:
    now = svc.clock.now()
    async with svc.db.session() as s:
        conn = await s.connection()
        params = [{"b_id": r.id, "b_attempts": r.attempts, "b_at": now, "b_result": res} for r, res in done]
        await conn.execute(_MARK, params)
        # Which of them our marks took (an executemany has no row counts to tell).
        stmt = select(OutboxMessage.id, OutboxMessage.state, OutboxMessage.attempts).where(
            OutboxMessage.id.in_([r.id for r, _ in done])
        )
        now_in_db = {i: (state, attempts) for i, state, attempts in (await s.execute(stmt)).all()}
        outcomes: dict[int, str] = {}
        ours: dict[str, list[tuple[OutboxMessage, dict[str, Any]]]] = {}
        for row, result in done:
            if row.id not in now_in_db:
                outcomes[row.id] = "sent"  # deleted meanwhile (retention, a test): nothing left to mark
            elif now_in_db[row.id] == (OutboxState.SENT, row.attempts):
                outcomes[row.id] = "sent"
                ours.setdefault(row.method, []).append((row, result))
            else:
                # Our lease ran out and another process took the row over: what we sent is Slack's now, but
                # the row is theirs to finish (the effects are idempotent where Slack allows, reliability.md).
                log.warning("outbox row %s was taken over while it was being sent", row.id)
                outcomes[row.id] = "lost"
        for kind, items in ours.items():
            record = svc.dispatch.recorders.get(kind)
            if record is not None:
                await record(s, items)
    return outcomes


def _held(claimed: Sequence[OutboxMessage]) -> tuple[ColumnElement[bool], ...]:
    """The rows as we claimed them, in SQL: every claim increments `attempts`, so it is the fencing token."""
    return (
        OutboxMessage.state == OutboxState.SENDING,
        tuple_(OutboxMessage.id, OutboxMessage.attempts).in_([(r.id, r.attempts) for r in claimed]),
    )


def _ours(current: OutboxMessage, claimed: OutboxMessage) -> bool:
    """Still our claim: every claim increments `attempts`, so it is the fencing token."""
    return current.state == OutboxState.SENDING and current.attempts == claimed.attempts


def _keep_leases(
    svc: Services, held: dict[int, OutboxMessage], stop: asyncio.Event
) -> Coroutine[Any, Any, None]:
    """Push the leases of a round's rows forward while their effects run, in one statement; stop once none
    of them is ours any more."""

    async def renew() -> bool:
        rows = list(held.values())
        if not rows:
            return False
        async with svc.db.session() as s:
            renewed = await s.execute(
                update(OutboxMessage)
                .where(*_held(rows))
                .values(next_attempt_at=svc.clock.now() + LEASE)
                .execution_options(synchronize_session=False)
            )
        return bool(renewed.rowcount)  # type: ignore[attr-defined]

    return keep_claim(stop, RENEW_EVERY, renew, f"{len(held)} outbox rows")


async def _perform(svc: Services, row: OutboxMessage, prepared: dict[int, Any]) -> dict[str, Any] | None:
    effect = svc.dispatch.effects.get(row.method)
    if effect is None:
        raise ChatError(row.method, "unknown_outbox_kind")
    if row.method in svc.dispatch.preparers:
        return await effect(svc, row, prepared.get(row.id))
    return await effect(svc, row)


async def post_effect(svc: Services, row: OutboxMessage) -> dict[str, Any] | None:
    """The `post` effect: a message to `payload.to` or the row's channel (registered at wiring like every
    other kind)."""
    p = row.payload
    channel = str(p.get("to") or row.channel)  # `to`: a DM or channel other than the ordering key
    if p.get("dm"):
        channel = await svc.chat.open_dm(str(p["dm"]))  # a person's DM, opened when it is sent
    if p.get("war_room") and row.incident_id:
        # Queued before the war room existed (keyed on the incident id, so after its provision row): the
        # channel is looked up when it is sent (bot/alerts posts this way).
        inc = await service.load(svc.db, str(row.incident_id))
        channel = (inc.channel_id if inc else None) or ""
        if not channel:
            raise ChatError("chat.postMessage", "war_room_not_ready")
    return await post_once(svc, row, channel, str(p.get("text", "")), p.get("blocks"))


async def bookmark_effect(svc: Services, row: OutboxMessage) -> dict[str, Any] | None:
    """The `bookmark` effect: one link in the channel's bookmarks bar (payload title, link, emoji)."""
    p = row.payload
    await svc.chat.add_bookmark(row.channel, str(p["title"]), str(p["link"]), p.get("emoji"))
    return None


async def archive_effect(svc: Services, row: OutboxMessage) -> dict[str, Any] | None:
    """The `archive` effect: archive the row's channel; one archived already counts as done."""
    try:
        await svc.chat.archive(row.channel)
    except ChatError as exc:
        if exc.error != "already_archived":
            raise
    return None


async def update_effect(svc: Services, row: OutboxMessage) -> dict[str, Any] | None:
    """The `update` effect: edit an existing message (payload channel, ts, text, blocks)."""
    p = row.payload
    await svc.chat.update(str(p["channel"]), str(p["ts"]), str(p.get("text", "")), p.get("blocks"))
    return None


async def reminder_effect(svc: Services, row: OutboxMessage) -> dict[str, Any] | None:
    """The `reminder` effect: the "Update due" nudge. Reminders with no template update between them (the
    same `since`) edit one live message in place; the first of a stale spell, or one whose message is gone,
    posts a new one."""
    p = row.payload
    async with svc.db.session() as s:
        stmt = (
            select(OutboxMessage)
            .where(
                OutboxMessage.incident_id == row.incident_id,
                OutboxMessage.channel == row.channel,
                OutboxMessage.method == "reminder",
                OutboxMessage.state == OutboxState.SENT,
                OutboxMessage.id < row.id,
            )
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        )
        prev = (await s.execute(stmt)).scalar_one_or_none()
    live = (prev.result or {}).get("ts") if prev is not None else None
    text, blocks = str(p.get("text", "")), p.get("blocks")
    if prev is not None and live and prev.payload.get("since") == p.get("since"):
        try:
            await svc.chat.update(row.channel, str(live), text, blocks or [])
            return {"ts": live, "edits": int((prev.result or {}).get("edits", 0)) + 1}
        except ChatError as exc:
            if exc.error not in ("message_not_found", "cant_update_message"):
                raise
    return await post_once(svc, row, row.channel, text, blocks)


async def requeue(s: Any, dedupe_key: str, now: datetime) -> bool:
    """Make a keyed row due now again (a retry button, Slack's retry after a failure). A row some delivery
    holds ('sending') is left alone: its holder is the only one allowed to act on it."""
    stmt = (
        update(OutboxMessage)
        .where(
            OutboxMessage.dedupe_key == dedupe_key,
            OutboxMessage.state.in_((OutboxState.PENDING, OutboxState.FAILED)),
        )
        .values(state=OutboxState.PENDING, next_attempt_at=now, created_at=now)
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
        r = await s.get(OutboxMessage, row.id, with_for_update=True)
        if r is None:
            return "failed"
        if not _ours(r, row):
            return "lost"  # taken over while it was being sent: the new holder decides
        r.last_error = exc.error
        if not give_up:
            r.state, r.next_attempt_at = OutboxState.PENDING, now + backoff
            return "retry"
        r.state = OutboxState.FAILED
        if row.incident_id:
            await service.add_event(
                s,
                row.incident_id,
                "slack_failed",
                _gave_up(svc, row, exc),
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
            what = render_line(_what(svc, row), SLACK)
            await svc.chat.post(
                dm, f"⚠️ {row.incident_id}: could not {what}{_where(row, 'in')} ({exc.error})."
            )
        except ChatError:
            pass
    return "failed"


def _what(svc: Services, row: OutboxMessage) -> Line:
    """The effect in words ("send the page DM to" someone); the kind itself where none was registered."""
    label = svc.dispatch.labels.get(row.method)
    user = row.payload.get("user") or row.payload.get("dm")
    if label is None:
        return Line(row.method)
    return Line(label, " to ", Person(str(user))) if user else Line(label)


def _gave_up(svc: Services, row: OutboxMessage, exc: ChatError) -> Line:
    if row.method in svc.dispatch.labels:
        return Line("Could not ", _what(svc, row), f"{_where(row, 'in')}: {exc.error}")
    return Line(f"Gave up on {row.method}{_where(row)}: {exc.error}")


def _where(row: OutboxMessage, preposition: str = "to") -> str:
    # Status-page rows go to webhooks or Atlassian, not Slack.
    return "" if row.method.startswith("status_") else f" {preposition} Slack"


async def outbox_tick(svc: Services) -> None:
    await deliver(svc, min_age=WORKER_GRACE)


async def pending_count(svc: Services) -> int:
    async with svc.db.session() as s:
        stmt = select(func.count()).where(OutboxMessage.state.in_(UNSENT))
        return int((await s.execute(stmt)).scalar_one())
