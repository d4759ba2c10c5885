"""The DR plan's data: playbook_content/dr.yaml (objectives, backups, drills, review, sign-off roles) and the
content hash of playbook_content/dr-plan.md, which a sign-off records so an edited plan needs a new one."""

from __future__ import annotations

import hashlib
import re
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


# -- the recovery procedures, as tabletop steps ------------------------------------------------------------


@dataclass(frozen=True)
class PlanStep:
    section: str
    text: str


_HEADING = re.compile(r"^(#{2,3})\s+(.*)$")
_ITEM = re.compile(r"^(\s*)([-*]|\d+\.)\s+(.*)$")
_PROCEDURES = re.compile(r"^(?:\d+\.\s*)?recovery procedures", re.I)


def _mrkdwn(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"\*\*(.+?)\*\*", r"*\1*", text)


def tabletop_steps(path: Path | str | None = None) -> list[PlanStep]:
    """The steps of dr-plan.md's "Recovery procedures" section, in order: each paragraph, bullet and numbered
    item is a step; a line ending in ':' that introduces a numbered list becomes the prefix of its items."""
    path = Path(path) if path is not None else DR_PLAN
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise PlaybookError(f"{path} not found") from exc
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if (m := _HEADING.match(line)) and m.group(1) == "##" and _PROCEDURES.match(m.group(2))
        ),
        None,
    )
    if start is None:
        raise PlaybookError(f"{path.name} has no '## Recovery procedures' section to walk through")
    section = "§" + _HEADING.match(lines[start]).group(2).strip()  # type: ignore[union-attr]
    raw: list[tuple[str, str, bool]] = []  # (section, text, numbered)
    current: list[str] | None = None
    numbered = False

    def flush() -> None:
        nonlocal current
        if current:
            raw.append((section, " ".join(current), numbered))
        current = None

    for line in lines[start + 1 :]:
        head = _HEADING.match(line)
        if (head and head.group(1) == "##") or line.strip() == "---":
            break
        if head:
            flush()
            section = "§" + head.group(2).strip()
            continue
        if not line.strip():
            flush()
            continue
        item = _ITEM.match(line)
        if item:
            flush()
            current, numbered = [item.group(3).strip()], item.group(2)[0].isdigit()
        elif current is None:
            current, numbered = [line.strip()], False
        else:
            current.append(line.strip())
    flush()
    steps: list[PlanStep] = []
    lead, n, total = "", 0, 0
    for i, (sec, text, num) in enumerate(raw):
        nxt = raw[i + 1] if i + 1 < len(raw) else None
        if text.endswith(":") and nxt is not None and nxt[2] and nxt[0] == sec and not num:
            lead, n = text.rstrip(":").strip(), 0
            total = 0
            for later in raw[i + 1 :]:
                if not later[2] or later[0] != sec:
                    break
                total += 1
            continue
        if num and lead:
            n += 1
            steps.append(PlanStep(sec, _mrkdwn(f"{lead}, step {n}/{total}: {text}")))
            if n == total:
                lead = ""
            continue
        lead = ""
        steps.append(PlanStep(sec, _mrkdwn(text)))
    if not steps:
        raise PlaybookError(f"{path.name}: the recovery procedures section has no steps")
    return [PlanStep(_mrkdwn(st.section), st.text) for st in steps]
