"""The worker's on-call pass: refresh iCal feeds, plan hand-off notices as durable timers, warn about gaps,
keep each schedule's Slack user group (`usergroup:` in schedules.yaml) equal to whoever is on call.

Exactly once across restarts and workers: a hand-off (or gap) is claimed by a `processed_requests` key in the
same transaction that writes its timer (or its outbox row), so a second worker or a restarted one finds the
key taken. The notices themselves are outbox rows with dedupe keys, written with the timer's completion."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import outbox
from bot.context import Services
from bot.incident_store import claim_request
from bot.models import OutboxMessage, Timer
from bot.oncall import service
from bot.oncall.schedule import Schedule, gaps, handoffs
from bot.ports import ChatError
from bot.states import OutboxState, TimerState

log = logging.getLogger("incident_bot.oncall")

PLAN_AHEAD = timedelta(hours=2)  # hand-offs this close get a timer (a pass runs every minute)
GAP_AHEAD = timedelta(days=7)
LOOK_BACK = timedelta(days=35)
KIND = "oncall_handoff"
USERGROUP_KIND = "usergroup_sync"  # the outbox effect that brings a user group in line with the schedule
USERGROUP_RETRY = timedelta(minutes=10)  # a sync Slack refused for good is tried again this long after


def _step(schedule: str, at: datetime) -> str:
    return "ho-" + hashlib.sha256(f"{schedule}|{at.isoformat()}".encode()).hexdigest()[:24]


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else "further than 35 days out"


def _label(s: Schedule) -> str:
    return f"L{s.level} {s.title}" if s.level else (s.team or s.name)


async def oncall_tick(svc: Services) -> None:
    now = svc.clock.now()
    last: datetime | None = getattr(svc, "_oncall_tick_at", None)
    if last is not None and timedelta(0) <= now - last < timedelta(
        seconds=svc.settings.oncall_check_interval
    ):
        return
    svc._oncall_tick_at = now  # type: ignore[attr-defined]
    await service.refresh_due_feeds(svc, now)
    await plan_handoffs(svc, now)
    await warn_gaps(svc, now)
    if await sync_usergroups(svc, now):
        await outbox.deliver(svc)


async def plan_handoffs(svc: Services, now: datetime) -> int:
    planned = 0
    for sched in service.config_of(svc).book.schedules.values():
        async with svc.db.session() as s:
            r = await service.resolve(svc, s, sched, now)
        for h in handoffs(r.schedule, now - timedelta(minutes=5), now + PLAN_AHEAD, r.overrides):
            async with svc.db.session() as s:
                if not await claim_request(s, f"oncall-handoff:{sched.name}:{h.at.isoformat()}", now):
                    continue
                s.add(
                    Timer(
                        incident_id=None,
                        kind=KIND,
                        step=_step(sched.name, h.at),
                        due_at=h.at,
                        plan_version=0,
                        data={"schedule": sched.name, "at": h.at.isoformat()},
                    )
                )
            planned += 1
    return planned


async def fire_handoff(svc: Services, timer: Timer, worker: str) -> None:
    """Recompute the hand-off when it is due (an override may have cancelled it), then DM both people and
    post a line in ONCALL_CHANNEL, as outbox rows written with the timer's completion."""
    name = str(timer.data.get("schedule", ""))
    at = datetime.fromisoformat(str(timer.data.get("at")))
    sched = service.config_of(svc).book.schedules.get(name)
    async with svc.db.session() as s:
        t = await s.get(Timer, timer.id)
        if t is None or t.state != TimerState.CLAIMED or t.claimed_by != worker:
            return
        if sched is None:
            t.state, t.last_error = TimerState.DROPPED, "schedule no longer exists"
            return
        r = await service.resolve(svc, s, sched, at - timedelta(days=1))
    before, after = r.at(at - timedelta(microseconds=1)), r.at(at)
    if before.same_shift(after) or set(before.users) == set(after.users):
        async with svc.db.session() as s:
            t = await s.get(Timer, timer.id)
            if t is not None:
                t.state, t.last_error, t.fired_at = (
                    TimerState.DROPPED,
                    "no longer a hand-off",
                    svc.clock.now(),
                )
        return
    incoming = [u for u in after.users if u not in before.users]
    outgoing = [u for u in before.users if u not in after.users]
    label = _label(sched)
    mention = lambda users: ", ".join(f"<@{u}>" for u in users) or "nobody"  # noqa: E731
    now = svc.clock.now()
    key = f"handoff:{name}:{at.isoformat()}"
    async with svc.db.session() as s:
        t = await s.get(Timer, timer.id)
        if t is None or t.state != TimerState.CLAIMED or t.claimed_by != worker:
            return
        team = sched.level or sched.team or name
        for u in incoming:
            text = (
                f"📟 You are now on call for {label} (via {after.reason}) until {_when(after.until)}. "
                f"Taking over from {mention(outgoing)}. `/incident oncall {team}`"
            )
            await outbox.enqueue_dm(s, u, {"text": text}, at=now, dedupe_key=f"{key}:in:{u}")
        for u in outgoing:
            text = f"👋 Your on-call shift for {label} has ended; {mention(incoming)} took over."
            await outbox.enqueue_dm(s, u, {"text": text}, at=now, dedupe_key=f"{key}:out:{u}")
        if svc.settings.oncall_channel:
            await outbox.enqueue(
                s,
                "post",
                channel=svc.settings.oncall_channel,
                at=now,
                payload={
                    "text": f"🔄 {label}: {mention(after.users)} on call until {_when(after.until)} "
                    f"(was {mention(before.users)})"
                },
                dedupe_key=f"{key}:channel",
            )
        if sched.usergroup and after.users:
            await _enqueue_sync(s, sched, at.isoformat(), after.users, now)
        t.state, t.fired_at = TimerState.DONE, now
    await outbox.deliver(svc)


