"""status.yaml -> typed, immutable page configuration (components, title, history length)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bot.config import CONTENT_DIR
from bot.playbook import PlaybookError

DEFAULT_FILE = CONTENT_DIR / "status.yaml"
_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
AUTOMATION_SOURCES = ("factory",)


@dataclass(frozen=True)
class ComponentConfig:
    key: str
    name: str
    description: str = ""
    automated: str | None = None  # a health source (AUTOMATION_SOURCES) that may set its state


@dataclass(frozen=True)
class PageConfig:
    title: str
    components: tuple[ComponentConfig, ...]
    history_days: int = 90
    support_url: str = ""
    atlassian_components: dict[str, str] = field(default_factory=dict)

    def component(self, key: str) -> ComponentConfig | None:
        return next((c for c in self.components if c.key == key), None)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.components)

    def automated_by(self, source: str) -> tuple[str, ...]:
        return tuple(c.key for c in self.components if c.automated == source)


def parse_config(data: dict[str, Any], origin: str = "status.yaml") -> PageConfig:
    raw = data.get("components")
    if not isinstance(raw, list) or not raw:
        raise PlaybookError(f"{origin}: `components` must be a non-empty list")
    comps: list[ComponentConfig] = []
    for i, c in enumerate(raw):
        if not isinstance(c, dict):
            raise PlaybookError(f"{origin}: component {i + 1} must be a mapping")
        key, name = str(c.get("key", "")), str(c.get("name", "")).strip()
        if not _KEY.match(key):
            raise PlaybookError(f"{origin}: component key {key!r} must be lowercase letters, digits, - or _")
        if not name or len(name) > 80:
            raise PlaybookError(f"{origin}: component {key} needs a name under 80 characters")
        auto = c.get("automated")
        if auto is not None and auto not in AUTOMATION_SOURCES:
            raise PlaybookError(f"{origin}: component {key}: automated must be one of {AUTOMATION_SOURCES}")
        if any(x.key == key for x in comps):
            raise PlaybookError(f"{origin}: component key {key} appears twice")
        comps.append(ComponentConfig(key, name, str(c.get("description") or "").strip(), auto))
    days = int(data.get("history_days") or 90)
    if not 1 <= days <= 366:
        raise PlaybookError(f"{origin}: history_days must be between 1 and 366")
    atl = data.get("atlassian_components") or {}
    if not isinstance(atl, dict):
        raise PlaybookError(f"{origin}: atlassian_components must map component keys to ids")
    return PageConfig(
        title=str(data.get("title") or "Status"),
        components=tuple(comps),
        history_days=days,
        support_url=str(data.get("support_url") or ""),
        atlassian_components={str(k): str(v) for k, v in atl.items()},
    )


@lru_cache(maxsize=8)
def load_config(path: Path | None = None) -> PageConfig:
    path = Path(path or DEFAULT_FILE)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise PlaybookError(f"{path} not found") from exc
    if not isinstance(data, dict):
        raise PlaybookError(f"{path}: expected a mapping at the top")
    return parse_config(data, str(path))
