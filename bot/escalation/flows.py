"""Escalation orchestration: (re)plan timers in the caller's transaction, fire pages and reminders,
acknowledge, escalate by hand. Fencing: a timer fires only while its plan_version is the incident's."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import incident_store as service
from bot.context import Services
from bot.db import DatabaseUnavailable
from bot.escalation.policy import LadderState, Policy, load_policy, plan
from bot.event_text import Line, Person, people
from bot.models import Incident, Page, Timer
from bot.oncall.service import oncall_text, page_target
from bot.outbox import deliver, enqueue
from bot.playbook import format_duration
from bot.ports import ChatError
from bot.priority import BACKGROUND, PAGE, with_priority
from bot.states import IncidentStatus, PageState, TimerState
from bot.timefmt import fmt_elapsed
from bot.timers import finish, renew, retry_later

log = logging.getLogger("incident_bot.escalation")

MAX_ATTEMPTS = 8
# A DM Slack took is recorded even if the database drops out at that moment: the write is retried for this
# long (real seconds, well inside the 30 s timer lease) before the handler gives up. Unrecorded, the page's
# retry would send the DM again.
RECORD_RETRIES = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)


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


@dataclass(frozen=True)
class PageView:
    incident_id: str
    severity_label: str
    summary: str
    open_for: str
    channel_id: str | None
    level: int
    level_name: str
    reason: str
    is_drill: bool
    # Set once the page's moment has passed: the DM is edited to say so and keeps the context above.
    acked_by: str | None = None
    acked_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    pir_url: str | None = None


def page_view(svc: Services, inc: Incident, page: Page, now: datetime, **final: Any) -> PageView:
    """What a page DM shows of its incident; `final` adds the ack / resolve fields."""
    acked = inc.ack_cycle == inc.cycle and page.cycle == inc.cycle
    return PageView(
        incident_id=inc.id,
        severity_label=svc.playbook.severities.label(inc.severity),
        summary=inc.summary,
        open_for=_open_for(now, inc.declared_at),
        channel_id=inc.channel_id,
        level=page.level,
        level_name=svc.playbook.roster.level_name(page.level),
        reason=page.reason,
        is_drill=inc.is_drill,
        acked_by=page.acked_by or (inc.acknowledged_by if acked else None),
        acked_at=page.acked_at or (inc.acknowledged_at if acked else None),
        **final,
    )


def _open_for(now: datetime, since: datetime) -> str:
    return fmt_elapsed(now - since)


async def fire_page(svc: Services, timer: Timer, worker: str) -> None:
    now = svc.clock.now()
    async with svc.db.session() as s:
        t = await s.get(Timer, timer.id)
        inc = await service.get(s, timer.incident_id or "", for_update=True)
        if t is None or t.state != TimerState.CLAIMED or t.claimed_by != worker:
            return
        if inc is None or t.plan_version != inc.plan_version or inc.status == IncidentStatus.RESOLVED:
            t.state, t.last_error = TimerState.DROPPED, "stale plan"
            return
        level = int(t.data.get("level", t.step.removeprefix("L")))
        page = (
            await s.execute(
                select(Page).where(Page.incident_id == inc.id, Page.cycle == inc.cycle, Page.step == t.step)
            )
        ).scalar_one_or_none()
        if page is not None and page.state in (PageState.SENT, PageState.FAILED):
            t.state, t.fired_at = TimerState.DONE, now  # already sent by an earlier claim: never twice
            return
        if page is None:
            # Resolved now, as the page goes out: whoever holds the shift at this moment (bot.oncall).
            target = await page_target(svc, level, now, s)
            users = list(target.oncall.users)
            due = datetime.fromisoformat(t.data["due"]) if "due" in t.data else t.due_at
            page = Page(
                incident_id=inc.id,
                cycle=inc.cycle,
                step=t.step,
                level=level,
                users={"ids": users, "oncall": target.record()},
                reason=str(t.data.get("reason", "")),
                due_at=due,
                state=PageState.SENDING,
                dm={},
            )
            s.add(page)
            await s.flush()
        else:
            users = list(page.users.get("ids", []))  # a resumed send goes to whom it was resolved for
        view = page_view(svc, inc, page, now)
        page_id, mode, delivered = page.id, str(t.data.get("mode", "dm")), dict(page.dm)
    errors: list[str] = []
    try:
        with with_priority(PAGE):  # pages go first through the Slack rate gate
            delivered = await _deliver(svc, timer, worker, page_id, view, users, mode, delivered, errors)
    except _ClaimLost:
        # Our lease ran out (this worker stalled) and another worker holds the timer now: it resumes from the
        # DMs recorded so far. Sending on would page the same people twice.
        log.warning(
            "page %s %s: claim taken over by another worker; leaving it to them", timer.id, timer.step
        )
        return
    except ChatError as exc:
        if exc.transient and timer.attempts < MAX_ATTEMPTS:
            backoff = exc.backoff(timer.attempts, cap=60)
            await retry_later(svc.db, timer.id, now + timedelta(seconds=backoff), exc.error)
            async with svc.db.session() as s:
                await service.add_event(
                    s,
                    view.incident_id,
                    "slack_failed",
                    f"Paging L{level} hit {exc.error}; retrying in {backoff:g} s",
                    at=svc.clock.now(),
                    data={"method": exc.method, "error": exc.error, "step": timer.step},
                )
            return
        errors.append(f"{exc.method}: {exc.error}")
    sent_at = svc.clock.now()
    async with svc.db.session() as s:
        # Locks in the ack's order (incident, then pages and timers), so the two never deadlock.
        await service.get(s, view.incident_id, for_update=True)
        t = await s.get(Timer, timer.id, with_for_update=True)
        page_row = await s.get(Page, page_id, with_for_update=True)
        assert page_row is not None and t is not None
        delivered = {**page_row.dm, **delivered}  # what another holder recorded stays recorded
        taken = (t.state == TimerState.CLAIMED and t.claimed_by != worker) or t.state == TimerState.PENDING
        if taken:
            page_row.dm = delivered  # another worker holds (or will re-claim) the timer: it finishes the page
            return
        if view.channel_id and "_war_room" not in delivered:
            # The war-room line is queued with the page's completion: the outbox delivers it, in the war
            # room's order, ahead of background posts.
            line = _war_room_line(view, users, mode)
            await enqueue(
                s,
                "post",
                channel=view.channel_id,
                incident_id=view.incident_id,
                at=sent_at,
                payload={"text": line, "priority": PAGE},
            )
            delivered["_war_room"] = {"channel": view.channel_id}
        if view.channel_id and users and "_invited" not in delivered:
            # Everyone paged can join the war room at once: queued with the page, like its line.
            payload = {"users": users}
            await enqueue(
                s,
                "invite",
                channel=view.channel_id,
                incident_id=view.incident_id,
                at=sent_at,
                payload=payload,
            )
            delivered["_invited"] = {"channel": view.channel_id}
        page_row.dm = delivered
        ok = bool(delivered) or (not users)
        page_row.state, page_row.sent_at = (PageState.SENT if ok else PageState.FAILED), sent_at
        if t.state == TimerState.CLAIMED:  # an ack's re-plan may have dropped it meanwhile: it stays dropped
            t.state, t.fired_at = TimerState.DONE, sent_at
        lateness = (sent_at - page_row.due_at).total_seconds()
        oncall = page_row.users.get("oncall") or {}
        why = f" ({oncall_text(oncall)})" if oncall else ""
        await service.add_event(
            s,
            view.incident_id,
            "page",
            Line(
                f"Paged L{level} ({view.level_name}) ",
                people(users) or ["nobody (no one at this level in the roster)"],
                f": {page_row.reason}{why}",
            ),
            at=sent_at,
            data={
                "level": level,
                "step": timer.step,
                "users": users,
                "reason": page_row.reason,
                "due_at": page_row.due_at.isoformat(),
                "sent_at": sent_at.isoformat(),
                "lateness_s": round(lateness, 3),
                "mode": mode,
                "errors": errors,
                "oncall": oncall,
            },
            dedupe_key=f"{view.incident_id}:page:{page_row.cycle}:{timer.step}",
        )
        if errors:
            await service.add_event(
                s,
                view.incident_id,
                "slack_failed",
                f"Page L{level} partly failed: {'; '.join(errors)}",
                at=sent_at,
                data={"errors": errors},
            )
    await deliver(svc, incident_id=view.incident_id)
    svc.metrics.pages_sent.labels(level=str(level)).inc()
    svc.metrics.timer_lateness.observe(max(lateness, 0))


class _ClaimLost(Exception):
    """The page's timer is held by another worker now (our lease ran out)."""


