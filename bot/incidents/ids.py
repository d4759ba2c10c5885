"""Incident ids and war-room channel names, derived from the declaration time in UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime

ID_RE = re.compile(r"^INC-\d{8}-\d{6}(-\d+)?$")


def incident_id(at: datetime, attempt: int = 1) -> str:
    base = "INC-" + at.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    return base if attempt == 1 else f"{base}-{attempt}"


def channel_name(incident: str, *, drill: bool = False, attempt: int = 1) -> str:
    """`INC-20261123-120000` -> `incident-20261123-120000` (Slack: lowercase, digits, '-', <= 80)."""
    stamp = incident.removeprefix("INC-").lower()
    name = f"incident-drill-{stamp}" if drill else f"incident-{stamp}"
    return name if attempt == 1 else f"{name}-{attempt}"
