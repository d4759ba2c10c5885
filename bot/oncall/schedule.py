"""On-call schedules as pure data and maths: no I/O, no clock. `who_is_on(schedule, at)` decides.

A schedule has layers in priority order (the first listed is the top); at an instant the top layer that has
someone on shift wins, so a restricted daytime layer sits above a 24/7 one (follow-the-sun). Overrides beat
every layer while they last; of overlapping ones the newest (highest id) wins.

Shift boundaries: a rotation whose shift length is a whole number of days hands off at the same *wall-clock*
time in the layer's zone every time (09:00 Europe/Berlin stays 09:00 across DST, so such a shift is 23 or 25
hours long twice a year); any other length (e.g. 12h) is counted in absolute time from the start. A hand-off
time that does not exist on a spring-forward day is read with zoneinfo's fold=0 rule, i.e. an hour later.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HORIZON = timedelta(days=35)  # how far `until` and hand-off lists look ahead


@dataclass(frozen=True)
class Window:
    """A weekly restriction in the layer's zone: on `days` (weekday the window starts), start..end wall time.
    end <= start means the window runs past midnight into the next day."""

    days: frozenset[int]
    start: time
    end: time

    def span(self, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """The window opening on `day`, as UTC instants (wall times read with zoneinfo's fold=0 rule)."""
        end_day = day if self.start < self.end else day + timedelta(days=1)
        return (
            datetime.combine(day, self.start, tz).astimezone(UTC),
            datetime.combine(end_day, self.end, tz).astimezone(UTC),
        )

    def contains(self, at: datetime, tz: ZoneInfo) -> bool:
        d = at.astimezone(tz).date()
        for day in (d - timedelta(days=1), d):
            if day.weekday() in self.days:
                s, e = self.span(day, tz)
                if s <= at < e:
                    return True
        return False


@dataclass(frozen=True)
class Interval:
    """An explicit shift (from an iCal feed): [start, end) with the users on it."""

    start: datetime
    end: datetime
    users: tuple[str, ...]


@dataclass(frozen=True)
class Layer:
    name: str
    users: tuple[str, ...] = ()
    rotation: str = "always"  # always | daily | weekly | custom | feed
    length: timedelta = timedelta(days=7)
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)  # first hand-off (aware; local wall time in zone)
    zone: str = "UTC"
    restrictions: tuple[Window, ...] = ()
    per_shift: int = 1
    intervals: tuple[Interval, ...] = ()  # rotation == "feed"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def calendar_days(self) -> int | None:
        """Shift length in whole days (wall-clock hand-offs), or None for absolute-time shifts."""
        secs = self.length.total_seconds()
        return int(secs // 86400) if secs >= 86400 and secs % 86400 == 0 else None

    def boundary(self, k: int) -> datetime:
        """The k-th hand-off instant (k may be negative), in UTC."""
        local_start = self.start.astimezone(self.tz)
        days = self.calendar_days
        if days is not None:
            d = local_start.date() + timedelta(days=k * days)
            return datetime.combine(d, local_start.time().replace(tzinfo=None), self.tz).astimezone(UTC)
        return (self.start + k * self.length).astimezone(UTC)

    def shift_index(self, at: datetime) -> int:
        k = int((at - self.boundary(0)) / self.length)
        while self.boundary(k) > at:
            k -= 1
        while self.boundary(k + 1) <= at:
            k += 1
        return k

    def allowed(self, at: datetime) -> bool:
        if not self.restrictions:
            return True
        tz = self.tz
        return any(w.contains(at, tz) for w in self.restrictions)

    def on_shift(self, at: datetime) -> tuple[str, ...]:
        """Who this layer has on at `at` (empty: off, restricted out, or not started yet)."""
        if not self.allowed(at):
            return ()
        if self.rotation == "feed":
            out: dict[str, None] = {}
            for iv in self.intervals:
                if iv.start <= at < iv.end:
                    out.update(dict.fromkeys(iv.users))
            return tuple(out)
        if not self.users:
            return ()
        if self.rotation == "always":
            return self.users
        if at < self.boundary(0):
            return ()
        k = self.shift_index(at)
        n = min(self.per_shift, len(self.users))
        return tuple(dict.fromkeys(self.users[(k * n + i) % len(self.users)] for i in range(n)))

    def changes(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Instants in (start, end] where this layer's answer may change (unsorted, may repeat)."""
        if self.rotation == "feed":
            for iv in self.intervals:
                for x in (iv.start, iv.end):
                    if start < x <= end:
                        yield x
        elif self.rotation != "always" and self.users:
            k = max(self.shift_index(start), -1) if start >= self.boundary(0) else -1
            while True:
                b = self.boundary(k)
                if b > end:
                    break
                if b > start:
                    yield b
                k += 1
        if self.restrictions:
            tz = self.tz
            d = start.astimezone(tz).date() - timedelta(days=1)
            last = end.astimezone(tz).date()
            while d <= last:
                for w in self.restrictions:
                    if d.weekday() in w.days:
                        for x in w.span(d, tz):
                            if start < x <= end:
                                yield x
                d += timedelta(days=1)


@dataclass(frozen=True)
class Override:
    id: int
    user: str
    start: datetime
    end: datetime
    made_by: str = ""
    note: str = ""


@dataclass(frozen=True)
class Schedule:
    name: str
    level: int | None = None
    team: str | None = None
    title: str = ""
    layers: tuple[Layer, ...] = ()
    usergroup: str | None = None  # a Slack user group (S…) kept equal to whoever is on call

    @property
    def zone(self) -> str:
        return self.layers[0].zone if self.layers else "UTC"

    def members(self) -> set[str]:
        out = {u for layer in self.layers for u in layer.users}
        out.update(u for layer in self.layers for iv in layer.intervals for u in iv.users)
        return out


@dataclass(frozen=True)
class OnCall:
    users: tuple[str, ...]
    layer: str | None  # the layer's name, "override #n", or None when nobody is on
    reason: str
    until: datetime | None  # when this answer next changes (None: not within the horizon)
    override_id: int | None = None

    def same_shift(self, other: OnCall) -> bool:
        return self.users == other.users and self.layer == other.layer


@dataclass(frozen=True)
class Handoff:
    at: datetime
    before: OnCall
    after: OnCall


def _fmt(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _answer(schedule: Schedule, overrides: Iterable[Override], at: datetime) -> OnCall:
    live = [o for o in overrides if o.start <= at < o.end]
    if live:
        o = max(live, key=lambda o: o.id)
        by = f" by <@{o.made_by}>" if o.made_by else ""
        return OnCall((o.user,), f"override #{o.id}", f"override #{o.id}{by} until {_fmt(o.end)}", None, o.id)
    for layer in schedule.layers:
        users = layer.on_shift(at)
        if users:
            return OnCall(users, layer.name, f"layer '{layer.name}'", None)
    why = "no layer has anyone on shift" if schedule.layers else "no one is on this schedule"
    return OnCall((), None, why, None)


def change_points(
    schedule: Schedule, overrides: Iterable[Override], start: datetime, end: datetime
) -> list[datetime]:
    """Sorted instants in (start, end] where who is on may change."""
    points: set[datetime] = set()
    for layer in schedule.layers:
        points.update(layer.changes(start, end))
    for o in overrides:
        for x in (o.start, o.end):
            if start < x <= end:
                points.add(x)
    return sorted(points)


def who_is_on(
    schedule: Schedule,
    at: datetime,
    overrides: Iterable[Override] = (),
    *,
    horizon: timedelta = HORIZON,
) -> OnCall:
    """Who is on call at `at`, why (layer or override), and until when that holds."""
    ovs = list(overrides)
    now = _answer(schedule, ovs, at)
    # Look ahead in growing slices: a short rotation has thousands of boundaries in the horizon, and the
    # first change is usually within the first day.
    lo = at
    for step in (timedelta(days=1), timedelta(days=7), horizon):
        hi = min(at + horizon, lo + step)
        for x in change_points(schedule, ovs, lo, hi):
            nxt = _answer(schedule, ovs, x)
            if not nxt.same_shift(now):
                return OnCall(now.users, now.layer, now.reason, x, now.override_id)
        lo = hi
        if lo >= at + horizon:
            break
    return now


def handoffs(
    schedule: Schedule, start: datetime, end: datetime, overrides: Iterable[Override] = ()
) -> list[Handoff]:
    """Every change of who is on call in (start, end]."""
    ovs = list(overrides)
    out: list[Handoff] = []
    prev = _answer(schedule, ovs, start)
    for x in change_points(schedule, ovs, start, end):
        cur = _answer(schedule, ovs, x)
        if not cur.same_shift(prev):
            out.append(Handoff(x, prev, cur))
            prev = cur
    return out


@dataclass(frozen=True)
class Gap:
    start: datetime
    end: datetime | None  # None: still empty at the end of the window


def gaps(schedule: Schedule, start: datetime, end: datetime, overrides: Iterable[Override] = ()) -> list[Gap]:
    """Stretches in [start, end) when nobody is on call."""
    ovs = list(overrides)
    out: list[Gap] = []
    gap_start = start if not _answer(schedule, ovs, start).users else None
    for x in change_points(schedule, ovs, start, end):
        if x >= end:
            break
        empty = not _answer(schedule, ovs, x).users
        if empty and gap_start is None:
            gap_start = x
        elif not empty and gap_start is not None:
            out.append(Gap(gap_start, x))
            gap_start = None
    if gap_start is not None:
        out.append(Gap(gap_start, None))
    return out


def shifts_of(
    schedule: Schedule, user: str, start: datetime, end: datetime, overrides: Iterable[Override] = ()
) -> list[tuple[datetime, datetime | None, OnCall]]:
    """The stretches in [start, end) when `user` is on call: (from, to, answer)."""
    ovs = list(overrides)
    out: list[tuple[datetime, datetime | None, OnCall]] = []
    cur = _answer(schedule, ovs, start)
    since = start
    for x in [*change_points(schedule, ovs, start, end), None]:
        nxt = _answer(schedule, ovs, x) if x is not None else None
        if nxt is not None and nxt.same_shift(cur):
            continue
        if user in cur.users:
            out.append((since, x, cur))
        if nxt is None:
            break
        cur, since = nxt, x  # type: ignore[assignment]
    return out


@dataclass(frozen=True)
class ScheduleBook:
    """Every schedule, by name; lookups by level and by team."""

    schedules: dict[str, Schedule] = field(default_factory=dict)

    def for_level(self, level: int) -> Schedule | None:
        return next((s for s in self.schedules.values() if s.level == level), None)

    def for_team(self, team: str) -> Schedule | None:
        return next((s for s in self.schedules.values() if s.team == team), None)


def parse_day_list(raw: object) -> frozenset[int]:
    """['mon', 'tue'] or 'mon-fri' or 'mon,wed,sat-sun' -> weekday numbers (0 = Monday)."""
    items = raw if isinstance(raw, list) else str(raw).split(",")
    out: set[int] = set()
    for item in items:
        first, _, last = str(item).strip().lower().partition("-")
        a = DAYS.index(first.strip()[:3])
        b = DAYS.index(last.strip()[:3]) if last else a
        out.add(a)
        while a != b:
            a = (a + 1) % 7
            out.add(a)
    return frozenset(out)


def local_midnight(d: date, zone: str) -> datetime:
    return datetime.combine(d, time(0), ZoneInfo(zone)).astimezone(UTC)