async def _deliver(
    svc: Services,
    timer: Timer,
    worker: str,
    page_id: int,
    view: PageView,
    users: list[str],
    mode: str,
    delivered: dict[str, Any],
    errors: list[str],
) -> dict[str, Any]:
    """DM each user not yet reached (recorded one by one, so a resumed send skips them). The war-room line is
    an outbox row queued when the page is marked sent.

    The timer's claim is the page's fencing token: it is renewed before each DM (and by the dispatcher while
    the handler runs), and a worker that finds it taken stops (_ClaimLost) instead of sending on."""
    if mode == "dm":
        text, blocks = svc.render.page_dm(view)
        for user in users:
            if user in delivered:
                continue
            if not await renew(svc.db, timer.id, worker, svc.clock.now()):
                raise _ClaimLost(timer.id)
            try:
                dm = await svc.chat.open_dm(user)
                ts = await svc.chat.post(dm, text, blocks)
            except ChatError as exc:
                if exc.transient:
                    raise
                errors.append(f"{user}: {exc.method} {exc.error}")
                continue
            # `room`: whether the DM could name the war room; False ones are edited once it exists.
            delivered[user] = {"channel": dm, "ts": ts, "room": bool(view.channel_id)}
            await _record_dm(svc, page_id, user, delivered[user])
    return {k: v for k, v in delivered.items()}


