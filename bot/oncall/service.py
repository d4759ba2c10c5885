"""On-call resolution against the database: overrides and iCal feed copies in SQL, schedules from YAML.

`oncall_users(svc, level, at)` is the one function pages ask "who is L<level> right now?"."""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import Services
from bot.models import OncallFeed, OncallOverride
from bot.oncall.config import FeedSpec, OncallConfig, load_oncall
from bot.oncall.schedule import Interval, OnCall, Override, Schedule, shifts_of, who_is_on

log = logging.getLogger("incident_bot.oncall")

FEED_WINDOW = (timedelta(days=7), timedelta(days=60))  # a feed's events are expanded this far back/ahead
MAX_FEED_BYTES = 2_000_000
_SLACK_ID = re.compile(r"\b([UW][A-Z0-9]{5,})\b")


class OncallError(ValueError):
    """A refused or impossible schedule change; the message is for the person."""


def config_of(svc: Services) -> OncallConfig:
    cached: OncallConfig | None = getattr(svc, "_oncall", None)
    if cached is None:
        cached = load_oncall(svc.settings.schedules_file, svc.playbook.roster)
        svc._oncall = cached  # type: ignore[attr-defined]
    return cached


def find_schedule(svc: Services, ref: str | int | None) -> Schedule | None:
    """A level (1, "L1"), a team name or a schedule name."""
    book = config_of(svc).book
    text = str(ref or "").strip()
    lvl = text.upper().removeprefix("L")
    if lvl.isdigit():
        return book.for_level(int(lvl))
    return book.schedules.get(text) or book.for_team(text)


def level_schedules(svc: Services) -> list[Schedule]:
    book = config_of(svc).book
    return sorted((s for s in book.schedules.values() if s.level), key=lambda s: s.level or 0)


# -- iCal feeds -----------------------------------------------------------------------------------------


def feed_key(spec: FeedSpec) -> str:
    return f"{spec.schedule}/{spec.layer}"


def parse_feed(body: str, spec: FeedSpec, zone: str, around: datetime) -> tuple[Interval, ...]:
    """Expand a feed's events (recurrences included) near `around` into shifts. Raises on a broken feed."""
    cal = icalendar.Calendar.from_ical(body)
    tz = ZoneInfo(zone)

    def instant(v: Any) -> datetime:
        if isinstance(v, datetime):
            return (v if v.tzinfo else v.replace(tzinfo=tz)).astimezone(UTC)
        if isinstance(v, date):  # an all-day event: midnight in the layer's zone
            return datetime.combine(v, time(0), tz).astimezone(UTC)
        raise ValueError(f"bad event time {v!r}")

    out: list[Interval] = []
    lo, hi = around - FEED_WINDOW[0], around + FEED_WINDOW[1]
    for ev in recurring_ical_events.of(cal).between(lo, hi):
        start = instant(ev.decoded("DTSTART"))
        end = instant(ev.decoded("DTEND")) if ev.get("DTEND") is not None else start + timedelta(hours=1)
        text = str(ev.get("SUMMARY", "")).strip()
        users = [spec.map[text]] if text in spec.map else _SLACK_ID.findall(text)
        for att in ev.get("ATTENDEE", []) if isinstance(ev.get("ATTENDEE"), list) else [ev.get("ATTENDEE")]:
            if att is not None:
                addr = str(att).removeprefix("mailto:").removeprefix("MAILTO:")
                if addr in spec.map:
                    users.append(spec.map[addr])
        if users and end > start:
            out.append(Interval(start, end, tuple(dict.fromkeys(users))))
    return tuple(sorted(out, key=lambda iv: (iv.start, iv.end)))