async def _claim_once(s: AsyncSession, key: str, now: datetime) -> bool:
    """Claim `key` for an outbox row keyed the same. Request ids are pruned after a week and outbox rows after
    a month (bot/retention.py): a gap or a stretch running longer than a week finds its row still there."""
    taken = await s.execute(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key))
    if taken.first() is not None:
        return False
    return await claim_request(s, key, now)


async def warn_gaps(svc: Services, now: datetime) -> int:
    """Each stretch with nobody on call in the next 7 days is announced once in ONCALL_CHANNEL."""
    warned = 0
    for sched in service.level_schedules(svc):
        # Look back too, so a gap already running is keyed by when it really began, not by this pass's "now"
        # (which would warn again every minute); one older than the look-back is keyed "open".
        since = now - LOOK_BACK
        async with svc.db.session() as s:
            r = await service.resolve(svc, s, sched, since)
        for g in gaps(r.schedule, since, now + GAP_AHEAD, r.overrides):
            if g.end is not None and g.end <= now:
                continue
            began = "open" if g.start == since else g.start.isoformat()
            text = (
                f"⚠️ {_label(sched)} has nobody on call from {_when(max(g.start, now))} "
                f"to {_when(g.end) if g.end else 'beyond the next 7 days'}: pages will fall through to the next "
                f"level. Cover it with `/incident oncall override @user {sched.level} <start> <duration>`."
            )
            async with svc.db.session() as s:
                if not await _claim_once(s, f"oncall-gap:{sched.name}:{began}", now):
                    continue
                if svc.settings.oncall_channel:
                    await outbox.enqueue(
                        s,
                        "post",
                        channel=svc.settings.oncall_channel,
                        at=now,
                        payload={"text": text},
                        dedupe_key=f"oncall-gap:{sched.name}:{began}",
                    )
                else:
                    log.warning("%s", text)
            warned += 1
    if warned and svc.settings.oncall_channel:
        await outbox.deliver(svc)
    return warned


# -- user groups: `@oncall-primary` always means whoever is on call ----------------------------------------


