"""Escalation orchestration: (re)plan timers in the caller's transaction, fire pages and reminders,
acknowledge, escalate by hand. Fencing: a timer fires only while its plan_version is the incident's."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import incident_store as service
from bot.context import Services
from bot.escalation.page_dm import PageView, page_dm_row, page_view, queue_page_edit
from bot.escalation.policy import LadderState, Policy, load_policy, plan
from bot.event_text import Line, Person, people
from bot.models import Incident, Page, Timer
from bot.oncall.service import PageTarget, oncall_text, page_target
from bot.outbox import deliver, effect_row, enqueue, enqueue_rows
from bot.playbook import format_duration
from bot.priority import BACKGROUND, PAGE, with_priority
from bot.states import IncidentStatus, PageState, TimerState
from bot.timefmt import fmt_elapsed

log = logging.getLogger("incident_bot.escalation")


def policy_of(svc: Services) -> Policy:
    cached = getattr(svc, "_policy", None)
    if cached is None:
        cached = load_policy(svc.playbook.escalation, svc.settings.time_scale)
        svc._policy = cached  # type: ignore[attr-defined]
    return cached


def scaled(svc: Services, td: timedelta | None) -> timedelta | None:
    return None if td is None else td * svc.settings.time_scale


async def pages_in_cycle(s: AsyncSession, inc: Incident) -> list[Page]:
    stmt = select(Page).where(Page.incident_id == inc.id, Page.cycle == inc.cycle).order_by(Page.level)
    return list((await s.execute(stmt)).scalars())


def _initial_reason(reason: str) -> str | None:
    """A severity change pages the new severity's initial levels: say so on the page."""
    if reason.startswith("severity "):
        return f"severity changed {reason.removeprefix('severity ')}"
    return None


async def replan(
    svc: Services, s: AsyncSession, inc: Incident, *, reason: str, forced: tuple[str, ...] = ()
) -> list[Timer]:
    """Drop every pending timer of the incident and write the current plan under a new fencing token."""
    now = svc.clock.now()
    inc.plan_version = (inc.plan_version or 0) + 1
    await s.execute(
        update(Timer)
        .where(Timer.incident_id == inc.id, Timer.state == TimerState.PENDING)
        .values(state=TimerState.DROPPED, last_error=f"replanned: {reason}")
        .execution_options(synchronize_session=False)
    )
    sent = {
        p.step: p.sent_at or p.due_at for p in await pages_in_cycle(s, inc) if p.state != PageState.FAILED
    }
    resolved = inc.status == IncidentStatus.RESOLVED
    steps = plan(
        policy_of(svc),
        LadderState(
            severity=inc.severity,
            declared_at=inc.declared_at,
            acknowledged=inc.ack_cycle == inc.cycle,
            resolved=resolved,
            sent=sent,
            cycle_start=inc.cycle_started_at,
            forced=forced,
            now=now,
            initial_reason=_initial_reason(reason),
        ),
    )
    timers = [
        Timer(
            incident_id=inc.id,
            kind="page",
            step=st.step,
            due_at=st.due_at,
            plan_version=inc.plan_version,
            data={"level": st.level, "reason": st.reason, "mode": st.mode, "due": st.due_at.isoformat()},
        )
        for st in steps
    ]
    cadence = scaled(svc, svc.playbook.severities[inc.severity].update_cadence)
    if not resolved and cadence:
        timers.append(
            Timer(
                incident_id=inc.id,
                kind="reminder",
                step="update-1",
                due_at=max(inc.updated_at, now) + cadence,
                plan_version=inc.plan_version,
                data={"cadence": cadence.total_seconds()},
            )
        )
    if resolved and inc.resolved_at is not None:
        after = scaled(svc, svc.playbook.severities.pir_remind_after) or timedelta(days=5)
        timers.append(
            Timer(
                incident_id=inc.id,
                kind="pir_reminder",
                step=f"pir-{inc.cycle}",
                due_at=inc.resolved_at + after,
                plan_version=inc.plan_version,
            )
        )
    archive_after = scaled(svc, svc.playbook.severities.war_room_archive_after)
    if resolved and inc.resolved_at is not None and archive_after and inc.channel_id:
        timers.append(
            Timer(
                incident_id=inc.id,
                kind="archive_war_room",
                step=f"archive-{inc.cycle}",
                due_at=inc.resolved_at + archive_after,
                plan_version=inc.plan_version,
            )
        )
    s.add_all(timers)
    paging = policy_of(svc).paging.get(inc.severity)
    if reason == "declared" and paging is not None and paging.mode == "none":
        await service.add_event(
            s,
            inc.id,
            "ticket",
            f"Ticket opened: {inc.severity} pages nobody; response within "
            f"{format_duration(svc.playbook.severities[inc.severity].response_target)}",
            at=now,
            dedupe_key=f"{inc.id}:ticket:{inc.cycle}",
        )
    await s.flush()
    return timers


