"""The alerts of an incident as the PIR lists them (read model; rendering is in bot/pir/render.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Alert

MAX_PIR_ALERTS = 1000


@dataclass(frozen=True)
class AlertRow:
    name: str
    source: str
    status: str
    starts_at: datetime | None
    ends_at: datetime | None
    repeats: int
    flaps: int
    summary: str
    rule: str
    links: dict[str, str] = field(default_factory=dict)


async def load_alerts(s: AsyncSession, incident_id: str) -> list[AlertRow]:
    stmt = (
        select(Alert)
        .where(Alert.incident_id == incident_id)
        .order_by(Alert.starts_at, Alert.id)
        .limit(MAX_PIR_ALERTS)
    )
    return [
        AlertRow(
            name=a.name,
            source=a.source,
            status=a.status,
            starts_at=a.starts_at,
            ends_at=a.ends_at,
            repeats=a.repeats,
            flaps=a.flaps,
            summary=str(
                (a.annotations or {}).get("summary") or (a.annotations or {}).get("description") or ""
            ),
            rule=a.rule,
            links={str(k): str(v) for k, v in (a.links or {}).items()},
        )
        for a in (await s.execute(stmt)).scalars()
    ]
