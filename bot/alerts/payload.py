"""Webhook bodies from Alertmanager (version 4) and Grafana's webhook contact point -> `Notification`, or
`PayloadError` with the reason the sender gets in its 400. Pure: no I/O, no clock."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SOURCES = ("alertmanager", "grafana")
MAX_ALERTS = 1000  # Alertmanager's `max_alerts` truncates above what a receiver asks for; we take this many
MAX_LABELS = 128  # per alert, labels and annotations each
MAX_KEY = 256
STATUSES = ("firing", "resolved")
LINK_FIELDS = {
    "generatorURL": "generator",
    "dashboardURL": "dashboard",
    "panelURL": "panel",
    "silenceURL": "silence",
}
# Alertmanager sends nanoseconds; Python parses at most microseconds.
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$")


class PayloadError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AlertIn:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None
    ends_at: datetime | None
    fingerprint: str
    links: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "") or "(unnamed alert)"

    @property
    def firing(self) -> bool:
        return self.status == "firing"


@dataclass(frozen=True)
class Notification:
    source: str
    status: str
    group_key: str
    alerts: tuple[AlertIn, ...]
    receiver: str = ""
    external_url: str = ""
    common_labels: dict[str, str] = field(default_factory=dict)
    title: str = ""  # Grafana only
    truncated: int = 0


def parse_time(value: Any, where: str) -> datetime | None:
    """RFC 3339 with any number of fractional digits; Go's zero time ('0001-01-01T00:00:00Z') is None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where} must be an RFC 3339 time string")
    m = _TIME.match(value.strip())
    if not m:
        raise PayloadError(f"{where} is not an RFC 3339 time: {value[:40]!r}")
    base, frac, tz = m.groups()
    if base.startswith("0001-01-01"):
        return None
    text = base.replace(" ", "T") + (f".{frac[:6].ljust(6, '0')}" if frac else "")
    tz = tz or "Z"
    text += "+00:00" if tz == "Z" else (tz if ":" in tz else f"{tz[:3]}:{tz[3:]}")
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError as exc:
        raise PayloadError(f"{where} is not a valid time: {value[:40]!r}") from exc


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object of strings")
    if len(value) > MAX_LABELS:
        raise PayloadError(f"{where} has {len(value)} entries; at most {MAX_LABELS}")
    out: dict[str, str] = {}
    for k, v in value.items():
        if len(k) > MAX_KEY:
            raise PayloadError(f"{where} has a key longer than {MAX_KEY} characters")
        if not isinstance(v, str):
            raise PayloadError(f"{where}.{k[:40]} must be a string")
        out[k] = v
    return out


def _str(value: Any, where: str, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise PayloadError(f"{where} must be a string")
    return value


def fingerprint_of(labels: dict[str, str]) -> str:
    """Alertmanager identifies an alert by its label set; senders that omit the fingerprint get ours."""
    return hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]


def _values(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object")
    out: dict[str, Any] = {}
    for k, v in list(value.items())[:MAX_LABELS]:
        if not isinstance(v, int | float | str | None) or isinstance(v, bool):
            raise PayloadError(f"{where}.{str(k)[:40]} must be a number")
        out[str(k)[:MAX_KEY]] = v
    return out


def _alert(raw: Any, i: int, source: str) -> AlertIn:
    where = f"alerts[{i}]"
    if not isinstance(raw, dict):
        raise PayloadError(f"{where} must be an object")
    status = raw.get("status")
    if status not in STATUSES:
        raise PayloadError(f"{where}.status must be 'firing' or 'resolved'")
    labels = _str_map(raw.get("labels"), f"{where}.labels")
    annotations = _str_map(raw.get("annotations"), f"{where}.annotations")
    fp = _str(raw.get("fingerprint"), f"{where}.fingerprint").strip()
    if len(fp) > 64 or (fp and not re.fullmatch(r"[0-9A-Za-z_.:-]+", fp)):
        raise PayloadError(f"{where}.fingerprint is not a fingerprint")
    links = {}
    for key, name in LINK_FIELDS.items():
        url = _str(raw.get(key), f"{where}.{key}").strip()
        if url:
            links[name] = url
    runbook = annotations.get("runbook_url", "").strip()
    if runbook:
        links["runbook"] = runbook
    values = _values(raw.get("values"), f"{where}.values") if source == "grafana" else {}
    if source == "grafana" and not values and isinstance(raw.get("valueString"), str):
        values = {"value": raw["valueString"][:500]}
    return AlertIn(
        status=str(status),
        labels=labels,
        annotations=annotations,
        starts_at=parse_time(raw.get("startsAt"), f"{where}.startsAt"),
        ends_at=parse_time(raw.get("endsAt"), f"{where}.endsAt"),
        fingerprint=fp or fingerprint_of(labels),
        links=links,
        values=values,
    )


def parse(source: str, body: bytes) -> Notification:
    if source not in SOURCES:
        raise PayloadError(f"unknown source {source[:20]!r}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError("the body is not UTF-8") from exc
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise PayloadError(f"the body is not JSON: {str(exc)[:80]}") from exc
    if not isinstance(data, dict):
        raise PayloadError("the body must be a JSON object")
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("'alerts' must be a list")
    if not alerts:
        raise PayloadError("'alerts' is empty")
    if len(alerts) > MAX_ALERTS:
        raise PayloadError(f"{len(alerts)} alerts in one body; at most {MAX_ALERTS} (set max_alerts)")
    status = data.get("status", "firing")
    if status not in STATUSES:
        raise PayloadError("'status' must be 'firing' or 'resolved'")
    truncated = data.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise PayloadError("'truncatedAlerts' must be a non-negative integer")
    parsed = tuple(_alert(a, i, source) for i, a in enumerate(alerts))
    group_key = _str(data.get("groupKey"), "groupKey")
    if not group_key or group_key == "{}:{}":
        # Grafana sends "{}:{}" when it groups by nothing: the set of fingerprints stands in (each alert
        # also finds its incident by its own fingerprint, so a changed set does not split an incident).
        group_key = "fp:" + ",".join(sorted({a.fingerprint for a in parsed}))[:200]
    return Notification(
        source=source,
        status=str(status),
        group_key=group_key[:1000],
        alerts=parsed,
        receiver=_str(data.get("receiver"), "receiver")[:200],
        external_url=_str(data.get("externalURL"), "externalURL")[:500],
        common_labels=_str_map(data.get("commonLabels"), "commonLabels"),
        title=_str(data.get("title"), "title")[:500] if source == "grafana" else "",
        truncated=truncated,
    )