async def _record_dm(svc: Services, page_id: int, user: str, sent: dict[str, Any]) -> None:
    """Record one DM Slack took on the page row, retrying through a short database outage."""
    for pause in (*RECORD_RETRIES, None):
        try:
            async with svc.db.session() as s:
                row = await s.get(Page, page_id, with_for_update=True)
                if row is not None:
                    row.dm = {**row.dm, user: sent}  # merged: another holder's records stay
            return
        except (DatabaseUnavailable, DBAPIError) as exc:
            if pause is None:
                raise
            log.warning("page %s: recording the DM to %s failed (%s); retrying", page_id, user, exc)
            await asyncio.sleep(pause)


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
        stale = _open_for(now, inc.updated_at)
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
        after = _open_for(now, inc.cycle_started_at or inc.declared_at)
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
            for u, dm in page.dm.items():
                if u.startswith("_") or not dm.get("ts"):  # _war_room, _invited: not DMs
                    continue
                text, blocks = svc.render.page_acked(page_view(svc, inc, page, now), user)
                payload = {"channel": dm["channel"], "ts": dm["ts"], "text": text, "blocks": blocks}
                await enqueue(
                    s, "update", channel=str(dm["channel"]), incident_id=inc.id, at=now, payload=payload
                )
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


async def _invite(svc: Services, channel: str, users: list[str]) -> None:
    # One by one: Slack refuses a whole invite with already_in_channel when any one user is a member.
    for user in users:
        try:
            await svc.chat.invite(channel, [user])
        except ChatError as exc:
            if exc.transient:
                raise
            if exc.error != "already_in_channel":
                log.warning("could not invite %s to %s: %s", user, channel, exc.error)


async def war_room_ready(svc: Services, incident_id: str) -> int:
    """The war room now exists: invite everyone paged so far and edit the page DMs that were sent without it
    ("war room not ready yet"). Returns how many DMs were edited."""
    now = svc.clock.now()
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id)
        if inc is None or not inc.channel_id or inc.status == "RESOLVED":
            return 0
        pages = [p for p in await pages_in_cycle(s, inc) if p.state != "failed"]
        channel = inc.channel_id
        views = {p.id: page_view(svc, inc, p, now) for p in pages}
    paged = sorted({u for p in pages for u in p.dm if not u.startswith("_")})
    if paged:
        await _invite(svc, channel, paged)
    edited = 0
    for p in pages:
        if p.acked_at is not None:
            continue
        fixed = dict(p.dm)
        for user, dm in p.dm.items():
            if user.startswith("_") or not isinstance(dm, dict) or dm.get("room", True):
                continue
            text, blocks = svc.render.page_dm(views[p.id])
            try:
                await svc.chat.update(dm["channel"], dm["ts"], text, blocks)
            except ChatError as exc:
                log.warning("could not update page DM with the war room: %s", exc)
                continue
            fixed[user] = {**dm, "room": True}
            edited += 1
        if fixed != p.dm:
            async with svc.db.session() as s:
                row = await s.get(Page, p.id)
                if row is not None:
                    row.dm = fixed
    return edited


async def queue_page_dm_closures(
    svc: Services, s: AsyncSession, inc: Incident, by: str, now: datetime, pir_url: str | None
) -> int:
    """On resolve, in its transaction: an edit of every page DM of the incident (all cycles) so none still
    says "needs you" with a live Acknowledge button; each keeps the incident's context and shows the final
    state (resolved when, by whom, the PIR link). Queued per DM channel, so it goes out after an earlier
    edit of the same DM (an acknowledgement) still waiting in the outbox. Returns how many were queued."""
    stmt = select(Page).where(Page.incident_id == inc.id).order_by(Page.cycle, Page.level)
    queued = 0
    for page in (await s.execute(stmt)).scalars():
        view = page_view(svc, inc, page, now, resolved_by=by, resolved_at=now, pir_url=pir_url)
        for user, dm in page.dm.items():
            if user.startswith("_") or not isinstance(dm, dict) or not dm.get("ts"):
                continue
            text, blocks = svc.render.page_resolved(view, by)
            payload = {"channel": dm["channel"], "ts": dm["ts"], "text": text, "blocks": blocks}
            await enqueue(
                s, "update", channel=str(dm["channel"]), incident_id=inc.id, at=now, payload=payload
            )
            queued += 1
    return queued


__all__ = [
    "acknowledge",
    "escalate_now",
    "finish",
    "fire_page",
    "fire_reminder",
    "page_view",
    "queue_page_dm_closures",
    "replan",
    "war_room_ready",
]