async def _feed_intervals(svc: Services, s: AsyncSession, schedule: Schedule) -> Schedule:
    specs = {sp.layer: sp for sp in config_of(svc).feeds if sp.schedule == schedule.name}
    if not specs:
        return schedule
    cache: dict[tuple[str, datetime | None], tuple[Interval, ...]] = svc.__dict__.setdefault(
        "_oncall_feed_cache", {}
    )
    layers = []
    for layer in schedule.layers:
        spec = specs.get(layer.name)
        if spec is None or layer.rotation != "feed":
            layers.append(layer)
            continue
        row = await s.get(OncallFeed, feed_key(spec))
        intervals: tuple[Interval, ...] = ()
        if row is not None and row.body and row.fetched_at is not None:
            key = (feed_key(spec), row.fetched_at)
            if key not in cache:
                try:
                    cache[key] = parse_feed(row.body, spec, layer.zone, row.fetched_at)
                except Exception:  # a stored copy is only stored after it parsed; be safe anyway
                    log.exception("stored feed %s no longer parses", key[0])
                    cache[key] = ()
            intervals = cache[key]
        layers.append(dataclasses.replace(layer, intervals=intervals))
    return dataclasses.replace(schedule, layers=tuple(layers))


async def refresh_feed(svc: Services, spec: FeedSpec, now: datetime) -> str | None:
    """Fetch one feed; keep the last good copy when the fetch or the parse fails. Returns the error."""
    sched = config_of(svc).book.schedules.get(spec.schedule)
    zone = next((ly.zone for ly in sched.layers if ly.name == spec.layer), "UTC") if sched else "UTC"
    error: str | None = None
    body: str | None = None
    try:
        async with svc.http.stream("GET", spec.url, timeout=10) as resp:
            if resp.status_code != 200:
                error = f"HTTP {resp.status_code}"
            else:
                chunks, size = [], 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_FEED_BYTES:  # stop reading: a runaway feed must not fill memory
                        error = f"feed larger than {MAX_FEED_BYTES} bytes"
                        break
                    chunks.append(chunk)
                if error is None:
                    body = b"".join(chunks).decode(resp.encoding or "utf-8", errors="replace")
                    parse_feed(body, spec, zone, now)  # only a copy that parses replaces the last good one
    except Exception as exc:
        error, body = f"{type(exc).__name__}: {str(exc)[:200]}", None
    async with svc.db.session() as s:
        row = await s.get(OncallFeed, feed_key(spec))
        if row is None:
            row = OncallFeed(key=feed_key(spec), url=spec.url)
            s.add(row)
        row.url, row.attempted_at, row.last_error = spec.url, now, error
        if error is None and body is not None:
            row.body, row.fetched_at = body, now
    if error:
        log.warning("iCal feed %s failed (%s); keeping the last good copy", feed_key(spec), error)
    return error


async def refresh_due_feeds(svc: Services, now: datetime) -> None:
    for spec in config_of(svc).feeds:
        async with svc.db.session() as s:
            row = await s.get(OncallFeed, feed_key(spec))
            last = row.attempted_at if row is not None else None
        if last is None or now - last >= spec.refresh or now < last:
            await refresh_feed(svc, spec, now)


# -- overrides ------------------------------------------------------------------------------------------


def _as_override(row: OncallOverride) -> Override:
    return Override(row.id, row.user_id, row.start_at, row.end_at, row.made_by, row.kind)


async def overrides_of(
    s: AsyncSession, schedule: str, *, ending_after: datetime | None = None
) -> list[OncallOverride]:
    stmt = select(OncallOverride).where(
        OncallOverride.schedule == schedule, OncallOverride.removed_at.is_(None)
    )
    if ending_after is not None:
        stmt = stmt.where(OncallOverride.end_at > ending_after)
    return list((await s.execute(stmt.order_by(OncallOverride.start_at, OncallOverride.id))).scalars())


@dataclass(frozen=True)
class Resolved:
    """A schedule with its feed shifts filled in and its live overrides, ready for the pure maths."""

    schedule: Schedule
    overrides: tuple[Override, ...]

    def at(self, when: datetime) -> OnCall:
        return who_is_on(self.schedule, when, self.overrides)


async def resolve(svc: Services, s: AsyncSession, schedule: Schedule, since: datetime) -> Resolved:
    sched = await _feed_intervals(svc, s, schedule)
    rows = await overrides_of(s, schedule.name, ending_after=since - timedelta(days=1))
    return Resolved(sched, tuple(_as_override(r) for r in rows))


# -- one-shot reads with their own transaction, for adapters (no sessions in handlers) ------------------------