async def fire_page(svc: Services, timer: Timer, worker: str) -> None:
    """Send one escalation step (`fire_pages` with one timer: the fallback when a batch fails)."""
    await fire_pages(svc, [timer], worker)


async def fire_pages(svc: Services, timers: list[Timer], worker: str) -> None:
    """Send the escalation steps of one claim: in one transaction, per step the page row (the exactly-once
    guard), a `page_dm` outbox row per person, the war-room line and the invite, the timeline event and the
    timer's completion. The outbox delivers them right after commit (here) or from any worker after a crash;
    nothing is sent while the transaction is open, and nothing outside it needs recording. One incident's
    steps are taken in due order (an L2 and an L3 due together page both, in order). A statement per kind
    of row for the whole claim, not per page: a burst of pages is what this path exists for."""
    now = svc.clock.now()
    async with svc.db.session() as s:
        # Locks in the ack's order (incidents, then pages and timers), so the two never deadlock; the
        # incidents in id order, so two workers' batches never do either.
        ids = sorted({t.incident_id for t in timers if t.incident_id})
        stmt = select(Incident).where(Incident.id.in_(ids)).order_by(Incident.id).with_for_update()
        incidents = {i.id: i for i in (await s.execute(stmt)).scalars()}
        claims = select(Timer.id, Timer.state, Timer.claimed_by).where(Timer.id.in_([t.id for t in timers]))
        held = {i: (state, by) for i, state, by in (await s.execute(claims)).all()}
        stmt_pages = select(Page.incident_id, Page.cycle, Page.step).where(Page.incident_id.in_(ids))
        paged = {(i, c, st) for i, c, st in (await s.execute(stmt_pages)).all()}
        targets: dict[int, PageTarget] = {}  # per level: whoever holds the shift at this moment (bot.oncall)
        done: list[int] = []
        dropped: list[int] = []
        new: list[tuple[Incident, Timer, Page]] = []
        for t in sorted(timers, key=lambda t: (t.due_at, t.id)):  # plan_version and data never change
            if held.get(t.id) != (TimerState.CLAIMED, worker):
                continue  # our claim ran out and another worker holds the timer: it pages
            inc = incidents.get(t.incident_id or "")
            if inc is None or t.plan_version != inc.plan_version or inc.status == IncidentStatus.RESOLVED:
                dropped.append(t.id)
                continue
            done.append(t.id)
            if (inc.id, inc.cycle, t.step) in paged:
                continue  # paged by an earlier claim: never twice
            paged.add((inc.id, inc.cycle, t.step))
            level = int(t.data.get("level", t.step.removeprefix("L")))
            if level not in targets:
                targets[level] = await page_target(svc, level, now, s)
            new.append((inc, t, _page_row(inc, t, level, targets[level], now)))
        if new:
            # The pages' ids name their DM rows: read back by their unique step (an INSERT … RETURNING in
            # parameter order is one row per statement on SQLite).
            await s.execute(insert(_PAGES), [_columns(p) for _, _, p in new])
            ids_of = select(Page.id, Page.incident_id, Page.cycle, Page.step).where(Page.incident_id.in_(ids))
            page_ids = {(i, c, st): pid for pid, i, c, st in (await s.execute(ids_of)).all()}
            for _, _, page in new:
                page.id = page_ids[(page.incident_id, page.cycle, page.step)]
            rows: list[dict[str, Any]] = []
            events = [_page_effects(svc, inc, t, page, now, rows) for inc, t, page in new]
            await enqueue_rows(s, rows)
            await service.add_events(s, events)
        if done:
            finished = update(Timer).where(Timer.id.in_(done)).values(state=TimerState.DONE, fired_at=now)
            await s.execute(finished.execution_options(synchronize_session=False))
        if dropped:
            stale = (
                update(Timer)
                .where(Timer.id.in_(dropped))
                .values(state=TimerState.DROPPED, last_error="stale plan")
                .execution_options(synchronize_session=False)
            )
            await s.execute(stale)
    paged_incidents = sorted({inc.id for inc, _, _ in new})
    if paged_incidents:
        with with_priority(PAGE):  # pages go first through the Slack rate gate
            await deliver(svc, incident_ids=paged_incidents, limit=DELIVER_BATCH)
    for _, _, page in new:
        svc.metrics.pages_sent.labels(level=str(page.level)).inc()
        svc.metrics.timer_lateness.observe(max((now - page.due_at).total_seconds(), 0))


