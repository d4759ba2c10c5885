"""The retention tick: bookkeeping rows that only grow (outbox, finished timers, check samples, processed
Slack requests) are deleted after the periods in Settings (RETENTION_*_DAYS, documented in README).

Only rows that are finished and old go: a pending or claimed row is never touched, whatever its age, and
incidents, their timeline and their pages (the PIR's record) are kept."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func

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


async def prune(svc: Services, now: datetime | None = None) -> Pruned:
    """One retention pass, one transaction per table."""
    now = now or svc.clock.now()
    st = svc.settings

    def cutoff(days: float) -> datetime | None:
        return now - timedelta(days=days) if days > 0 else None

    counts: dict[str, int] = {}
    stmts = {
        "outbox": (
            st.retention_outbox_days,
            lambda c: delete(OutboxMessage).where(
                OutboxMessage.state.in_((OutboxState.SENT, OutboxState.FAILED)), OutboxMessage.created_at < c
            ),
        ),
        "timers": (
            st.retention_timers_days,
            lambda c: delete(Timer).where(
                Timer.state.in_((TimerState.DONE, TimerState.DROPPED, TimerState.FAILED)),
                func.coalesce(Timer.fired_at, Timer.due_at) < c,
            ),
        ),
        "samples": (st.retention_samples_days, lambda c: delete(CheckSample).where(CheckSample.at < c)),
        "requests": (
            st.retention_requests_days,
            lambda c: delete(ProcessedRequest).where(ProcessedRequest.at < c),
        ),
    }
    for name, (days, make) in stmts.items():
        c = cutoff(days)
        if c is None:
            continue
        async with svc.db.session() as s:
            result = await s.execute(make(c).execution_options(synchronize_session=False))
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
