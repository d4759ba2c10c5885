"""Routing policy as data (playbook_content/alerts.yaml): label matchers -> severity, area and what to do.
Pure; loaded once per process and validated at load, so a bad file fails loudly at start, not per alert."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

from bot.playbook import AREAS, SEVERITIES, PlaybookError, parse_duration

Action = Literal["declare", "attach", "record"]
ACTIONS = ("declare", "attach", "record")
UNMATCHED = "unmatched"
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str
    regex: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: str) -> Matcher:
        m = _MATCHER.match(text)
        if not m:
            raise PlaybookError(f'bad matcher {text!r}: use label="value", !=, =~ or !~')
        label, op, raw = m.groups()
        value = raw.replace('\\"', '"').replace("\\\\", "\\")
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(f"(?:{value})")
            except re.error as exc:
                raise PlaybookError(f"bad regex in matcher {text!r}: {exc}") from exc
        return cls(label, op, value, regex)

    def holds(self, labels: dict[str, str]) -> bool:
        got = labels.get(self.label, "")  # a missing label is the empty string, as in Alertmanager
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        assert self.regex is not None
        hit = self.regex.fullmatch(got) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class Rule:
    name: str
    matchers: tuple[Matcher, ...]
    action: Action
    severity: str | None = None
    area: str | None = None
    problem: str | None = None
    auto_resolve: bool = False

    def matches(self, labels: dict[str, str]) -> bool:
        return all(m.holds(labels) for m in self.matchers)


@dataclass(frozen=True)
class Route:
    rule: str
    action: Action
    severity: str
    area: str | None
    problem: str | None
    auto_resolve: bool = False

    @property
    def matched(self) -> bool:
        return self.rule != UNMATCHED


@dataclass(frozen=True)
class AlertPolicy:
    rules: tuple[Rule, ...]
    severity_map: dict[str, str] = field(default_factory=dict)
    default_severity: str = "P2"
    flap_damping: timedelta = timedelta(minutes=15)

    def route(self, labels: dict[str, str]) -> Route:
        sev_label = labels.get("severity", "").strip().lower()
        mapped = self.severity_map.get(sev_label) or (
            sev_label.upper() if sev_label.upper() in SEVERITIES else None
        )
        for rule in self.rules:
            if rule.matches(labels):
                severity = rule.severity or mapped or self.default_severity
                return Route(rule.name, rule.action, severity, rule.area, rule.problem, rule.auto_resolve)
        return Route(UNMATCHED, "record", mapped or self.default_severity, None, None)


def _rule(raw: Any, i: int) -> Rule:
    if not isinstance(raw, dict):
        raise PlaybookError(f"alerts rule #{i + 1} must be a mapping")
    name = str(raw.get("name") or f"rule-{i + 1}")[:64]
    matchers = raw.get("matchers") or []
    if not isinstance(matchers, list) or not all(isinstance(m, str) for m in matchers):
        raise PlaybookError(f"alerts rule {name}: matchers must be a list of strings")
    action = raw.get("action", "declare")
    if action not in ACTIONS:
        raise PlaybookError(f"alerts rule {name}: action must be one of {', '.join(ACTIONS)}")
    severity = raw.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise PlaybookError(f"alerts rule {name}: severity must be one of {', '.join(SEVERITIES)}")
    area = raw.get("area")
    if area is not None and area not in AREAS:
        raise PlaybookError(f"alerts rule {name}: area must be one of {', '.join(AREAS)}")
    problem = raw.get("problem")
    return Rule(
        name=name,
        matchers=tuple(Matcher.parse(m) for m in matchers),
        action=action,
        severity=severity,
        area=area,
        problem=str(problem)[:64] if problem else None,
        auto_resolve=bool(raw.get("auto_resolve", False)),
    )


def load_policy(path: Path) -> AlertPolicy:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise PlaybookError(f"{path.name}: expected a mapping")
    rules = data.get("rules") or []
    if not isinstance(rules, list):
        raise PlaybookError(f"{path.name}: rules must be a list")
    smap = {str(k).lower(): str(v) for k, v in (data.get("severity_map") or {}).items()}
    bad = [v for v in smap.values() if v not in SEVERITIES]
    if bad:
        raise PlaybookError(f"{path.name}: severity_map values must be P0..P3, not {bad[0]!r}")
    default = str(data.get("default_severity", "P2"))
    if default not in SEVERITIES:
        raise PlaybookError(f"{path.name}: default_severity must be P0..P3")
    damping = parse_duration(data.get("flap_damping", "15m")) or timedelta(0)
    return AlertPolicy(
        rules=tuple(_rule(r, i) for i, r in enumerate(rules)),
        severity_map=smap,
        default_severity=default,
        flap_damping=damping,
    )
