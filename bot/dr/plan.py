"""The DR plan's data: playbook_content/dr.yaml (objectives, backups, drills, review, sign-off roles) and the
content hash of playbook_content/dr-plan.md, which a sign-off records so an edited plan needs a new one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from bot.config import CONTENT_DIR
from bot.playbook import PlaybookError, parse_duration

DR_YAML = CONTENT_DIR / "dr.yaml"
DR_PLAN = CONTENT_DIR / "dr-plan.md"


@dataclass(frozen=True)
class CriticalService:
    key: str
    name: str
    priority: int
    rto: timedelta
    rpo: timedelta | None  # None: the service holds no data of ours
    owner: str
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class BackupPolicy:
    interval: timedelta
    retention: timedelta
    postgres_wal_archive_timeout: timedelta


@dataclass(frozen=True)
class DrPlan:
    services: dict[str, CriticalService]
    backup: BackupPolicy
    drills: dict[str, timedelta]  # scenario -> how often
    review_interval: timedelta
    signoff_roles: dict[str, str]  # role key (as typed in /incident dr signoff) -> title

    def by_priority(self) -> list[CriticalService]:
        return sorted(self.services.values(), key=lambda s: (s.priority, s.key))


def _duration(raw: Any, where: str) -> timedelta:
    value = parse_duration(raw)
    if value is None:
        raise PlaybookError(f"dr.yaml: {where} is required")
    return value


def load_dr(path: Path | str | None = None) -> DrPlan:
    """Read and validate dr.yaml (default: playbook_content/dr.yaml); PlaybookError names the problem."""
    path = Path(path) if path is not None else DR_YAML
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PlaybookError(f"{path} not found") from exc
    if not isinstance(data, dict):
        raise PlaybookError(f"{path}: expected a mapping at the top")
    try:
        services = {
            str(key): CriticalService(
                key=str(key),
                name=str(raw["name"]),
                priority=int(raw["priority"]),
                rto=_duration(raw["rto"], f"services.{key}.rto"),
                rpo=parse_duration(raw.get("rpo")),
                owner=str(raw.get("owner", "")),
                depends_on=tuple(str(d) for d in raw.get("depends_on") or ()),
            )
            for key, raw in (data.get("services") or {}).items()
        }
        b = data["backup"]
        backup = BackupPolicy(
            interval=_duration(b["interval"], "backup.interval"),
            retention=_duration(b["retention"], "backup.retention"),
            postgres_wal_archive_timeout=_duration(b["postgres_wal_archive_timeout"], "backup.wal"),
        )
        drills = {
            str(k): _duration((v or {}).get("every"), f"drills.{k}.every") for k, v in data["drills"].items()
        }
        review = _duration(data["review"]["interval"], "review.interval")
        roles = {str(k): str(v) for k, v in data["signoff"]["roles"].items()}
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise PlaybookError(f"{path}: missing or malformed entry ({exc})") from exc
    if not services:
        raise PlaybookError(f"{path}: no services")
    return DrPlan(services, backup, drills, review, roles)


def plan_hash(path: Path | str | None = None) -> str:
    """sha256 (hex) of dr-plan.md as stored: the exact text a product or operations sign-off approved."""
    return hashlib.sha256(Path(path or DR_PLAN).read_bytes()).hexdigest()
