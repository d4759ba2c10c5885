"""Playbook data (severities, ladder, routing, roster) loaded from YAML into typed, immutable objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from bot import timefmt
from bot.states import IncidentStatus
from bot.timefmt import format_duration as format_duration  # re-exported: callers import it from here

SEVERITIES = ("P0", "P1", "P2", "P3")
STATUSES: tuple[str, ...] = tuple(IncidentStatus)
AREAS = ("db", "app", "infra", "security", "api", "frontend")


class PlaybookError(ValueError):
    pass


def parse_duration(value: str | int | float | None) -> timedelta | None:
    """The one duration grammar (bot.timefmt); a bad value is a PlaybookError here."""
    try:
        return timefmt.parse_duration(value)
    except ValueError as exc:
        raise PlaybookError(str(exc)) from None


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
