"""Closing a war room (seed 001, post-resolution "Cleanup: Close war room channel").

When the PIR is marked done (`/incident pir done`), or `pir.archive_after` after resolve (a durable timer), the
bot posts a closing summary with the PIR link and archives the channel. Both are outbox rows of one channel,
written in the transaction that decides to close, so they go out in order, once, across crashes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import incident_store as service
from bot.context import Services
from bot.event_text import SLACK, Line, Person, render_line
from bot.incidents.card import IncidentCard
from bot.models import Incident, Timer
from bot.outbox import deliver, enqueue
from bot.pir.flows import pir_url
from bot.states import IncidentStatus, TimerState
from bot.timefmt import fmt_duration


@dataclass(frozen=True)
class CloseResult:
    state: Literal["closing", "already", "not_resolved", "missing"]
    incident_id: str


def closed_key(inc: Incident) -> str:
    """The dedupe key of the cycle's `war_room_closed` event: its war room was archived on close."""
    return f"{inc.id}:war_room_closed:{inc.cycle}"


async def _queue_close(svc: Services, s: AsyncSession, inc: Incident, now: datetime, why: Line) -> bool:
    """In the caller's transaction: the closing summary, then the archive. False when already queued."""
    if not inc.channel_id:
        return False
    fresh = await service.add_event(
        s, inc.id, "war_room_closed", Line("War room archived (", why, ")"), at=now, data={"why": why.plain()},
        dedupe_key=closed_key(inc),
    )  # fmt: skip
    if not fresh:
        return False
    took = fmt_duration((inc.resolved_at or now) - inc.declared_at)
    url = pir_url(svc, inc.id, html=True)
    text = (
        f"📦 Closing this war room: {inc.id} was resolved after {took} ({render_line(why, SLACK)}). "
        f"The review and the whole timeline: <{url}|open the PIR>. The channel is archived now; "
        "it stays searchable. Slack does not let a bot unarchive it, so a recurrence is a new incident."
    )
    if inc.template_ts:
        # The template's last edit before the archive (an archived channel's messages cannot be edited): a
        # record without buttons, so nobody presses Reopen or PIR done on a closed room.
        card_text, blocks = svc.render.template(IncidentCard.of(inc, svc.playbook))
        kept = [b for b in blocks if b.get("type") != "actions"]
        kept.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "📦 War room closed and archived."}]}
        )
        payload = {"channel": inc.channel_id, "ts": inc.template_ts, "text": card_text, "blocks": kept}
        await enqueue(s, "update", channel=inc.channel_id, incident_id=inc.id, at=now, payload=payload)
    await enqueue(s, "post", channel=inc.channel_id, incident_id=inc.id, at=now, payload={"text": text})
    await enqueue(s, "archive", channel=inc.channel_id, incident_id=inc.id, at=now)
    # A PIR reminder would now post into an archived channel: it has nothing left to remind of.
    await s.execute(
        update(Timer)
        .where(Timer.incident_id == inc.id, Timer.kind == "pir_reminder", Timer.state == TimerState.PENDING)
        .values(state=TimerState.DROPPED, last_error="war room closed")
    )
    return True


async def pir_done(svc: Services, incident_id: str, user: str) -> CloseResult:
    now = svc.clock.now()
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id, for_update=True)
        if inc is None:
            return CloseResult("missing", incident_id)
        if inc.status != IncidentStatus.RESOLVED:
            return CloseResult("not_resolved", incident_id)
        await service.add_event(
            s, inc.id, "pir_done", Line("PIR marked done by ", Person(user)), at=now, actor=user,
            dedupe_key=f"{inc.id}:pir_done:{inc.cycle}",
        )  # fmt: skip
        queued = await _queue_close(svc, s, inc, now, Line("PIR done, marked by ", Person(user)))
    if queued:
        await deliver(svc, incident_id=incident_id)
    return CloseResult("closing" if queued else "already", incident_id)


async def fire_archive(svc: Services, timer: Timer, worker: str) -> None:
    """The `archive_war_room` timer planned at resolve; dropped if the incident was reopened since."""
    now = svc.clock.now()
    async with svc.db.session() as s:
        t = await s.get(Timer, timer.id)
        if t is None or t.state != TimerState.CLAIMED or t.claimed_by != worker:
            return
        inc = await service.get(s, t.incident_id or "", for_update=True)
        if inc is None or t.plan_version != inc.plan_version or inc.status != IncidentStatus.RESOLVED:
            t.state, t.last_error = TimerState.DROPPED, "stale plan"
            return
        after = fmt_duration((inc.resolved_at and now - inc.resolved_at) or None)
        await _queue_close(svc, s, inc, now, Line(f"{after} after resolve"))
        t.state, t.fired_at = TimerState.DONE, now
        incident_id = inc.id
    await deliver(svc, incident_id=incident_id)