# Rows one claim of a batch's delivery takes: a burst of pages goes out in a few rounds, not one per page.
DELIVER_BATCH = 100
_PAGES = cast(Table, Page.__table__)
_PAGE_COLUMNS = (
    "incident_id",
    "cycle",
    "step",
    "level",
    "users",
    "reason",
    "due_at",
    "sent_at",
    "state",
    "dm",
)


def _columns(page: Page) -> dict[str, Any]:
    return {c: getattr(page, c) for c in _PAGE_COLUMNS}


def _page_row(inc: Incident, t: Timer, level: int, target: PageTarget, now: datetime) -> Page:
    """The page as it is written (a transient object: inserted with its siblings in one statement)."""
    users = list(target.oncall.users)
    mode = str(t.data.get("mode", "dm"))
    return Page(
        incident_id=inc.id,
        cycle=inc.cycle,
        step=t.step,
        level=level,
        users={"ids": users, "oncall": target.record()},
        reason=str(t.data.get("reason", "")),
        due_at=datetime.fromisoformat(t.data["due"]) if "due" in t.data else t.due_at,
        sent_at=now,
        state=PageState.SENT,  # handed to the outbox in this transaction
        dm={u: {"queued": True} for u in users} if mode == "dm" else {},
    )


def _page_effects(
    svc: Services, inc: Incident, t: Timer, page: Page, now: datetime, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """A new page's outbox rows (its DMs, the war-room line, the invite), added to `rows`; returns its
    timeline event."""
    users = list(page.users["ids"])
    mode = str(t.data.get("mode", "dm"))
    if mode == "dm":
        rows.extend(page_dm_row(page, user, now) for user in users)
    view = page_view(svc, inc, page, now)
    if view.channel_id:
        # In the war room's order, ahead of background posts.
        payload: dict[str, Any] = {"text": _war_room_line(view, users, mode), "priority": PAGE}
        rows.append(effect_row("post", channel=view.channel_id, incident_id=inc.id, at=now, payload=payload))
        if users:  # everyone paged can join the war room at once
            # Ordered on its own key: an invite need not wait for the war-room line, so a page's three
            # rows go out in one delivery round.
            payload = {"users": users, "priority": PAGE, "to": view.channel_id}
            key = f"invite:{view.channel_id}"
            rows.append(effect_row("invite", channel=key, incident_id=inc.id, at=now, payload=payload))
    oncall = page.users.get("oncall") or {}
    why = f" ({oncall_text(oncall)})" if oncall else ""
    return service.event_values(
        inc.id,
        "page",
        Line(
            f"Paged L{page.level} ({view.level_name}) ",
            people(users) or ["nobody (no one at this level in the roster)"],
            f": {page.reason}{why}",
        ),
        at=now,
        data={
            "level": page.level,
            "step": t.step,
            "users": users,
            "reason": page.reason,
            "due_at": page.due_at.isoformat(),
            "sent_at": now.isoformat(),
            "lateness_s": round((now - page.due_at).total_seconds(), 3),
            "mode": mode,
            "oncall": oncall,
        },
        dedupe_key=f"{inc.id}:page:{page.cycle}:{t.step}",
    )


def _war_room_line(view: PageView, users: list[str], mode: str) -> str:
    mentions = " ".join(f"<@{u}>" for u in users)
    drill = "[DRILL] " if view.is_drill else ""
    if mode == "channel":
        return (
            f"{drill}On-call L{view.level} ({view.level_name}) {mentions}: please take a look ({view.reason})"
        )
    return (
        f"{drill}Paging L{view.level} ({view.level_name}) {mentions or 'nobody on the roster'}: {view.reason}"
    )


async def fire_reminder(svc: Services, timer: Timer, worker: str) -> None:
    now = svc.clock.now()
    async with svc.db.session() as s:
        t = await s.get(Timer, timer.id)
        inc = await service.get(s, timer.incident_id or "")
        if t is None or t.claimed_by != worker:
            return
        if inc is None or t.plan_version != inc.plan_version or inc.status == IncidentStatus.RESOLVED:
            t.state, t.last_error = TimerState.DROPPED, "stale plan"
            return
        cadence = timedelta(seconds=float(t.data.get("cadence", 1800)))
        n = int(t.step.removeprefix("update-") or 1)
        t.state, t.fired_at = TimerState.DONE, now
        s.add(
            Timer(
                incident_id=inc.id,
                kind="reminder",
                step=f"update-{n + 1}",
                due_at=now + cadence,
                plan_version=inc.plan_version,
                data={"cadence": cadence.total_seconds()},
            )
        )
        who = f"<@{inc.commander}>" if inc.commander else "Incident commander"
        leaderless = inc.commander is None
        stale = fmt_elapsed(now - inc.updated_at)
        await service.add_event(
            s,
            inc.id,
            "reminder",
            f"Update due: the template was last updated {stale} ago",
            at=now,
            data={"n": n},
            dedupe_key=f"{inc.id}:reminder:{inc.plan_version}:{n}",
        )
        if inc.channel_id:
            # Queued with the timer's completion; the outbox retries it and records a final failure.
            text = f"⏰ Update due, {who}: no update for {stale}. Use `/incident update`."
            payload: dict[str, Any] = {"text": text, "priority": BACKGROUND}
            if leaderless:  # nobody commands it: offer the role right in the reminder
                payload["blocks"] = [
                    {
                        "type": "section",
                        "text": {"type": "mrkdwn", "text": text + " Nobody commands this incident."},
                    },
                    {
                        "type": "actions",
                        "block_id": "take_command",
                        "elements": [
                            {
                                "type": "button",
                                "text": {"type": "plain_text", "text": "Take command"},
                                "action_id": "take_command",
                                "value": str(inc.id),
                                "style": "primary",
                            }
                        ],
                    },
                ]
            # One live message per stale spell: `since` (the last update) tells the deliverer which reminder
            # message this one edits (bot.outbox.reminder_effect).
            payload["since"] = inc.updated_at.isoformat()
            await enqueue(s, "reminder", channel=inc.channel_id, incident_id=inc.id, at=now, payload=payload)
    await deliver(svc, incident_id=timer.incident_id)
    svc.metrics.timer_lateness.observe(max((now - timer.due_at).total_seconds(), 0))


# -- acknowledge / escalate --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AckResult:
    state: str  # acked | already | resolved | missing
    incident_id: str
    by: str | None = None
    after: str | None = None
    channel_id: str | None = None


async def acknowledge(svc: Services, incident_id: str, user: str, via: str) -> AckResult:
    now = svc.clock.now()
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id, for_update=True)
        if inc is None:
            return AckResult("missing", incident_id)
        if inc.status == IncidentStatus.RESOLVED:
            return AckResult("resolved", incident_id, channel_id=inc.channel_id)
        if inc.ack_cycle == inc.cycle:
            return AckResult("already", incident_id, inc.acknowledged_by, channel_id=inc.channel_id)
        if inc.acknowledged_at is None:
            inc.acknowledged_at = now  # the first acknowledgement is what MTTA measures
        inc.acknowledged_by, inc.ack_cycle = user, inc.cycle
        after = fmt_elapsed(now - (inc.cycle_started_at or inc.declared_at))
        if inc.status == IncidentStatus.NEW:
            inc.status = IncidentStatus.INVESTIGATING
        pages = await pages_in_cycle(s, inc)
        for p in pages:
            if p.acked_at is None:
                p.acked_by, p.acked_at = user, now
        await service.add_event(
            s,
            inc.id,
            "acknowledged",
            Line("Acknowledged by ", Person(user), f" after {after} (via {via})"),
            at=now,
            actor=user,
            data={"via": via, "cycle": inc.cycle},
        )
        await replan(svc, s, inc, reason="acknowledged")
        # Every effect of the ack is queued with it: a crash after commit still edits the DMs and the
        # template and says so in the war room (the deliverer below, or the worker).
        for page in pages:
            view = page_view(svc, inc, page, now)
            for u in _dm_users(page):
                await queue_page_edit(s, page, u, svc.render.page_acked(view, user), now)
        channel = inc.channel_id
        await enqueue(s, "template", channel=channel or inc.id, incident_id=inc.id, at=now)
        if channel:
            line = f"✅ Acknowledged by <@{user}> after {after}. Escalation paused."
            await enqueue(s, "post", channel=channel, incident_id=inc.id, at=now, payload={"text": line})
    await deliver(svc, incident_id=incident_id)
    return AckResult("acked", incident_id, user, after, channel)


