"""The sandbox's rotating roster and its "jump to the next hand-off" control."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.clock import OffsetClock
from bot.context import Services
from bot.oncall import service
from bot.oncall.schedule import handoffs


def rotating_schedules(start: datetime) -> str:
    """L1 rotates every 4 h, L2 every 8 h, from `start` (the sandbox's start: Priya and Sam go first, so the
    first page reaches whom the sandbox's guide names)."""
    at = start.replace(second=0, microsecond=0).isoformat()
    return f"""# Written by the sandbox at start; see playbook_content/schedules.example.yaml for the format.
schedules:
  primary:
    level: 1
    layers:
      - {{name: sandbox 4h, users: [U01PRIMARY, U08SRE, U07DEV], rotation: custom, length: 4h, start: "{at}"}}
  secondary:
    level: 2
    layers:
      - {{name: sandbox 8h, users: [U02SECOND, U10BACK], rotation: custom, length: 8h, start: "{at}"}}
"""


async def jump_to_next_handoff(svc: Services, clock: OffsetClock) -> dict[str, Any]:
    """Move the sandbox's clock to just after the earliest upcoming hand-off of any level."""
    now = clock.now()
    upcoming = []
    async with svc.db.session() as s:
        for sched in service.level_schedules(svc):
            r = await service.resolve(svc, s, sched, now)
            upcoming += [
                (h.at, sched, h) for h in handoffs(r.schedule, now, now + timedelta(days=35), r.overrides)[:1]
            ]
    if not upcoming:
        return {"ok": False, "error": "no hand-off in the next 35 days"}
    at, sched, h = min(upcoming, key=lambda x: x[0])
    clock.jump_to(at + timedelta(seconds=1))
    return {
        "ok": True,
        "at": at.isoformat(),
        "level": sched.level,
        "users": list(h.after.users),
        "offset_s": round(clock.offset.total_seconds()),
    }
