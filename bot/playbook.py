"""Playbook data (severities, ladder, routing, roster) loaded from YAML into typed, immutable objects."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

SEVERITIES = ("P0", "P1", "P2", "P3")
STATUSES = ("NEW", "INVESTIGATING", "IDENTIFIED", "MONITORING", "RESOLVED")
AREAS = ("db", "app", "infra", "security", "api", "frontend")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class PlaybookError(ValueError):
    pass


def parse_duration(value: str | int | float | None) -> timedelta | None:
    """'10m' -> 10 minutes. Bare numbers are seconds; None stays None."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    m = _DURATION.match(str(value))
    if not m:
        raise PlaybookError(f"bad duration {value!r}: use forms like 30s, 10m, 1h, 2d")
    return timedelta(seconds=float(m.group(1)) * _UNIT[m.group(2)])


def format_duration(td: timedelta | None) -> str:
    if td is None:
        return "—"
    s = int(td.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size and s % size == 0 and (unit != "d" or s >= 2 * 86400):  # "24 h" reads better than "1 d"
            return f"{s // size} {unit}"
    if s >= 60:
        return f"{s // 60} min {s % 60} s"
    return f"{s} s"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise PlaybookError(f"{path} not found") from exc
    if not isinstance(data, dict):
        raise PlaybookError(f"{path}: expected a mapping at the top")
    return data


@dataclass(frozen=True)
class Severity:
    key: str
    name: str
    definition: str
    response_target: timedelta | None
    notification: str
    update_cadence: timedelta | None
    mttr_target: timedelta | None

    @property
    def label(self) -> str:
        return f"{self.key} ({self.name})"


@dataclass(frozen=True)
class SeverityBook:
    severities: dict[str, Severity]
    mttd_target: timedelta
    escalation_rate_target: float
    monitoring_minimum: timedelta
    pir_remind_after: timedelta
    war_room_archive_after: timedelta | None = None  # None: war rooms stay open

    def __getitem__(self, key: str) -> Severity:
        return self.severities[key]

    def label(self, key: str) -> str:
        sev = self.severities.get(key)
        return sev.label if sev else key


def load_severities(path: Path) -> SeverityBook:
    data = _load(path)
    sevs = {}
    for key in SEVERITIES:
        raw = (data.get("severities") or {}).get(key)
        if raw is None:
            raise PlaybookError(f"{path}: severity {key} missing")
        sevs[key] = Severity(
            key=key,
            name=str(raw["name"]),
            definition=str(raw.get("definition", "")),
            response_target=parse_duration(raw.get("response_target")),
            notification=str(raw.get("notification", "")),
            update_cadence=parse_duration(raw.get("update_cadence")),
            mttr_target=parse_duration(raw.get("mttr_target")),
        )
    return SeverityBook(
        severities=sevs,
        mttd_target=parse_duration(data.get("mttd_target", "5m")) or timedelta(minutes=5),
        escalation_rate_target=float(data.get("escalation_rate_target", 0.1)),
        monitoring_minimum=parse_duration((data.get("resolution") or {}).get("monitoring_minimum", "30m"))
        or timedelta(0),
        pir_remind_after=parse_duration((data.get("pir") or {}).get("remind_after", "5d"))
        or timedelta(days=5),
        war_room_archive_after=parse_duration((data.get("pir") or {}).get("archive_after")),
    )


@dataclass(frozen=True)
class Level:
    level: int
    name: str
    users: tuple[str, ...] = ()


@dataclass(frozen=True)
class Roster:
    levels: dict[int, Level]
    teams: dict[str, tuple[str, ...]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def users(self, level: int) -> tuple[str, ...]:
        lvl = self.levels.get(level)
        return lvl.users if lvl else ()

    def level_name(self, level: int) -> str:
        lvl = self.levels.get(level)
        return lvl.name if lvl else f"Level {level}"

    def all_users(self) -> list[str]:
        seen: dict[str, None] = {}
        for lvl in sorted(self.levels):
            for u in self.levels[lvl].users:
                seen[u] = None
        for members in self.teams.values():
            for u in members:
                seen[u] = None
        return list(seen)


def load_roster(path: Path) -> Roster:
    data = _load(path)
    levels: dict[int, Level] = {}
    for raw in data.get("levels") or []:
        lvl = int(raw["level"])
        if not 1 <= lvl <= 5:
            raise PlaybookError(f"{path}: level {lvl} outside 1–5")
        users = tuple(str(u) for u in raw.get("users") or [])
        levels[lvl] = Level(lvl, str(raw.get("name", f"Level {lvl}")), users)
    teams = {str(k): tuple(str(u) for u in v or []) for k, v in (data.get("teams") or {}).items()}
    names = {str(k): str(v) for k, v in (data.get("names") or {}).items()}
    return Roster(levels, teams, names)


@dataclass(frozen=True)
class Route:
    area: str
    team: str
    title: str


def load_routing(path: Path) -> dict[str, Route]:
    data = _load(path)
    return {
        str(area): Route(str(area), str(raw["team"]), str(raw.get("title", raw["team"])))
        for area, raw in (data.get("areas") or {}).items()
    }


@dataclass(frozen=True)
class Playbook:
    """Everything the flows need from playbook_content/, loaded once per app."""

    severities: SeverityBook
    roster: Roster
    routing: dict[str, Route]
    escalation: dict[str, Any]

    @classmethod
    def load(cls, severities: Path, roster: Path, routing: Path, escalation: Path) -> Playbook:
        return cls(load_severities(severities), load_roster(roster), load_routing(routing), _load(escalation))
