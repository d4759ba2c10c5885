"""Automatic component states from the Factory health judgement (components with `automated: factory`).

Automation is deliberately modest: it can say "degraded" or "partial outage" within a check or two, before
anyone writes a word; only a human, through a public update, says "major outage" or explains anything."""

from __future__ import annotations

import logging

from bot.context import Services
from bot.statuspage.config import load_config
from bot.statuspage.store import set_automated_state

log = logging.getLogger("incident_bot.statuspage")


def factory_state(verdict: str, failing_streak: int, min_samples: int) -> str:
    if verdict == "down":
        return "partial_outage" if failing_streak >= max(min_samples, 1) else "degraded"
    if verdict == "degraded":
        return "degraded"
    return "operational"


async def apply_factory_judgement(
    svc: Services, verdict: str, failing_streak: int, min_samples: int, reason: str
) -> list[str]:
    """Set every factory-automated component; returns the keys whose public state changed. Never raises:
    the status page must not stop the monitor from declaring."""
    try:
        keys = load_config(svc.settings.statuspage_file).automated_by("factory")
        if not keys:
            return []
        state = factory_state(verdict, failing_streak, min_samples)
        now = svc.clock.now()
        changed = []
        async with svc.db.session() as s:
            for key in keys:
                if await set_automated_state(s, key, state, reason, now):
                    changed.append(key)
        return changed
    except Exception:
        log.exception("could not apply the health judgement to the status page")
        return []
