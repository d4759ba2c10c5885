"""The `slack_pauses` store (migration 0003): one row per Slack method, the end of the latest Retry-After
(wall clock, UTC), so every process honours a 429 that one of them was told about."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import case, select

from bot.db import Database
from bot.incident_store import _insert
from bot.models import SlackPause


async def load(db: Database, now: datetime | None = None) -> dict[str, float]:
    """Pauses still running: method → end (epoch seconds)."""
    now = now or datetime.now(UTC)
    async with db.session() as s:
        rows = (await s.execute(select(SlackPause).where(SlackPause.until > now))).scalars()
        return {r.method: r.until.timestamp() for r in rows}


async def save(db: Database, method: str, until: float) -> None:
    """Store a pause; never shortens a longer one another process stored."""
    at = datetime.fromtimestamp(until, UTC)
    async with db.session() as s:
        stmt = _insert(s, SlackPause).values(method=method, until=at, set_at=datetime.now(UTC))
        longer = case((stmt.excluded.until > SlackPause.until, stmt.excluded.until), else_=SlackPause.until)
        stmt = stmt.on_conflict_do_update(
            index_elements=["method"], set_={"until": longer, "set_at": datetime.now(UTC)}
        )
        await s.execute(stmt)
