"""What the worker and the outbox run, by kind. Filled at wiring (wiring/services.py), so the stores (timers,
outbox) never import the domains whose work they carry, and adding a kind touches the wiring and its module."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot import timers
from bot.claim import keep_claim
from bot.models import OutboxMessage, Timer

if TYPE_CHECKING:
    from bot.context import Services

log = logging.getLogger("incident_bot.dispatch")

# How often (real seconds) a running timer handler's claim is renewed: well inside the worker's 30 s lease, so
# a slow Slack call never lets a second worker take the timer while its holder is alive. A worker that dies
# stops renewing, and its timers are taken over once the lease has run out.
RENEW_EVERY = 5.0

TimerHandler = Callable[["Services", Timer, str], Awaitable[None]]
# Fires every claimed timer of its kind from one claim at once (in due order per incident), e.g. a burst of
# pages in one transaction; a kind without one fires timer by timer.
BatchTimerHandler = Callable[["Services", list[Timer], str], Awaitable[None]]
# An outbox effect: performs the row (raises ChatError to retry or give up), returns what to store as result.
# An effect registered with a preparer is called with what the preparer loaded for its row as a third argument.
EffectHandler = Callable[..., Awaitable[dict[str, Any] | None]]
# Loads what the rows of one kind in a delivery round need, in one statement for all of them: row id -> value.
EffectPreparer = Callable[["Services", list[OutboxMessage]], Awaitable[dict[int, Any]]]
# Writes what the effects' results mean to their domain (e.g. where page DMs went) in the transaction that
# marks the rows sent: the record and the "sent" mark cannot disagree after a crash. All rows of the kind
# marked in that transaction at once.
EffectRecorder = Callable[[Any, list[tuple[OutboxMessage, dict[str, Any]]]], Awaitable[None]]
Tick = Callable[["Services"], Awaitable[None]]
# Called when the monitor sees an incident's metrics back to normal; True = "mine, say nothing more" (a drill).
RecoveryHook = Callable[["Services", str], Awaitable[bool]]
# Asked before a resolve (incident id, user): why not, in plain words, or "" (the monitor's health gate).
ResolveGate = Callable[["Services", str, str], Awaitable[str]]
# Called after an incident is resolved (incident id, user): e.g. resolving a drill incident finishes the drill.
ResolvedHook = Callable[["Services", str, str], Awaitable[None]]


@dataclass
class Dispatch:
    timers: dict[str, TimerHandler] = field(default_factory=dict)
    batch_timers: dict[str, BatchTimerHandler] = field(default_factory=dict)
    effects: dict[str, EffectHandler] = field(default_factory=dict)
    recorders: dict[str, EffectRecorder] = field(default_factory=dict)
    preparers: dict[str, EffectPreparer] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # effect kind -> words for "could not <label>"
    ticks: list[Tick] = field(default_factory=list)  # run by the worker on each pass, in this order
    recovery_hooks: list[RecoveryHook] = field(default_factory=list)
    resolve_gates: list[ResolveGate] = field(default_factory=list)
    resolved_hooks: list[ResolvedHook] = field(default_factory=list)

    def timer(self, kind: str, handler: TimerHandler, *, batch: BatchTimerHandler | None = None) -> None:
        """`handler` fires one timer; `batch`, when given, fires all of a claim's timers of this kind at once
        (the one-by-one `handler` is then the fallback when the batch fails)."""
        if kind in self.timers:
            raise ValueError(f"timer kind {kind!r} registered twice")
        self.timers[kind] = handler
        if batch is not None:
            self.batch_timers[kind] = batch

    def effect(
        self,
        kind: str,
        handler: EffectHandler,
        *,
        on_sent: EffectRecorder | None = None,
        label: str | None = None,
        prepare: EffectPreparer | None = None,
    ) -> None:
        if kind in self.effects:
            raise ValueError(f"outbox effect {kind!r} registered twice")
        self.effects[kind] = handler
        if on_sent is not None:
            self.recorders[kind] = on_sent
        if prepare is not None:
            self.preparers[kind] = prepare
        if label is not None:
            self.labels[kind] = label

    def tick(self, fn: Tick) -> None:
        self.ticks.append(fn)


async def run_due(
    svc: Services, worker: str, *, limit: int = 50, incident_id: str | None = None, concurrency: int = 16
) -> int:
    """Claim and fire what is due now. Safe from any number of processes at once.

    One incident's steps fire in due order; different incidents fire concurrently (bounded), so a burst of
    due pages is not serialised behind Slack's round trips."""
    due = await timers.claim(svc.db, worker, svc.clock.now(), limit, incident_id)
    batched: dict[str, list[Timer]] = defaultdict(list)
    by_incident: dict[str | None, list[Timer]] = defaultdict(list)
    for t in due:
        if t.kind in svc.dispatch.batch_timers:
            batched[t.kind].append(t)
        else:
            by_incident[t.incident_id].append(t)
    for kind, batch in batched.items():  # first: pages are the batched kind, and they go before the rest
        await _fire_batch(svc, kind, batch, worker)
    gate = asyncio.Semaphore(concurrency)

    async def fire_in_order(batch: list[Timer]) -> None:
        async with gate:
            for t in batch:
                await _fire(svc, t, worker)

    await asyncio.gather(*(fire_in_order(b) for b in by_incident.values()))
    return len(due)


async def _fire_batch(svc: Services, kind: str, batch: list[Timer], worker: str) -> None:
    """All of one claim's timers of a batched kind at once. Should the batch fail, each timer is fired on its
    own, as an unbatched kind is: the handlers are idempotent (a timer already done is left alone), so the
    part the batch did finish is not done twice."""
    stop = asyncio.Event()
    beat = asyncio.create_task(_keep_claims(svc, [t.id for t in batch], worker, stop))
    try:
        await svc.dispatch.batch_timers[kind](svc, batch, worker)
        return
    except Exception:
        log.exception("batch of %d %s timers failed; firing them one by one", len(batch), kind)
    finally:
        stop.set()
        await beat
    for t in batch:
        await _fire(svc, t, worker)


async def _fire(svc: Services, t: Timer, worker: str) -> None:
    handler = svc.dispatch.timers.get(t.kind)
    if handler is None:
        await timers.finish(svc.db, t.id, timers.TimerState.FAILED, error=f"no handler for {t.kind}")
        return
    stop = asyncio.Event()
    beat = asyncio.create_task(_keep_claims(svc, [t.id], worker, stop))
    try:
        await handler(svc, t, worker)
    except Exception as exc:
        log.exception("timer %s (%s %s) failed", t.id, t.kind, t.step)
        await timers.retry_later(svc.db, t.id, svc.clock.now() + timedelta(seconds=5), repr(exc))
    finally:
        stop.set()  # stopped, not cancelled (bot.claim.keep_claim says why)
        await beat


def _keep_claims(
    svc: Services, timer_ids: list[int], worker: str, stop: asyncio.Event
) -> Coroutine[Any, Any, None]:
    """Renew the claims while their handler runs (one statement for a batch); stop once none is ours."""

    async def renew() -> bool:
        return await timers.renew(svc.db, timer_ids, worker, svc.clock.now())

    what = f"timer {timer_ids[0]}" if len(timer_ids) == 1 else f"{len(timer_ids)} timers"
    return keep_claim(stop, RENEW_EVERY, renew, what)
