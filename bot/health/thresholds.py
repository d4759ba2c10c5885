"""Alert thresholds (seed 001), SLOs (seed 002), monitor cadence from playbook_content/thresholds.yaml,
and the rules that turn metrics, or a single check, into a suggested severity."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import yaml

# probes imports this module lazily (inside run_probes), so this import is not circular.
from bot import timefmt
from bot.health.results import FACTORY_PROBES, ORDER_PATH, SERVICE_PROBES, CheckReport, Severity

Level = Literal["critical", "high", "medium"]
LEVELS: tuple[Level, ...] = ("critical", "high", "medium")
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "playbook_content" / "thresholds.yaml"


@dataclass(frozen=True)
class Levels:
    """Three alert levels for one metric; `higher_is_worse` False means alert when *below* (availability)."""

    critical: float
    high: float
    medium: float
    higher_is_worse: bool = True

    def level(self, value: float) -> Level | None:
        """The most severe level strictly crossed ("> 10 %", "< 99 %"), or None."""
        for name in LEVELS:
            limit = getattr(self, name)
            if (value > limit) if self.higher_is_worse else (value < limit):
                return name
        return None


@dataclass(frozen=True)
class Slo:
    name: str
    target: float
    alert_threshold: float
    higher_is_better: bool
    measurement: str

    def met(self, value: float) -> bool:
        return value >= self.target if self.higher_is_better else value <= self.target

    def alerting(self, value: float) -> bool:
        return value < self.alert_threshold if self.higher_is_better else value > self.alert_threshold


@dataclass(frozen=True)
class MonitorConfig:
    interval_s: float
    window_s: float
    min_samples: int


@dataclass(frozen=True)
class Thresholds:
    error_rate: Levels
    latency_p99_ms: Levels
    availability: Levels
    severity: dict[str, Severity]  # critical/high/medium/low -> P0..P3
    slos: dict[str, Slo]
    monitor: MonitorConfig

    def severity_for(self, level: str | None) -> Severity | None:
        return self.severity[level] if level is not None else None


def parse_duration(value: object) -> float:
    """Seconds, in the one duration grammar (bot.timefmt: a number or "30s", "10m", "1h", "2d")."""
    td = timefmt.parse_duration(value if isinstance(value, str | int | float) else str(value))
    return 0.0 if td is None else td.total_seconds()


def _levels(raw: dict[str, Any], key: str, higher_is_worse: bool) -> Levels:
    try:
        critical, high, medium = (float(raw[key][name]) for name in LEVELS)
        levels = Levels(critical, high, medium, higher_is_worse)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"alert_thresholds.{key} needs numeric critical, high and medium") from exc
    ordered = [levels.critical, levels.high, levels.medium]
    if ordered != sorted(ordered, reverse=higher_is_worse):
        raise ValueError(f"alert_thresholds.{key}: critical must be the most extreme, then high, then medium")
    return levels


def parse_thresholds(raw: object) -> Thresholds:
    """Validate the YAML document; ValueError names the first problem."""
    if not isinstance(raw, dict):
        raise ValueError("thresholds: expected a mapping")
    alerts = raw.get("alert_thresholds")
    if not isinstance(alerts, dict):
        raise ValueError("thresholds: missing alert_thresholds")
    severity = raw.get("severity")
    if not isinstance(severity, dict) or any(
        severity.get(k) not in ("P0", "P1", "P2", "P3") for k in (*LEVELS, "low")
    ):
        raise ValueError("severity: map critical, high, medium and low to P0..P3")
    try:
        slos = {
            name: Slo(name, float(s["target"]), float(s["alert_threshold"]), bool(s["higher_is_better"]),
                      str(s.get("measurement", "")))
            for name, s in (raw.get("slos") or {}).items()
        }  # fmt: skip
        mon = raw["monitor"]
        monitor = MonitorConfig(
            parse_duration(mon["interval"]), parse_duration(mon["window"]), int(mon["min_samples"])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"thresholds: bad slos or monitor section ({exc})") from exc
    if monitor.interval_s <= 0 or monitor.window_s < monitor.interval_s or monitor.min_samples < 1:
        raise ValueError("monitor: need interval > 0, window >= interval and min_samples >= 1")
    return Thresholds(
        error_rate=_levels(alerts, "error_rate", True),
        latency_p99_ms=_levels(alerts, "latency_p99", True),
        availability=_levels(alerts, "availability", False),
        severity={k: cast(Severity, severity[k]) for k in (*LEVELS, "low")},
        slos=slos,
        monitor=monitor,
    )


def load_thresholds(path: str | Path | None = None) -> Thresholds:
    """The thresholds in `path` (default: playbook_content/thresholds.yaml, read once per process)."""
    return _load(Path(path).resolve() if path is not None else DEFAULT_PATH)


@functools.lru_cache(maxsize=8)
def _load(path: Path) -> Thresholds:
    return parse_thresholds(yaml.safe_load(path.read_text(encoding="utf-8")))


def classify(error_rate: float, p99_ms: float, availability: float, th: Thresholds) -> Severity | None:
    """Severity of a window of samples: the most severe level any of the three metrics crosses (seed 001)."""
    crossed = {
        th.error_rate.level(error_rate),
        th.latency_p99_ms.level(p99_ms),
        th.availability.level(availability),
    }
    return next((th.severity[name] for name in LEVELS if name in crossed), None)


def suggest_severity(report: CheckReport, th: Thresholds) -> Severity | None:
    """Severity suggested by one check (seed 001 definitions); the first rule that matches wins.

    - P0 (complete outage): every Factory probe that ran is down (no pizza can be made or verified), or every
      JWT Pizza service probe that ran is down (customers cannot reach the service).
    - P1 (major function down): the order or verify probe is down (chaos `fail`, `badjwt`, `throttle` past
      the timeout, a bad API key, oven full), or a successful order took longer than latency_p99 critical.
    - P2 (partial): any other probe down or degraded (chaos running while orders still succeed, the service
      pointing at another Factory, vendor failing with docs up = the Factory's database), or an order slower
      than latency_p99 high.
    - P3 (minor): an order slower than latency_p99 medium, or chaos scheduled but not yet started.
    - None: everything ok.

    One sample is weaker evidence than a p99 over a window: order latency maps one severity below classify().
    """
    by_name = {r.name: r for r in report.results}

    def ran(names: tuple[str, ...]) -> list[str]:
        return [by_name[n].status for n in names if n in by_name and by_name[n].status != "skipped"]

    for group in (FACTORY_PROBES, SERVICE_PROBES):
        statuses = ran(group)
        if statuses and all(s == "down" for s in statuses):
            return th.severity["critical"]
    order = by_name.get("order")
    slow = th.latency_p99_ms.level(order.latency_ms) if order is not None and order.status != "down" else None
    if "down" in ran(ORDER_PATH) or slow == "critical":
        return th.severity["high"]
    if any(r.status in ("down", "degraded") for r in report.results) or slow == "high":
        return th.severity["medium"]
    vendor = by_name.get("factory_vendor")
    if slow == "medium" or (vendor is not None and vendor.data.get("chaos_state") == "scheduled"):
        return th.severity["low"]
    return None