async def escalate_now(svc: Services, incident_id: str, user: str) -> str:
    """Page the next level now; later levels count from this page."""
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id, for_update=True)
        if inc is None:
            return "No such incident."
        if inc.status == IncidentStatus.RESOLVED:
            return "The incident is resolved; reopen it first."
        sent = [p.level for p in await pages_in_cycle(s, inc)]
        top = max(sent) if sent else 0
        # The next level that exists *for this severity* (L5 is P0-only): never claim a page plan() drops.
        pol = policy_of(svc)
        nxt = next(
            (
                lv.level
                for lv in pol.levels
                if lv.level > top and (not lv.severities or inc.severity in lv.severities)
            ),
            None,
        )
        if nxt is None:
            name = f"L{top} ({svc.playbook.roster.level_name(top)})" if top else "the ladder"
            return f"No level is left to page for a {inc.severity}: {name} is the top for this severity."
        await replan(svc, s, inc, reason=f"escalated by {user}", forced=(f"L{nxt}",))
        await service.add_event(
            s,
            inc.id,
            "escalated",
            Line(Person(user), f" escalated to L{nxt}"),
            at=svc.clock.now(),
            actor=user,
        )
    await svc.kick(incident_id, by=f"web-{user}")
    return f"Paged L{nxt} ({svc.playbook.roster.level_name(nxt)})."


