"""What the update template shows, as plain data; handlers/blocks.py turns it into Block Kit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.models import Incident
from bot.playbook import Playbook
from bot.slack_text import esc_clip


@dataclass(frozen=True)
class IncidentCard:
    id: str
    severity: str
    severity_label: str
    status: str
    summary: str
    impact: str
    root_cause: str
    next_steps: str
    commander: str | None
    comms_lead: str | None
    team: str | None
    area: str | None
    channel_id: str | None
    declared_by: str
    declared_at: datetime
    acknowledged_by: str | None
    is_drill: bool
    acked: bool = False  # acknowledged in the current cycle (a reopen starts a new one)

    @classmethod
    def of(cls, inc: Incident, playbook: Playbook) -> IncidentCard:
        route = playbook.routing.get(inc.area or "")
        return cls(
            id=inc.id,
            severity=inc.severity,
            severity_label=playbook.severities.label(inc.severity),
            status=inc.status,
            summary=inc.summary,
            impact=inc.impact,
            root_cause=inc.root_cause,
            next_steps=inc.next_steps,
            commander=inc.commander,
            comms_lead=inc.comms_lead,
            team=route.title if route else None,
            area=inc.area,
            channel_id=inc.channel_id,
            declared_by=inc.declared_by,
            declared_at=inc.declared_at,
            acknowledged_by=inc.acknowledged_by,
            is_drill=inc.is_drill,
            acked=inc.ack_cycle == inc.cycle,
        )

    def topic(self) -> str:
        """Slack reads `<!channel>` and links in topics too: the summary goes in escaped, and clipped so
        that no entity is cut in half."""
        prefix = f"{'[DRILL] ' if self.is_drill else ''}{self.id} | {self.severity_label} | {self.status} | "
        return prefix + esc_clip(self.summary, 250 - len(prefix))
