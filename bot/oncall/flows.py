"""On-call changes asked for in Slack, one intention each (take, give, swap a shift; an override made once
per form), and the reads `/incident oncall` shows. Each returns a typed result the handler renders; the
schedule maths and the writes are bot/oncall/service.py's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.context import Services
from bot.incident_store import claim_request_once
from bot.models import OncallOverride
from bot.oncall.schedule import OnCall, Schedule
from bot.oncall.service import Resolved, add_override, add_overrides, current_shift, resolve

TAKE_AT_MOST = timedelta(days=7)  # a shift with no known end is taken for this long


async def resolve_all(svc: Services, schedules: list[Schedule], since: datetime) -> list[Resolved]:
    """These schedules with their feed shifts and live overrides, read in one transaction."""
    async with svc.db.session() as s:
        return [await resolve(svc, s, sched, since) for sched in schedules]


@dataclass(frozen=True)
class Taken:
    """`/incident oncall take`: `row` None when the person was already on call (`was` is who held it)."""

    was: OnCall
    end: datetime
    row: OncallOverride | None


async def take_shift(svc: Services, schedule: Schedule, user: str, now: datetime) -> Taken:
    """`user` takes the shift running now, until it would have ended (OncallError when refused)."""
    [r] = await resolve_all(svc, [schedule], now)
    oc = r.at(now)
    end = oc.until or now + TAKE_AT_MOST
    if user in oc.users:
        return Taken(oc, end, None)
    return Taken(oc, end, await add_override(svc, schedule, user, now, end, user, kind="take"))


@dataclass(frozen=True)
class Given:
    row: OncallOverride
    end: datetime


async def give_shift(svc: Services, schedule: Schedule, giver: str, to: str, now: datetime) -> Given:
    """ "Take my shift": `giver`'s current or next shift goes to `to` (OncallError when there is none)."""
    start, end = await current_shift(svc, schedule, giver, now)
    return Given(await add_override(svc, schedule, to, max(start, now), end, giver, kind="take"), end)


@dataclass(frozen=True)
class Swapped:
    mine: tuple[datetime, datetime]
    theirs: tuple[datetime, datetime]
    covers_mine: OncallOverride  # `other` covering `user`'s shift
    covers_theirs: OncallOverride


async def swap_shifts(svc: Services, schedule: Schedule, user: str, other: str, now: datetime) -> Swapped:
    """`user`'s next shift and `other`'s next shift change hands: two overrides, both or neither."""
    mine = await current_shift(svc, schedule, user, now)
    theirs = await current_shift(svc, schedule, other, now)
    a, b = await add_overrides(
        svc,
        schedule,
        [(other, max(mine[0], now), mine[1]), (user, max(theirs[0], now), theirs[1])],
        user,
        kind="swap",
    )
    return Swapped(mine, theirs, a, b)


async def override_once(
    svc: Services,
    schedule: Schedule,
    user: str,
    start: datetime,
    end: datetime,
    actor: str,
    *,
    request_key: str | None = None,
) -> OncallOverride | None:
    """An override; with `request_key` (a form's view id) made once however often it is submitted: None
    for a repeat (a double submit, Slack's retry)."""
    if request_key and not await claim_request_once(svc.db, request_key, svc.clock.now()):
        return None
    return await add_override(svc, schedule, user, start, end, actor)
