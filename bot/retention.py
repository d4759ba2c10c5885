"""The retention tick: bookkeeping rows that only grow (outbox, finished timers, check samples, processed
Slack requests) are deleted after the periods in Settings (RETENTION_*_DAYS, documented in README).

Only rows that are finished and old go: a pending or claimed row is never touched, whatever its age, and
incidents, their timeline and their pages (the PIR's record) are kept."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Delete, delete, func

from bot.context import Services
from bot.models import CheckSample, OutboxMessage, ProcessedRequest, Timer
from bot.states import OutboxState, TimerState

log = logging.getLogger("incident_bot.retention")


@dataclass(frozen=True)
class Pruned:
    outbox: int = 0
    timers: int = 0
    samples: int = 0
    requests: int = 0


def _outbox(cutoff: datetime) -> Delete:
    done = OutboxMessage.state.in_((OutboxState.SENT, OutboxState.FAILED))
    return delete(OutboxMessage).where(done, OutboxMessage.created_at < cutoff)


def _timers(cutoff: datetime) -> Delete:
    done = Timer.state.in_((TimerState.DONE, TimerState.DROPPED, TimerState.FAILED))
    return delete(Timer).where(done, func.coalesce(Timer.fired_at, Timer.due_at) < cutoff)


def _samples(cutoff: datetime) -> Delete:
    return delete(CheckSample).where(CheckSample.at < cutoff)


def _requests(cutoff: datetime) -> Delete:
    return delete(ProcessedRequest).where(ProcessedRequest.at < cutoff)


async def prune(svc: Services, now: datetime | None = None) -> Pruned:
    """One retention pass, one transaction per table."""
    now = now or svc.clock.now()
    st = svc.settings
    kinds: list[tuple[str, float, Callable[[datetime], Delete]]] = [
        ("outbox", st.retention_outbox_days, _outbox),
        ("timers", st.retention_timers_days, _timers),
        ("samples", st.retention_samples_days, _samples),
        ("requests", st.retention_requests_days, _requests),
    ]
    counts: dict[str, int] = {}
    for name, days, stmt in kinds:
        if days <= 0:
            continue  # 0 keeps that kind forever
        async with svc.db.session() as s:
            result = await s.execute(
                stmt(now - timedelta(days=days)).execution_options(synchronize_session=False)
            )
        counts[name] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    pruned = Pruned(**counts)
    if any(counts.values()):
        log.info("retention pruned %s", pruned)
    return pruned


@dataclass
class RetentionTick:
    """A worker tick that prunes at most once per `retention_interval` (the first pass prunes at once)."""

    last: datetime | None = field(default=None)

    async def __call__(self, svc: Services) -> None:
        now = svc.clock.now()
        if self.last is not None and (now - self.last).total_seconds() < svc.settings.retention_interval:
            return
        self.last = now
        await prune(svc, now)
