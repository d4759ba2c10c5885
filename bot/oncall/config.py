"""Loading schedules from YAML (`playbook_content/schedules.yaml`, SCHEDULES_FILE) into bot.oncall.schedule.

A level or team with no schedule keeps the fixed users of the roster (`ONCALL_FILE`): one always-on layer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot import timefmt
from bot.oncall.schedule import Layer, Schedule, ScheduleBook, Window, parse_day_list
from bot.playbook import PlaybookError, Roster, parse_duration

ROTATIONS = {"always": None, "daily": timedelta(days=1), "weekly": timedelta(days=7), "custom": None}
DEFAULT_START = date(2026, 1, 5)  # a Monday
_USERGROUP = re.compile(r"^S[A-Z0-9]{2,}$")


@dataclass(frozen=True)
class FeedSpec:
    """An external iCal feed feeding one layer: who an event names is read from its SUMMARY (a Slack id,
    or a key of `map`)."""

    schedule: str
    layer: str
    url: str
    refresh: timedelta = timedelta(minutes=15)
    map: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OncallConfig:
    book: ScheduleBook
    feeds: tuple[FeedSpec, ...] = ()


def _time(raw: Any, where: str) -> time:
    if isinstance(raw, int):  # YAML reads 09:00 unquoted as sexagesimal 540
        return time(raw // 60 % 24, raw % 60)
    try:
        return time.fromisoformat(str(raw))
    except ValueError:
        raise PlaybookError(f"{where}: bad time {raw!r}: use HH:MM") from None


def _zone(raw: Any, where: str) -> str:
    if timefmt.zone(str(raw)) is None:  # the one zone lookup
        raise PlaybookError(f"{where}: unknown time zone {raw!r} (use an IANA name like Europe/Berlin)")
    return str(raw)


def _layer(raw: dict[str, Any], zone: str, where: str, sched: str, feeds: list[FeedSpec]) -> Layer:
    name = str(raw.get("name") or where)
    zone = _zone(raw.get("zone", zone), where)
    tz = ZoneInfo(zone)
    users = tuple(str(u) for u in raw.get("users") or [])
    restrictions = []
    for r in raw.get("restrictions") or []:
        try:
            days = parse_day_list(r.get("days", "mon-sun"))
        except ValueError:
            raise PlaybookError(f"{where}: bad days {r.get('days')!r}: use mon-fri or [mon, tue]") from None
        restrictions.append(
            Window(days, _time(r.get("from", "00:00"), where), _time(r.get("to", "00:00"), where))
        )
    if "ical" in raw:
        feeds.append(
            FeedSpec(
                sched,
                name,
                str(raw["ical"]),
                parse_duration(raw.get("refresh", "15m")) or timedelta(minutes=15),
                {str(k): str(v) for k, v in (raw.get("map") or {}).items()},
            )
        )
        return Layer(name, (), "feed", zone=zone, restrictions=tuple(restrictions))
    rotation = str(raw.get("rotation", "always" if "handoff" not in raw else "weekly")).lower()
    if rotation not in ROTATIONS:
        raise PlaybookError(f"{where}: rotation {rotation!r}: use daily, weekly, custom or always")
    length = ROTATIONS[rotation] or parse_duration(raw.get("length")) or timedelta(days=7)
    if rotation == "custom" and "length" not in raw:
        raise PlaybookError(f"{where}: a custom rotation needs `length` (e.g. 12h, 3d)")
    if length < timedelta(minutes=1):
        raise PlaybookError(f"{where}: shift length must be at least a minute")
    start_raw = raw.get("start", DEFAULT_START)
    if isinstance(start_raw, str) and "T" in start_raw:
        try:
            start_raw = datetime.fromisoformat(start_raw)
        except ValueError:
            raise PlaybookError(
                f"{where}: bad start {start_raw!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM"
            ) from None
    if isinstance(start_raw, datetime):
        start = start_raw if start_raw.tzinfo else start_raw.replace(tzinfo=tz)
    else:
        try:
            d = start_raw if isinstance(start_raw, date) else date.fromisoformat(str(start_raw))
        except ValueError:
            raise PlaybookError(f"{where}: bad start {start_raw!r}: use YYYY-MM-DD") from None
        start = datetime.combine(d, _time(raw.get("handoff", "09:00"), where), tz)
    per_shift = int(raw.get("per_shift", 1))
    if per_shift < 1:
        raise PlaybookError(f"{where}: per_shift must be at least 1")
    return Layer(name, users, rotation, length, start.astimezone(UTC), zone, tuple(restrictions), per_shift)


def load_oncall(path: Path | None, roster: Roster) -> OncallConfig:
    """Schedules from `path` (missing file: none), then roster levels/teams that have no schedule."""
    data: dict[str, Any] = {}
    if path is not None and Path(path).exists():
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise PlaybookError(f"{path}: expected a mapping at the top")
        data = loaded
    default_zone = _zone(data.get("zone", "UTC"), str(path))
    schedules: dict[str, Schedule] = {}
    feeds: list[FeedSpec] = []
    for name, raw in (data.get("schedules") or {}).items():
        where = f"{path}: schedule {name}"
        if not isinstance(raw, dict):
            raise PlaybookError(f"{where}: expected a mapping")
        level = int(raw["level"]) if raw.get("level") is not None else None
        if level is not None and not 1 <= level <= 5:
            raise PlaybookError(f"{where}: level {level} outside 1–5")
        zone = _zone(raw.get("zone", default_zone), where)
        layers = tuple(
            _layer(lr, zone, f"{where} layer {i + 1}", str(name), feeds)
            for i, lr in enumerate(raw.get("layers") or [])
        )
        title = str(raw.get("title") or (roster.level_name(level) if level else name))
        team = str(raw["team"]) if raw.get("team") else None
        group = str(raw["usergroup"]).strip() if raw.get("usergroup") else None
        if group is not None and not _USERGROUP.match(group):
            raise PlaybookError(
                f"{where}: usergroup {group!r} is not a Slack user group id (S… — the id, not the @handle)"
            )
        schedules[str(name)] = Schedule(str(name), level, team, title, layers, group)
    groups: dict[str, str] = {}
    for sched in schedules.values():
        if sched.usergroup and groups.setdefault(sched.usergroup, sched.name) != sched.name:
            raise PlaybookError(
                f"{path}: usergroup {sched.usergroup} is on both {groups[sched.usergroup]} and {sched.name}: "
                "one group can follow one schedule"
            )
    book = ScheduleBook(schedules)
    for lvl in sorted(roster.levels):
        if book.for_level(lvl) is None:
            lv = roster.levels[lvl]
            layer = Layer("roster", lv.users, "always")
            schedules[f"level-{lvl}"] = Schedule(
                f"level-{lvl}", lvl, None, lv.name, (layer,) if lv.users else ()
            )
    for team, members in roster.teams.items():
        if book.for_team(team) is None:
            schedules[f"team-{team}"] = Schedule(
                f"team-{team}", None, team, team, (Layer("roster", members),)
            )
    return OncallConfig(ScheduleBook(schedules), tuple(feeds))