def _dm_users(page: Page) -> list[str]:
    """The people a page DM went (or is going) to; `_war_room`/`_invited` are markers of older rows."""
    return [u for u, dm in page.dm.items() if not u.startswith("_") and isinstance(dm, dict)]


async def queue_war_room_ready(svc: Services, s: AsyncSession, inc: Incident, now: datetime) -> int:
    """In the transaction that marks the war room ready: invite everyone paged so far, and edit the page
    DMs that went out before the room existed so they name it (an edit skips a DM that names it already:
    one still queued is rendered with the room when it is sent). Returns how many edits were queued."""
    if not inc.channel_id:
        return 0
    pages = [p for p in await pages_in_cycle(s, inc) if p.state != PageState.FAILED]
    paged = sorted({u for p in pages for u in _dm_users(p)})
    if paged:
        await enqueue(
            s, "invite", channel=inc.channel_id, incident_id=inc.id, at=now, payload={"users": paged}
        )
    queued = 0
    for p in pages:
        if p.acked_at is not None:
            continue
        view = page_view(svc, inc, p, now)
        for user in _dm_users(p):
            if p.dm[user].get("room") is True:
                continue
            await queue_page_edit(s, p, user, svc.render.page_dm(view), now, unless_room=True)
            queued += 1
    return queued


async def queue_page_dm_closures(
    svc: Services, s: AsyncSession, inc: Incident, by: str, now: datetime, pir_url: str | None
) -> int:
    """On resolve, in its transaction: an edit of every page DM of the incident (all cycles) so none still
    says "needs you" with a live Acknowledge button; each keeps the incident's context and shows the final
    state (resolved when, by whom, the PIR link). Queued per person, so it goes out after the DM itself and
    after an earlier edit (an acknowledgement) still waiting in the outbox. Returns how many were queued."""
    stmt = select(Page).where(Page.incident_id == inc.id).order_by(Page.cycle, Page.level)
    queued = 0
    for page in (await s.execute(stmt)).scalars():
        view = page_view(svc, inc, page, now, resolved_by=by, resolved_at=now, pir_url=pir_url)
        for user in _dm_users(page):
            await queue_page_edit(s, page, user, svc.render.page_resolved(view, by), now)
            queued += 1
    return queued


__all__ = [
    "acknowledge",
    "escalate_now",
    "fire_page",
    "fire_reminder",
    "page_view",
    "queue_page_dm_closures",
    "queue_war_room_ready",
    "replan",
]
