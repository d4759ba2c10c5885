"""The incident fields every view of one incident shows (the war-room template's card, the PIR), copied from
its row once, so the two views cannot disagree on what an incident is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.models import Incident


@dataclass(frozen=True)
class IncidentFacts:
    id: str
    severity: str
    severity_label: str
    status: str
    summary: str
    impact: str
    root_cause: str
    next_steps: str
    area: str | None
    team: str | None  # the routed team's title (playbook routing by area)
    commander: str | None
    comms_lead: str | None
    declared_by: str
    declared_at: datetime
    channel_id: str | None
    acknowledged_by: str | None
    is_drill: bool


def facts_of(inc: Incident, severity_label: str, team: str | None) -> dict[str, Any]:
    """The IncidentFacts fields of a row, as keyword arguments for any view built on them."""
    return {
        "id": inc.id,
        "severity": inc.severity,
        "severity_label": severity_label or inc.severity,
        "status": inc.status,
        "summary": inc.summary,
        "impact": inc.impact or "",
        "root_cause": inc.root_cause or "",
        "next_steps": inc.next_steps or "",
        "area": inc.area,
        "team": team,
        "commander": inc.commander,
        "comms_lead": inc.comms_lead,
        "declared_by": inc.declared_by,
        "declared_at": inc.declared_at,
        "channel_id": inc.channel_id,
        "acknowledged_by": inc.acknowledged_by,
        "is_drill": bool(inc.is_drill),
    }
