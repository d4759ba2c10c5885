"""Times in stored drill reports: ISO text in, aware datetimes out, seconds shown as durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.pir.metrics import fmt_duration


def iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def secs(td: timedelta | None) -> float | None:
    return None if td is None else round(td.total_seconds(), 3)


def fmt_secs(value: object) -> str:
    """A stored number of seconds as '4 min 12 s'; None as '—'."""
    if not isinstance(value, int | float):
        return "—"
    return fmt_duration(timedelta(seconds=float(value)))