async def resolve_once(svc: Services, schedule: Schedule, since: datetime) -> Resolved:
    async with svc.db.session() as s:
        return await resolve(svc, s, schedule, since)


async def upcoming_overrides(
    svc: Services, names: list[str], now: datetime, *, limit: int
) -> list[OncallOverride]:
    """Live overrides of these schedules that have not ended yet, soonest first."""
    stmt = (
        select(OncallOverride)
        .where(
            OncallOverride.schedule.in_(names),
            OncallOverride.removed_at.is_(None),
            OncallOverride.end_at > now,
        )
        .order_by(OncallOverride.start_at, OncallOverride.id)
        .limit(limit)
    )
    async with svc.db.session() as s:
        return list((await s.execute(stmt)).scalars())


async def oncall_users(svc: Services, level: int, at: datetime, s: AsyncSession | None = None) -> OnCall:
    """Who is on call for ladder level `level` at `at`, and why (layer or override). Pass `s` to read in the
    caller's transaction (SQLite has one writer: a second session would wait on the caller's lock)."""
    schedule = config_of(svc).book.for_level(level)
    if schedule is None:
        return OnCall((), None, f"no schedule or roster entry for L{level}", None)
    if s is not None:
        return (await resolve(svc, s, schedule, at)).at(at)
    async with svc.db.session() as own:
        r = await resolve(svc, own, schedule, at)
    return r.at(at)


@dataclass(frozen=True)
class PageTarget:
    level: int  # the level actually paged (a later one when the asked level has nobody on shift)
    oncall: OnCall
    skipped: tuple[tuple[int, str], ...]  # (level, why) for each level fallen through

    def record(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "layer": self.oncall.layer,
            "why": self.oncall.reason,
            "until": self.oncall.until.isoformat() if self.oncall.until else None,
            "skipped": [{"level": lv, "why": why} for lv, why in self.skipped],
        }


async def page_target(svc: Services, level: int, at: datetime, s: AsyncSession | None = None) -> PageTarget:
    """Whom a page for `level` goes to at `at`: a level with nobody on shift falls through to the next."""
    skipped: list[tuple[int, str]] = []
    for lv in range(level, 6):
        oc = await oncall_users(svc, lv, at, s)
        if oc.users:
            return PageTarget(lv, oc, tuple(skipped))
        if config_of(svc).book.for_level(lv) is not None or lv == level:
            skipped.append((lv, oc.reason))
    return PageTarget(level, OnCall((), None, "nobody on call at any level", None), tuple(skipped))


async def war_room_oncall(svc: Services, team: str | None, at: datetime) -> list[str]:
    """Who a new war room invites besides the declarer: the primary on call now (or whoever an empty L1
    falls through to) and the routed team's on-call (a roster team: all of it, as before schedules)."""
    users = list((await page_target(svc, 1, at)).oncall.users)
    sched = config_of(svc).book.for_team(team) if team else None
    if sched is not None:
        async with svc.db.session() as s:
            users += (await resolve(svc, s, sched, at)).at(at).users
    return users


def oncall_text(record: dict[str, Any]) -> str:
    """The timeline's words for a PageTarget.record()."""
    parts = [f"L{x['level']} has nobody on call ({x['why']})" for x in record.get("skipped") or []]
    if record.get("skipped") and record.get("layer"):
        parts.append(f"fell through to L{record['level']}")
    if record.get("layer"):
        until = record.get("until")
        when = f" until {datetime.fromisoformat(until):%Y-%m-%d %H:%M} UTC" if until else ""
        parts.append(f"on call via {record.get('why')}{when}")
    return "; ".join(parts)


def admins(svc: Services) -> set[str]:
    return {u.strip() for u in svc.settings.oncall_admins.split(",") if u.strip()}


async def may_change(svc: Services, s: AsyncSession, schedule: Schedule, actor: str, at: datetime) -> bool:
    """The person on shift, the schedule's members, or admins may change a schedule."""
    if actor in admins(svc) or actor in schedule.members():
        return True
    return actor in (await resolve(svc, s, schedule, at)).at(at).users


async def add_override(
    svc: Services,
    schedule: Schedule,
    user: str,
    start: datetime,
    end: datetime,
    actor: str,
    *,
    kind: str = "override",
    note: str = "",
) -> OncallOverride:
    [row] = await add_overrides(svc, schedule, [(user, start, end)], actor, kind=kind, note=note)
    return row


