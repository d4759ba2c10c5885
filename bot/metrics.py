"""Prometheus metrics, in a registry per app instance (tests build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.open_incidents = Gauge(
            "incident_bot_open_incidents", "Open incidents by severity", ["severity"], registry=r
        )
        self.pages_sent = Counter(
            "incident_bot_pages_sent", "Pages sent by escalation level", ["level"], registry=r
        )
        self.timer_lateness = Histogram(
            "incident_bot_timer_lateness_seconds",
            "How late a durable timer fired",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
            registry=r,
        )
        self.slack_errors = Counter(
            "incident_bot_slack_api_errors",
            "Slack API errors by method and error",
            ["method", "error"],
            registry=r,
        )
        self.check_latency = Histogram(
            "incident_bot_check_latency_seconds",
            "Health-check probe latency",
            ["probe"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 40),
            registry=r,
        )
        self.commands = Counter("incident_bot_commands", "Slash commands by subcommand", ["sub"], registry=r)
        # Alerts in (bot/alerts): every alert of every accepted notification, repeats, routing decisions,
        # and bodies refused (unauthorized, too_large, malformed).
        self.alerts_received = Counter(
            "incident_bot_alerts_received",
            "Alerts received by source and status",
            ["source", "status"],
            registry=r,
        )
        self.alerts_deduped = Counter(
            "incident_bot_alerts_deduplicated",
            "Alerts that were repeats (still firing)",
            ["source"],
            registry=r,
        )
        self.alerts_routed = Counter(
            "incident_bot_alerts_routed",
            "Alerts by routing rule and what was done",
            ["rule", "action"],
            registry=r,
        )
        self.alerts_rejected = Counter(
            "incident_bot_alert_notifications_rejected",
            "Alert webhook bodies refused, by source and reason",
            ["source", "reason"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
