"""Post-incident flows: action items, the PIR link and summary, the PIR reminder timer, incident stats.

Each flow owns its transaction; Slack calls happen after commit and every failure lands on the timeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot import incident_store as service
from bot.context import Services
from bot.event_text import Line, Person
from bot.models import ActionItem, CheckSample, Incident, Page, Timer
from bot.outbox import deliver, enqueue, enqueue_dm
from bot.pir import links
from bot.pir.data import PirData, ReadDeps, load_for
from bot.pir.metrics import Measure, Stats, Times, compute_stats, fmt_duration, measures
from bot.priority import BACKGROUND
from bot.states import IncidentStatus, TimerState

log = logging.getLogger("incident_bot.pir")

DONE = "Done"
OPEN = "Open"


@dataclass(frozen=True)
class ActionView:
    number: int
    text: str
    owner: str | None
    due_date: date | None
    status: str

    @classmethod
    def of(cls, a: ActionItem) -> ActionView:
        return cls(a.number, a.text, a.owner, a.due_date, a.status)


@dataclass(frozen=True)
class ActionResult:
    state: Literal["added", "done", "already", "missing", "duplicate"]
    incident_id: str
    item: ActionView | None = None


# -- links -----------------------------------------------------------------------------------------------


def pir_url(svc: Services, incident_id: str, *, html: bool = False) -> str:
    s = svc.settings
    return links.incident_url(
        s.public_url, incident_id, s.link_secret(), svc.clock.now(), suffix="" if html else "/pir.md"
    )


def link_expiry(svc: Services) -> datetime:
    return links.expiry(svc.clock.now())


# -- action items ----------------------------------------------------------------------------------------


async def add_action(
    svc: Services,
    incident_id: str,
    text: str,
    owner: str | None,
    due: date | None,
    user: str,
    *,
    request_key: str | None = None,
) -> ActionResult:
    """Numbered per incident (1, 2, …). The incident row lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite)
    serialises numbering; the unique (incident, number) key backs it up, so a race retries once."""
    for attempt in (1, 2):
        try:
            return await _add_action(svc, incident_id, text, owner, due, user, request_key)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _add_action(
    svc: Services,
    incident_id: str,
    text: str,
    owner: str | None,
    due: date | None,
    user: str,
    request_key: str | None,
) -> ActionResult:
    now = svc.clock.now()
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id, for_update=True)
        if inc is None:
            return ActionResult("missing", incident_id)
        if request_key and not await service.claim_request(s, request_key, now, incident_id):
            return ActionResult("duplicate", incident_id)  # the same slash command delivered twice
        top = (
            await s.execute(select(func.max(ActionItem.number)).where(ActionItem.incident_id == incident_id))
        ).scalar_one()
        item = ActionItem(
            incident_id=incident_id,
            number=int(top or 0) + 1,
            text=text,
            owner=owner,
            due_date=due,
            status=OPEN,
            created_by=user,
            created_at=now,
        )
        s.add(item)
        await s.flush()
        due_text = due.isoformat() if due else "no due date"
        await service.add_event(
            s,
            incident_id,
            "action_item",
            Line(
                f"Action item #{item.number} added: {text} (owner ",
                Person(owner) if owner else "none",
                f", due {due_text})",
            ),
            at=now,
            actor=user,
            data={
                "number": item.number,
                "owner": owner,
                "due": due and due.isoformat(),
                "status": OPEN,
                "text": text,  # as typed: the timeline view renders from data, escaped
            },
        )
        return ActionResult("added", incident_id, ActionView.of(item))


async def complete_action(svc: Services, incident_id: str, number: int, user: str) -> ActionResult:
    now = svc.clock.now()
    async with svc.db.session() as s:
        item = (
            await s.execute(
                select(ActionItem)
                .where(ActionItem.incident_id == incident_id, ActionItem.number == number)
                .with_for_update()
            )
        ).scalar_one_or_none()
        if item is None:
            return ActionResult("missing", incident_id)
        if item.status == DONE:
            return ActionResult("already", incident_id, ActionView.of(item))
        item.status = DONE
        await service.add_event(
            s,
            incident_id,
            "action_item",
            f"Action item #{number} done: {item.text}",
            at=now,
            actor=user,
            data={"number": number, "status": DONE, "text": item.text},
        )
        return ActionResult("done", incident_id, ActionView.of(item))


async def list_actions(svc: Services, incident_id: str) -> list[ActionView]:
    async with svc.db.session() as s:
        rows = await s.execute(
            select(ActionItem).where(ActionItem.incident_id == incident_id).order_by(ActionItem.number)
        )
        return [ActionView.of(a) for a in rows.scalars()]


# -- the PIR summary -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PirSummary:
    incident_id: str
    severity_label: str
    status: str
    summary: str
    duration: str
    measures: list[Measure]
    top_level: int
    open_items: int
    done_items: int
    url: str
    html_url: str
    expires_at: datetime
    channel_id: str | None
    is_drill: bool


def summarize(svc: Services, pir: PirData) -> PirSummary:
    inc = pir.incident
    end = inc.resolved_at or pir.generated_at
    duration = fmt_duration(end - inc.declared_at) + ("" if inc.resolved_at else " so far")
    done = sum(1 for a in pir.actions if a.status == DONE)
    return PirSummary(
        incident_id=inc.id,
        severity_label=inc.severity_label,
        status=inc.status,
        summary=inc.summary,
        duration=duration,
        measures=measures(pir.times, svc.playbook.severities),
        top_level=max((p.level for p in pir.pages), default=0),
        open_items=len(pir.actions) - done,
        done_items=done,
        url=pir_url(svc, inc.id),
        html_url=pir_url(svc, inc.id, html=True),
        expires_at=link_expiry(svc),
        channel_id=inc.channel_id,
        is_drill=inc.is_drill,
    )


async def pir_summary(svc: Services, incident_id: str) -> PirSummary | None:
    pir = await load_for(svc, incident_id)
    return None if pir is None else summarize(svc, pir)


async def share_pir(svc: Services, incident_id: str, user: str) -> PirSummary | None:
    """Record that the link was shared (the timeline says who handed it out, and when)."""
    summary = await pir_summary(svc, incident_id)
    if summary is None:
        return None
    async with svc.db.session() as s:
        await service.add_event(
            s,
            incident_id,
            "pir_shared",
            Line("PIR link shared by ", Person(user), f" (expires {summary.expires_at:%Y-%m-%d %H:%M} UTC)"),
            at=svc.clock.now(),
            actor=user,
        )
    return summary


# -- PIR reminder (durable timer, planned by escalation.replan at resolve) ----------------------------------


def _reminder_text(inc_id: str, resolved: str, open_items: int, url: str, drill: bool) -> str:
    items = f"{open_items} open action item(s)" if open_items else "no open action items"
    return (
        f"{'[DRILL] ' if drill else ''}📝 Post-incident review due for *{inc_id}* (resolved {resolved} ago). "
        f"The playbook asks for a 60–90 min review with the response team within 5–7 days of resolution; "
        f"{items}. PIR draft: <{url}|open the PIR>"
    )


async def fire_pir_reminder(svc: Services, timer: Timer, worker: str) -> None:
    """Remind the war room and the commander (DM) once: both posts are outbox rows written with the timer's
    completion and the timeline event, so a crash or a Slack outage only delays them."""
    now = svc.clock.now()
    key = f"{timer.incident_id}:pir_reminder:{timer.step}"
    async with svc.db.session() as s:
        t = await s.get(Timer, timer.id)
        if t is None or t.state != TimerState.CLAIMED or t.claimed_by != worker:
            return
        inc = await service.get(s, t.incident_id or "")
        if inc is None or t.plan_version != inc.plan_version or inc.status != IncidentStatus.RESOLVED:
            # Reopened or replanned: a newer timer owns it.
            t.state, t.last_error = TimerState.DROPPED, "stale plan"
            return
        t.state, t.fired_at = TimerState.DONE, now
        open_items = (
            await s.execute(
                select(func.count()).where(ActionItem.incident_id == inc.id, ActionItem.status != DONE)
            )
        ).scalar_one()
        commander = inc.commander or (inc.declared_by if inc.declared_by[:1] in ("U", "W") else None)
        resolved = fmt_duration(now - (inc.resolved_at or now))
        text = _reminder_text(inc.id, resolved, int(open_items), pir_url(svc, inc.id), inc.is_drill)
        fresh = await service.add_event(
            s,
            inc.id,
            "pir_reminder",
            Line(
                "PIR reminder sent to ",
                Person(commander) if commander else "no commander",
                " and the war room",
            ),
            at=now,
            data={"commander": commander, "channel": inc.channel_id},
            dedupe_key=key,
        )
        if not fresh:
            return  # sent by an earlier claim of this timer
        payload = {"text": text, "priority": BACKGROUND}
        if inc.channel_id:
            await enqueue(s, "post", channel=inc.channel_id, incident_id=inc.id, at=now, payload=payload)
        if commander:
            await enqueue_dm(s, commander, payload, at=now, incident_id=inc.id)
        inc_id = inc.id
    await deliver(svc, incident_id=inc_id)
    svc.metrics.timer_lateness.observe(max((now - timer.due_at).total_seconds(), 0))


# -- stats -----------------------------------------------------------------------------------------------


async def incident_times(svc: ReadDeps, since: datetime, until: datetime) -> list[Times]:
    """Real incidents (drills excluded) declared in [since, until), with whether each was paged beyond its
    severity's initial levels (a P0's L2 page at declare is the plan, not an escalation)."""
    top_level = (
        select(func.max(Page.level))
        .where(Page.incident_id == Incident.id)
        .correlate(Incident)
        .scalar_subquery()
    )
    # The severity section of escalation.yaml (read here, not through bot.escalation: no import cycle).
    paging = (svc.playbook.escalation or {}).get("severity") or {}
    initial = {
        str(sev): max((int(x) for x in (raw or {}).get("initial_levels") or []), default=1)
        for sev, raw in paging.items()
    }
    stmt = select(
        Incident.severity,
        Incident.declared_at,
        Incident.detected_at,
        Incident.acknowledged_at,
        Incident.monitoring_at,
        Incident.resolved_at,
        top_level.label("top_level"),
    ).where(Incident.declared_at >= since, Incident.declared_at < until, Incident.is_drill.is_(False))
    async with svc.db.session() as s:
        rows = (await s.execute(stmt)).all()
    return [
        Times(sev, dec, det, ack, mon, res, (top or 0) > initial.get(sev, 1))
        for sev, dec, det, ack, mon, res, top in rows
    ]


async def observed_since(svc: ReadDeps) -> datetime | None:
    """When the bot first saw anything: its first incident (drills too) or its first health check."""
    async with svc.db.session() as s:
        first_incident = (await s.execute(select(func.min(Incident.declared_at)))).scalar_one_or_none()
        first_check = (await s.execute(select(func.min(CheckSample.at)))).scalar_one_or_none()
    seen = [t for t in (first_incident, first_check) if t is not None]
    return min(seen) if seen else None


async def stats(svc: ReadDeps, days: int = 30) -> Stats:
    end = svc.clock.now()
    period = timedelta(days=days)
    start = end - period
    times = await incident_times(svc, start - period, end)  # one query for both periods
    return compute_stats(
        times, start, end, svc.playbook.severities, previous=times, observed_since=await observed_since(svc)
    )