async def add_overrides(
    svc: Services,
    schedule: Schedule,
    covers: list[tuple[str, datetime, datetime]],
    actor: str,
    *,
    kind: str = "override",
    note: str = "",
) -> list[OncallOverride]:
    """Write overrides in one transaction (a swap is two; both or neither), after the permission check."""
    now = svc.clock.now()
    for _user, start, end in covers:
        if end <= start:
            raise OncallError("The override must end after it starts.")
        if end <= now:
            raise OncallError("That override would already be over.")
        if end - start > timedelta(days=90):
            raise OncallError("Keep an override under 90 days; change the schedule file for longer.")
    async with svc.db.session() as s:
        if not await may_change(svc, s, schedule, actor, now):
            raise OncallError(
                f"Only the person on call, members of {schedule.title or schedule.name}, or on-call admins "
                "can change this schedule."
            )
        rows = [
            OncallOverride(
                schedule=schedule.name,
                user_id=user,
                start_at=start,
                end_at=end,
                kind=kind,
                note=note[:500],
                made_by=actor,
                created_at=now,
            )
            for user, start, end in covers
        ]
        s.add_all(rows)
        await s.flush()
    return rows


async def remove_override(svc: Services, override_id: int, actor: str) -> OncallOverride:
    now = svc.clock.now()
    async with svc.db.session() as s:
        row = await s.get(OncallOverride, override_id)
        if row is None or row.removed_at is not None:
            raise OncallError(f"There is no override #{override_id} (see `/incident oncall overrides`).")
        schedule = config_of(svc).book.schedules.get(row.schedule)
        allowed = row.made_by == actor or row.user_id == actor
        if not allowed and schedule is not None:
            allowed = await may_change(svc, s, schedule, actor, now)
        if not allowed and actor not in admins(svc):
            raise OncallError(
                "Only whoever made the override, the person covering, members or admins can remove it."
            )
        row.removed_at, row.removed_by = now, actor
    return row


async def current_shift(
    svc: Services, schedule: Schedule, user: str, at: datetime
) -> tuple[datetime, datetime]:
    """The next stretch (current or upcoming, within 35 days) when `user` is on call for the schedule."""
    async with svc.db.session() as s:
        r = await resolve(svc, s, schedule, at)
    for start, end, _oc in shifts_of(r.schedule, user, at, at + timedelta(days=35), r.overrides):
        return start, end or at + timedelta(days=35)
    raise OncallError(f"<@{user}> has no shift on {schedule.title or schedule.name} in the next 35 days.")


# -- App Home: who is on now, and the viewer's own shifts ------------------------------------------------


@dataclass(frozen=True)
class LevelNow:
    """One level's answer right now (`oncall.until`: when it next changes)."""

    schedule: Schedule
    oncall: OnCall


@dataclass(frozen=True)
class Shift:
    """A stretch when someone is on call: `start` is the asked-at instant for a shift already running;
    `end` None means beyond the look-ahead (35 days)."""

    schedule: Schedule
    start: datetime
    end: datetime | None
    oncall: OnCall


async def home_oncall(
    svc: Services, user: str, at: datetime, *, within: timedelta = timedelta(days=7)
) -> tuple[list[LevelNow], list[Shift]]:
    """Who holds each level at `at` (overrides and feeds included), and `user`'s shifts on any schedule
    that start before `at + within`, soonest first."""
    levels: list[LevelNow] = []
    mine: list[Shift] = []
    async with svc.db.session() as s:
        for sched in config_of(svc).book.schedules.values():
            r = await resolve(svc, s, sched, at)
            if sched.level:
                levels.append(LevelNow(sched, r.at(at)))
            for start, end, oc in shifts_of(r.schedule, user, at, at + timedelta(days=35), r.overrides):
                if start < at + within:
                    mine.append(Shift(sched, start, end, oc))
    levels.sort(key=lambda x: x.schedule.level or 0)
    mine.sort(key=lambda x: (x.start, x.schedule.level or 99, x.schedule.name))
    return levels, mine
