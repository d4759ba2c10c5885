"""Webhook bodies as the senders write them. `grafana_documented()` follows the example body in Grafana's
webhook-notifier documentation (two firing alerts, team blue, zones us-1 and eu-1)."""

from __future__ import annotations

import base64
import copy
from datetime import datetime
from typing import Any

AM_USER, AM_PASSWORD = "alertmanager", "am-secret-0123"
GRAFANA_TOKEN = "grafana-token-4567"
ZERO = "0001-01-01T00:00:00Z"

_GRAFANA_DOC: dict[str, Any] = {
    "receiver": "My Super Webhook",
    "status": "firing",
    "orgId": 1,
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
            "annotations": {
                "description": "The system has high memory usage",
                "runbook_url": "https://myrunbook.com/runbook/1234",
                "summary": "This alert was triggered for zone us-1",
            },
            "startsAt": "2021-10-12T09:51:03.157076+02:00",
            "endsAt": ZERO,
            "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
            "dashboardURL": "",
            "panelURL": "",
            "values": {"B": 44.23943737541908, "C": 1},
        },
        {
            "status": "firing",
            "labels": {"alertname": "High CPU usage", "team": "blue", "zone": "eu-1"},
            "annotations": {
                "description": "The system has high CPU usage",
                "runbook_url": "https://myrunbook.com/runbook/1234",
                "summary": "This alert was triggered for zone eu-1",
            },
            "startsAt": "2021-10-12T09:56:03.157076+02:00",
            "endsAt": ZERO,
            "generatorURL": "https://play.grafana.org/alerting/d1rdpdv7k/edit",
            "fingerprint": "bc97ff14869b13e3",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT1%2Cteam%3Dblue%2Czone%3Deu-1",
            "dashboardURL": "",
            "panelURL": "",
            "values": {"B": 44.23943737541908, "C": 1},
        },
    ],
    "groupLabels": {},
    "commonLabels": {"team": "blue"},
    "commonAnnotations": {},
    "externalURL": "https://play.grafana.org/",
    "version": "1",
    "groupKey": "{}:{}",
    "truncatedAlerts": 0,
    "title": "[FIRING:2]  (blue)",
    "state": "alerting",
    "message": "**Firing**\n\nLabels:\n - alertname = T2\n - team = blue\n - zone = us-1\n",
}


def grafana_documented() -> dict[str, Any]:
    return copy.deepcopy(_GRAFANA_DOC)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def grafana_alert(
    name: str,
    *,
    status: str = "firing",
    starts: datetime,
    ends: datetime | None = None,
    fingerprint: str | None = None,
    labels: dict[str, str] | None = None,
    summary: str = "",
) -> dict[str, Any]:
    a: dict[str, Any] = {
        "status": status,
        "labels": {"alertname": name, **(labels or {})},
        "annotations": {"summary": summary} if summary else {},
        "startsAt": iso(starts),
        "endsAt": iso(ends) if ends else ZERO,
        "generatorURL": "https://grafana.example/alerting/grafana/abc/view",
        "silenceURL": "https://grafana.example/alerting/silence/new?matchers=alertname%3D" + name,
        "dashboardURL": "https://grafana.example/d/pizza",
        "panelURL": "https://grafana.example/d/pizza?viewPanel=2",
        "values": {"A": 0.31, "C": 1},
    }
    if fingerprint:
        a["fingerprint"] = fingerprint
    return a


def grafana_body(alerts: list[dict[str, Any]], group_key: str = '{}/{}:{alertname="x"}') -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "receiver": "incident-bot",
        "status": "firing" if firing else "resolved",
        "orgId": 1,
        "alerts": alerts,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "https://grafana.example/",
        "version": "1",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "title": "[FIRING] pizza",
        "state": "alerting" if firing else "ok",
        "message": "",
    }


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