def _sync_key(group: str, since: str, users: Sequence[str]) -> str:
    """One sync per stretch of the same people: the stretch's start and who is on it (so a roster edited
    between restarts, with no hand-off, still gets its own sync)."""
    digest = hashlib.sha256(",".join(sorted(users)).encode()).hexdigest()[:12]
    return f"usergroup:{group}:{since}:{digest}"


async def _enqueue_sync(
    s: AsyncSession, sched: Schedule, since: str, users: Sequence[str], now: datetime
) -> bool:
    """Claim the stretch's key and write its outbox row in the caller's transaction (once, across
    restarts: the hand-off timer and the tick compute the same key)."""
    assert sched.usergroup
    key = _sync_key(sched.usergroup, since, users)
    if not await _claim_once(s, key, now):
        return False
    await outbox.enqueue(
        s,
        USERGROUP_KIND,
        channel=f"usergroup:{sched.usergroup}",  # one group's syncs go out in order
        at=now,
        payload={"schedule": sched.name, "usergroup": sched.usergroup},
        dedupe_key=key,
    )
    return True


async def sync_usergroups(svc: Services, now: datetime) -> int:
    """For each schedule with a user group: make sure the stretch running now has its sync row, and give
    one that Slack refused for good another try every USERGROUP_RETRY. Returns rows written or requeued."""
    touched = 0
    for sched in service.config_of(svc).book.schedules.values():
        if not sched.usergroup:
            continue
        since = now - LOOK_BACK
        async with svc.db.session() as s:
            r = await service.resolve(svc, s, sched, since)
        oc = r.at(now)
        if not oc.users:
            continue  # Slack cannot empty a group; the gap warning covers an empty level
        recent = handoffs(r.schedule, since, now, r.overrides)
        began = recent[-1].at.isoformat() if recent else "open"
        key = _sync_key(sched.usergroup, began, oc.users)
        async with svc.db.session() as s:
            if await _enqueue_sync(s, sched, began, oc.users, now):
                touched += 1
                continue
            row = (
                await s.execute(select(OutboxMessage).where(OutboxMessage.dedupe_key == key))
            ).scalar_one_or_none()
            if (
                row is not None
                and row.state == OutboxState.FAILED
                and row.next_attempt_at <= now - USERGROUP_RETRY
                and await outbox.requeue(s, key, now)
            ):
                log.info(
                    "retrying the %s user group sync (%s) after: %s",
                    _label(sched),
                    sched.usergroup,
                    row.last_error,
                )
                touched += 1
    return touched


async def usergroup_effect(svc: Services, row: OutboxMessage) -> dict[str, Any] | None:
    """The `usergroup_sync` effect: read the group (usergroups.users.list) and replace its members
    (usergroups.users.update) only when they differ from who is on call *when it is sent* (a row delayed
    past another hand-off still sets the right people)."""
    name, group = str(row.payload.get("schedule")), str(row.payload.get("usergroup"))
    sched = service.config_of(svc).book.schedules.get(name)
    if sched is None or sched.usergroup != group:
        return {"skipped": "the schedule no longer syncs this group"}
    now = svc.clock.now()
    oc = (await service.resolve_once(svc, sched, now)).at(now)
    if not oc.users:
        log.warning("%s has nobody on call: user group %s keeps its members", _label(sched), group)
        return {"skipped": "nobody on call"}
    try:
        current = await svc.chat.usergroup_members(group)
        if set(current) == set(oc.users):
            return {"unchanged": sorted(current)}
        await svc.chat.set_usergroup_members(group, list(oc.users))
    except ChatError as exc:
        then = (
            "retrying with back-off"
            if exc.transient
            else f"retrying every {USERGROUP_RETRY.seconds // 60} min; check `usergroup: {group}` in "
            "schedules.yaml and that the app has the usergroups:read and usergroups:write scopes"
        )
        log.warning(
            "user group sync for %s (%s) failed: %s answered %s; %s",
            _label(sched),
            group,
            exc.method,
            exc.error,
            then,
        )
        raise
    log.info(
        "user group %s for %s: %s (was %s)", group, _label(sched), ", ".join(oc.users), ", ".join(current)
    )
    return {"updated": list(oc.users), "was": current}
