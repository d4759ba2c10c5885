"""The worker's retention tick: finished bookkeeping rows older than their period go, everything still in
flight and everything an incident's record needs (incident, timeline, pages) stays."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.models import CheckSample, Incident, OutboxMessage, Page, ProcessedRequest, TimelineEvent, Timer
from bot.states import OutboxState, TimerState
from bot.worker import Worker
from tests.support import BotHarness


async def _count(bot: BotHarness, model: type, *where: object) -> int:
    async with bot.svc.db.session() as s:
        stmt = select(func.count()).select_from(model)
        for w in where:
            stmt = stmt.where(w)  # type: ignore[arg-type]
        return int((await s.execute(stmt)).scalar_one())


def _sample(at: object, probe: str) -> CheckSample:
    return CheckSample(run_id=probe, at=at, probe=probe, status="ok", latency_ms=1.0)


async def test_retention_prunes_old_finished_rows_and_keeps_what_is_in_flight(
    bot: BotHarness, clock: ManualClock
) -> None:
    await bot.command("declare P2 Factory slow for some diners")
    [inc] = await bot.incidents()
    await bot.command("resolve", channel=str(inc.channel_id))
    worker = Worker(bot.svc, worker_id="w")
    await worker.tick()
    start = clock.now()
    assert await _count(bot, OutboxMessage, OutboxMessage.state == OutboxState.SENT) > 0
    assert await _count(bot, Timer, Timer.state.in_((TimerState.DONE, TimerState.DROPPED))) > 0
    assert await _count(bot, ProcessedRequest) > 0
    events, pages = await _count(bot, TimelineEvent), await _count(bot, Page)
    async with bot.svc.db.session() as s:
        # In flight however old: a row not yet due, a timer a worker holds. And samples either side of 90 days.
        s.add(
            OutboxMessage(
                channel="CFUTURE",
                method="post",
                payload={"text": "later"},
                state=OutboxState.PENDING,
                next_attempt_at=start + timedelta(days=400),
                created_at=start - timedelta(days=60),
            )
        )
        s.add(
            Timer(
                kind="page",
                step="Lx",
                due_at=start - timedelta(days=60),
                state=TimerState.CLAIMED,
                claimed_by="a-live-worker",
                claimed_at=start + timedelta(days=400),  # its lease has not run out
            )
        )
        s.add_all(
            [_sample(start - timedelta(days=10), "recent"), _sample(start - timedelta(days=100), "old")]
        )

    clock.advance(days=31)
    await worker.tick()  # the first retention pass of this worker runs at once

    cutoff = clock.now() - timedelta(days=30)
    # Old sent rows are gone; the tick's own fresh rows (the update reminder that fell due in those 31 days
    # is an outbox row) are not old yet.
    sent = OutboxMessage.state == OutboxState.SENT
    assert await _count(bot, OutboxMessage, sent, OutboxMessage.created_at < cutoff) == 0
    assert await _count(bot, OutboxMessage, OutboxMessage.channel == "CFUTURE") == 1
    finished = Timer.state.in_((TimerState.DONE, TimerState.DROPPED, TimerState.FAILED))
    assert await _count(bot, Timer, finished, func.coalesce(Timer.fired_at, Timer.due_at) < cutoff) == 0
    assert await _count(bot, Timer, Timer.state == TimerState.CLAIMED) == 1
    assert await _count(bot, ProcessedRequest, ProcessedRequest.at < clock.now() - timedelta(days=7)) == 0
    assert await _count(bot, CheckSample, CheckSample.probe == "old") == 0
    assert await _count(bot, CheckSample, CheckSample.probe == "recent") == 1
    # The incident's record is never pruned.
    assert await _count(bot, Incident) == 1
    assert await _count(bot, TimelineEvent) >= events
    assert await _count(bot, Page) == pages


async def test_retention_runs_once_per_interval(bot: BotHarness, clock: ManualClock) -> None:
    worker = Worker(bot.svc, worker_id="w")
    await worker.tick()
    async with bot.svc.db.session() as s:
        s.add(_sample(clock.now() - timedelta(days=200), "old"))
    clock.advance(seconds=bot.svc.settings.retention_interval / 2)
    await worker.tick()
    assert await _count(bot, CheckSample) == 1, "a pass within the interval does not prune"
    clock.advance(seconds=bot.svc.settings.retention_interval)
    await worker.tick()
    assert await _count(bot, CheckSample) == 0
