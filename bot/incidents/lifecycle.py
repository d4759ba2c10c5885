"""The incident lifecycle after declare: template updates, status/severity/roles, notes, resolve/reopen,
the timeline (read in pages, captured from 📌 reactions) and stakeholder announcements.

Each flow is one transaction: the state, its timeline event, and its Slack effects (template edit, the line
in the war room, the stakeholder announcement) as outbox rows. After commit the outbox delivers them; a
transient Slack failure is retried by the worker, a permanent one becomes a `slack_failed` timeline event.
Nothing here knows Block Kit: handlers render the results.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import incident_store as service
from bot.bookkeeping import is_bookkeeping
from bot.context import Services
from bot.escalation.flows import queue_page_dm_closures, replan
from bot.event_text import SLACK, Line, Person, Room, render_line
from bot.incidents.closing import closed_key
from bot.models import Incident, OutboxMessage, TimelineEvent
from bot.outbox import deliver, enqueue
from bot.pir.flows import pir_url
from bot.playbook import SEVERITIES
from bot.ports import ChatError
from bot.priority import BACKGROUND
from bot.slack_text import esc
from bot.states import OPEN_STATUSES, IncidentStatus
from bot.statuspage.publish import on_resolved
from bot.timefmt import fmt_elapsed

log = logging.getLogger("incident_bot.lifecycle")

ROLES = {"commander": "Commander", "comms_lead": "Comms lead"}
MAX_FIELD = 2900  # a template section is "*Root Cause*\n" + this, under Slack's 3000
MAX_PINNED_TEXT = 4000
PIR_WINDOW_DAYS = (5, 7)  # seed 001: "Schedule: within 5-7 days of resolution"
ENHANCED_MONITORING_HOURS = (24, 48)
TEMPLATE_FIELDS = {
    "summary": "Summary",
    "impact": "Impact",
    "root_cause": "Root Cause",
    "next_steps": "Next Steps",
}

Role = Literal["commander", "comms_lead"]


# -- pure rules ---------------------------------------------------------------------------------------------


def transition_error(current: str, new: str) -> str | None:
    """Why `current -> new` is not allowed by `/incident status` or the update form, or None if it is."""
    if new == IncidentStatus.RESOLVED:
        return "Use `/incident resolve` to resolve: it checks the resolution criteria first."
    if current == IncidentStatus.RESOLVED:
        return "The incident is resolved. Use `/incident reopen` to work on it again."
    if new not in OPEN_STATUSES:
        return f"`{new[:20]}` is not a status: use one of {', '.join(OPEN_STATUSES)}."
    if new == IncidentStatus.NEW and current != IncidentStatus.NEW:
        return "NEW is only the starting status; pick INVESTIGATING, IDENTIFIED or MONITORING."
    return None


def status_options(current: str) -> list[str]:
    """Statuses the update form offers for an incident in `current` (RESOLVED is never a choice there)."""
    return [s for s in OPEN_STATUSES if s == current or transition_error(current, s) is None]


def clean_field(value: str | None) -> str:
    return (value or "").strip()


def neutralise_broadcasts(text: str) -> str:
    """User text we repost must not ping anyone, link anywhere or mention anything on the user's behalf:
    escaped whole (kept for callers of the old name)."""
    return esc(text)


@dataclass(frozen=True)
class ResolveCheck:
    """Seed 001's measurable criterion: monitoring for 30+ minutes (configurable) with no issues."""

    incident_id: str
    status: str
    monitoring_for: timedelta | None
    required: timedelta
    health: str = ""  # why the health gate refuses (a fresh check, the monitor's clean window); "" = ok

    @property
    def in_monitoring(self) -> bool:
        return self.status == IncidentStatus.MONITORING and self.monitoring_for is not None

    @property
    def time_met(self) -> bool:
        return self.in_monitoring and self.monitoring_for is not None and self.monitoring_for >= self.required

    @property
    def met(self) -> bool:
        return self.time_met and not self.health

    @property
    def remaining(self) -> timedelta:
        if not self.in_monitoring or self.monitoring_for is None:
            return self.required
        return max(self.required - self.monitoring_for, timedelta(0))

    def summary(self) -> str:
        health = f"; not healthy: {self.health}" if self.health else ""
        if not self.in_monitoring:
            return f"status is {self.status}, not MONITORING{health}"
        return f"MONITORING for {fmt_elapsed(self.monitoring_for)} of {fmt_elapsed(self.required)}{health}"


def resolve_check(inc: Incident, now: datetime, required: timedelta, health: str = "") -> ResolveCheck:
    since = inc.monitoring_at if inc.status == IncidentStatus.MONITORING else None
    return ResolveCheck(inc.id, inc.status, (now - since) if since else None, required, health)


def post_resolution_text(
    inc: Incident,
    *,
    by: str,
    now: datetime,
    forced: ResolveCheck | None,
    announce_channel: str | None,
    label: str,
) -> str:
    """The seed's post-resolution actions as a checklist, with the dates filled in."""
    lo, hi = ENHANCED_MONITORING_HOURS
    p_lo, p_hi = PIR_WINDOW_DAYS
    took = fmt_elapsed(now - (inc.cycle_started_at or inc.declared_at))
    drill = "[DRILL] " if inc.is_drill else ""
    lines = [f"{drill}✅ *{inc.id} resolved* by <@{by}> after {took} ({label})."]
    if forced is not None:
        lines.append(f"⚠️ Resolved without meeting the resolution criteria ({forced.summary()}).")
    notify = (
        f"the resolution was announced in {_channel_ref(announce_channel)}; tell anyone else affected"
        if announce_channel
        else "no announcement channel is configured, so tell them yourselves"
    )
    room = f"<#{inc.channel_id}>" if inc.channel_id else "the war room"
    lines += [
        "*Post-resolution checklist*",
        f"• 👀 *Monitoring*: enhanced monitoring for {lo}–{hi} h, until {_day(now + timedelta(hours=lo))}"
        f" – {_day(now + timedelta(hours=hi))} UTC. `/incident reopen` if it comes back.",
        "• 📝 *Documentation*: update the incident record (`/incident update`: impact, root cause, "
        "next steps).",
        f"• 📣 *Notification*: notify all stakeholders — {notify}.",
        f"• 🗄️ *Cleanup*: archive {room} once the review is scheduled.",
        f"• 🗓️ *Debrief*: schedule the post-incident review within {p_lo}–{p_hi} days, between "
        f"{now + timedelta(days=p_lo):%a %d %b} and {now + timedelta(days=p_hi):%a %d %b} (`/incident pir`).",
    ]
    return "\n".join(lines)


def _day(at: datetime) -> str:
    return f"{at:%a %d %b %H:%M}"


def _channel_ref(channel: str) -> str:
    return channel if channel.startswith("#") else f"<#{channel}>"


# -- results ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a flow did, and what to tell the person who asked."""

    ok: bool
    text: str
    incident_id: str | None = None
    changed: bool = False


@dataclass(frozen=True)
class TemplateEdit:
    summary: str
    impact: str
    root_cause: str
    next_steps: str
    severity: str
    status: str | None = None  # None: the form had no status field (a resolved incident)


@dataclass(frozen=True)
class ResolveResult:
    state: Literal["resolved", "blocked", "already", "missing"]
    incident_id: str
    text: str
    check: ResolveCheck | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("resolved", "blocked")


@dataclass(frozen=True)
class TimelineEntry:
    id: int
    at: datetime
    kind: str
    actor: str | None
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TimelinePage:
    incident_id: str
    entries: list[TimelineEntry]  # oldest first: the newest is last
    first_number: int  # 1-based position of entries[0] in the whole (visible) timeline
    total: int
    older_cursor: int | None  # the id of entries[0] when older entries exist
    tz: str | None = None
    all_kinds: bool = False  # bookkeeping entries included
    hidden: int = 0  # bookkeeping entries left out of this view


# -- flows --------------------------------------------------------------------------------------------------


class LifecycleFlows:
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def monitoring_minimum(self) -> timedelta:
        # time_scale shrinks every playbook duration in the fast sandbox; tests and production use 1.0.
        return self.svc.playbook.severities.monitoring_minimum * self.svc.settings.time_scale

    # -- template (the update form) ----------------------------------------------------------------------
    async def update_template(self, incident_id: str, user: str, edit: TemplateEdit) -> Outcome:
        now = self.svc.clock.now()
        if not edit.summary or edit.severity not in SEVERITIES:
            return Outcome(False, "A summary and a severity are required; nothing was changed.")
        async with self.svc.db.session() as s:
            inc = await service.get(s, incident_id, for_update=True)
            if inc is None:
                return Outcome(False, "That incident no longer exists.")
            new_status = edit.status if edit.status not in (None, inc.status) else None
            if new_status is not None and (err := transition_error(inc.status, new_status)):
                return Outcome(False, f"Nothing was changed: {err}", inc.id)
            edited = [
                label for name, label in TEMPLATE_FIELDS.items() if getattr(inc, name) != getattr(edit, name)
            ]
            before = {name: getattr(inc, name) for name in (*TEMPLATE_FIELDS, "status", "severity")}
            inc.summary, inc.impact = edit.summary, edit.impact
            inc.root_cause, inc.next_steps = edit.root_cause, edit.next_steps
            parts: list[str] = []
            if new_status is not None:
                parts.append(await self._set_status(s, inc, new_status, user, now, via="update form"))
            old_sev = inc.severity
            if edit.severity != inc.severity:
                parts.append(await self._set_severity(s, inc, edit.severity, user, now))
            if edited:
                parts.append(f"{_and(edited)} edited")
            inc.updated_at = now  # an update, even "no change", answers the update reminder
            await service.add_event(
                s,
                inc.id,
                "update",
                Line(
                    Person(user),
                    " updated the template" + (f": {', '.join(parts)}" if parts else " (no changes)"),
                ),
                at=now,
                actor=user,
                data={"edited": edited, "before": before},
            )
            await replan(self.svc, s, inc, reason="template updated")
            line = (
                "📝 " + (" · ".join(parts) if parts else "Template reviewed (no changes)") + f" by <@{user}>"
            )
            await self._template_and_line(s, inc, line, now)
            if inc.severity != old_sev:
                await self._announce_severity(s, inc, old_sev, now)
        await self._deliver(incident_id, fire_due=inc.severity != old_sev)
        return Outcome(True, f"Updated {incident_id}.", incident_id, changed=True)

    # -- status / severity / roles / notes ---------------------------------------------------------------
    async def set_status(self, incident_id: str, user: str, status: str) -> Outcome:
        now = self.svc.clock.now()
        async with self.svc.db.session() as s:
            inc = await service.get(s, incident_id, for_update=True)
            if inc is None:
                return Outcome(False, "That incident no longer exists.")
            if inc.status == status:
                return Outcome(True, f"{inc.id} is already {status}; nothing changed.", inc.id)
            if err := transition_error(inc.status, status):
                return Outcome(False, err, inc.id)
            line = await self._set_status(s, inc, status, user, now, via="command")
            inc.updated_at = now
            await replan(self.svc, s, inc, reason=f"status {status}")
            line = f"🔄 {line} by <@{user}>"
            if status in ANNOUNCED_STATUSES and inc.severity in ANNOUNCED_SEVERITIES:
                # Stakeholders of a major incident hear when the cause is known and when the fix is in.
                note = (
                    f"{_drill(inc)}{STATUS_ICON[status]} {inc.id} ({self._label(inc.severity)}) is {status}"
                )
                await self._announce(s, inc.id, Line(f"{note}: ", inc.summary, _room(inc)), now)
            if status == IncidentStatus.MONITORING:
                wait = self.monitoring_minimum()
                line += (
                    f". `/incident resolve` after {fmt_elapsed(wait)} with no issues ({now + wait:%H:%M} UTC)"
                )
            await self._template_and_line(s, inc, line, now)
        await self._deliver(incident_id)
        return Outcome(True, f"{incident_id}: status → {status}.", incident_id, changed=True)

    async def _set_status(
        self, s: AsyncSession, inc: Incident, status: str, user: str, now: datetime, *, via: str
    ) -> str:
        old = inc.status
        inc.status = status
        if status == IncidentStatus.MONITORING:
            inc.monitoring_at = now  # the resolution criterion counts from here
        elif old == IncidentStatus.MONITORING:
            inc.monitoring_at = None  # left monitoring (the fix did not hold): the count starts over
        await service.add_event(
            s,
            inc.id,
            "status",
            Line(f"Status {old} → {status} by ", Person(user)),
            at=now,
            actor=user,
            data={"from": old, "to": status, "via": via},
        )
        return f"Status → {status}"

    async def set_severity(self, incident_id: str, user: str, severity: str) -> Outcome:
        now = self.svc.clock.now()
        async with self.svc.db.session() as s:
            inc = await service.get(s, incident_id, for_update=True)
            if inc is None:
                return Outcome(False, "That incident no longer exists.")
            if inc.severity == severity:
                return Outcome(True, f"{inc.id} is already {self._label(severity)}; nothing changed.", inc.id)
            old = inc.severity
            line = await self._set_severity(s, inc, severity, user, now)
            await replan(self.svc, s, inc, reason=f"severity {old}→{severity}")
            await self._template_and_line(s, inc, f"⚠️ {line} by <@{user}>", now)
            await self._announce_severity(s, inc, old, now)
        await self._deliver(incident_id, fire_due=True)  # a raise can make ladder steps due at once
        return Outcome(True, f"{incident_id}: severity → {self._label(severity)}.", incident_id, changed=True)

    async def _set_severity(
        self, s: AsyncSession, inc: Incident, severity: str, user: str, now: datetime
    ) -> str:
        old = inc.severity
        inc.severity = severity
        text = f"Severity {self._label(old)} → {self._label(severity)}"
        data = {"from": old, "to": severity}
        await service.add_event(
            s, inc.id, "severity", Line(f"{text} by ", Person(user)), at=now, actor=user, data=data
        )
        return text

    async def _announce_severity(self, s: AsyncSession, inc: Incident, old: str, now: datetime) -> None:
        text = Line(
            f"{_drill(inc)}⚠️ {inc.id} severity {old} → {self._label(inc.severity)}: ", inc.summary, _room(inc)
        )
        await self._announce(s, inc.id, text, now)

    async def set_role(self, incident_id: str, user: str, role: Role, who: str) -> Outcome:
        now = self.svc.clock.now()
        title = ROLES[role]
        async with self.svc.db.session() as s:
            inc = await service.get(s, incident_id, for_update=True)
            if inc is None:
                return Outcome(False, "That incident no longer exists.")
            old = getattr(inc, role)
            if old == who:
                return Outcome(True, f"<@{who}> is already the {title.lower()} of {inc.id}.", inc.id)
            setattr(inc, role, who)
            said = Line(f"{title} → ", Person(who), " (set by ", Person(user), ")")
            line = "👤 " + render_line(said, SLACK)
            data = {"role": role, "from": old, "to": who}
            await service.add_event(s, inc.id, "role", said, at=now, actor=user, data=data)
            if inc.channel_id:
                # The new role holder belongs in the war room: an effect of this change, so it is queued
                # with it (a crash after commit still invites them).
                await enqueue(
                    s, "invite", channel=inc.channel_id, incident_id=inc.id, at=now, payload={"users": [who]}
                )
            await self._template_and_line(s, inc, line, now)
        await self._deliver(incident_id)
        return Outcome(True, f"{incident_id}: {title.lower()} is now <@{who}>.", incident_id, changed=True)

    async def note(self, incident_id: str, user: str, text: str) -> Outcome:
        now = self.svc.clock.now()
        async with self.svc.db.session() as s:
            inc = await service.get(s, incident_id)
            if inc is None:
                return Outcome(False, "That incident no longer exists.")
            # As typed, in the column and in data; each surface escapes it (bot/event_text.py).
            await service.add_event(s, inc.id, "note", text, at=now, actor=user, data={"text": text})
            if inc.channel_id:
                # A slash command is invisible to the room; repeat the note so everyone sees it.
                await self._post(s, inc, inc.channel_id, f"🗒️ Note from <@{user}>: {esc(text)}", now)
        await self._deliver(incident_id)
        return Outcome(True, f"Noted on the {incident_id} timeline.", incident_id, changed=True)

    async def record_command(self, incident_id: str, user: str, text: str | Line, **data: Any) -> None:
        now = self.svc.clock.now()
        async with self.svc.db.session() as s:
            await service.add_event(s, incident_id, "command", text, at=now, actor=user, data=data)

    # -- resolve / reopen --------------------------------------------------------------------------------
    async def resolve(
        self, incident_id: str, user: str, *, force: bool = False, reason: str = ""
    ) -> ResolveResult:
        health = await self._health(incident_id, user)
        now = self.svc.clock.now()
        async with self.svc.db.session() as s:
            inc = await service.get(s, incident_id, for_update=True)
            if inc is None:
                return ResolveResult("missing", incident_id, "That incident no longer exists.")
            if inc.status == IncidentStatus.RESOLVED:
                return ResolveResult("already", inc.id, f"{inc.id} is already resolved.")
            check = resolve_check(inc, now, self.monitoring_minimum(), health)
            if not check.met and not force:
                await service.add_event(
                    s,
                    inc.id,
                    "command",
                    Line(Person(user), f" asked to resolve; criteria not met ({check.summary()})"),
                    at=now,
                    actor=user,
                    data={"command": "resolve", "criteria_met": False, "health": health},
                )
                text = f"{inc.id} does not meet the resolution criteria yet."
                return ResolveResult("blocked", inc.id, text, check)
            forced = check if not check.met else None
            inc.status, inc.resolved_at, inc.updated_at = IncidentStatus.RESOLVED, now, now
            took = now - (inc.cycle_started_at or inc.declared_at)
            said = Line("Resolved by ", Person(user), f" after {fmt_elapsed(took)}")
            if forced is not None:
                said += f" without meeting the resolution criteria ({forced.summary()})"
                if reason:
                    said += f". Why: {clean_field(reason)[:300]}"
            data = {
                "forced": forced is not None,
                "forced_by": user if forced is not None else None,
                "reason": reason,
                "criteria": check.summary(),
                "health": health,
                "cycle": inc.cycle,
            }
            await service.add_event(s, inc.id, "resolved", said, at=now, actor=user, data=data)
            await replan(self.svc, s, inc, reason="resolved")  # drops the ladder, plans the PIR reminder
            checklist = post_resolution_text(
                inc,
                by=user,
                now=now,
                forced=forced,
                announce_channel=self.svc.settings.announce_channel,
                label=self._label(inc.severity),
            )
            await self._template_and_line(s, inc, checklist, now)
            announcement = Line(
                f"{_drill(inc)}✅ {inc.id} resolved after {fmt_elapsed(took)}: ", inc.summary, _room(inc)
            )
            await self._announce(
                s, inc.id, announcement, now, dedupe_key=f"{inc.id}:announce:resolved:{inc.cycle}"
            )
            # Offer the public "resolved" status-page update.
            await on_resolved(self.svc, s, inc, now)
            # No page left saying "needs you": each DM shows the outcome and keeps the incident's context.
            pir = pir_url(self.svc, inc.id, html=True)
            await queue_page_dm_closures(self.svc, s, inc, user, now, pir)
        await self._deliver(incident_id)
        # Registered at wiring: resolving a drill incident finishes (and reports) the drill.
        for hook in self.svc.dispatch.resolved_hooks:
            await hook(self.svc, incident_id, user)
        how = " (criteria overridden)" if forced is not None else ""
        return ResolveResult(
            "resolved", incident_id, f"✅ Resolved {incident_id}{how}. The checklist is in the channel."
        )

    async def _health(self, incident_id: str, user: str) -> str:
        """The resolve gates' objections ("" = none): registered at wiring, the monitor's health gate for an
        incident bound to its alert (bot.health.gate)."""
        objections = [await gate(self.svc, incident_id, user) for gate in self.svc.dispatch.resolve_gates]
        return "; ".join(o for o in objections if o)

    @staticmethod
    async def _war_room_archived(s: AsyncSession, inc: Incident) -> bool:
        stmt = select(TimelineEvent.id).where(
            TimelineEvent.incident_id == inc.id, TimelineEvent.dedupe_key == closed_key(inc)
        )
        return (await s.execute(stmt.limit(1))).first() is not None

    async def reopen(self, incident_id: str, user: str) -> Outcome:
        now = self.svc.clock.now()
        async with self.svc.db.session() as s:
            inc = await service.get(s, incident_id, for_update=True)
            if inc is None:
                return Outcome(False, "That incident no longer exists.")
            if inc.status != IncidentStatus.RESOLVED:
                text = f"Only a resolved incident can be reopened; {inc.id} is {inc.status}."
                return Outcome(False, text, inc.id)
            if await self._war_room_archived(s, inc):
                # Slack's docs for conversations.unarchive: bot tokens cannot unarchive a conversation. A
                # reopen here would send every line, invite and template edit into an archived channel.
                text = (
                    f"{inc.id}'s war room <#{inc.channel_id}> was archived when it closed, and Slack does not let"
                    " a bot unarchive a channel, so it is not reopened. If it is happening again, declare a new"
                    f" incident and mention {inc.id} in its summary."
                )
                return Outcome(False, text, inc.id)
            was = inc.resolved_at.isoformat() if inc.resolved_at else None
            # A new cycle: pages are unique per cycle, so the ladder starts again at L1 from now.
            inc.cycle += 1
            inc.cycle_started_at = now
            inc.status, inc.resolved_at, inc.monitoring_at, inc.updated_at = (
                IncidentStatus.INVESTIGATING,
                None,
                None,
                now,
            )
            inc.acknowledged_by = None  # the template must not show last cycle's acknowledgement as current
            await service.add_event(
                s,
                inc.id,
                "reopened",
                Line("Reopened by ", Person(user), f": back to INVESTIGATING (cycle {inc.cycle})"),
                at=now,
                actor=user,
                data={"cycle": inc.cycle, "was_resolved_at": was},
            )
            await replan(self.svc, s, inc, reason="reopened")
            line = f"🔁 Reopened by <@{user}>: status → INVESTIGATING; escalation restarts at L1."
            await self._template_and_line(s, inc, line, now)
            await self._announce(
                s, inc.id, Line(f"{_drill(inc)}🔁 {inc.id} reopened: ", inc.summary, _room(inc)), now
            )
        await self._deliver(incident_id, fire_due=True)
        return Outcome(
            True, f"Reopened {incident_id}: INVESTIGATING, paging again.", incident_id, changed=True
        )

    # -- timeline ----------------------------------------------------------------------------------------
    async def view_timeline(
        self, incident_id: str, viewer: str, *, page_size: int = 20, all_kinds: bool = False
    ) -> TimelinePage | None:
        """`/incident timeline`: the viewing is recorded (a "command" event), then the newest page."""
        said = Line(Person(viewer), " viewed the timeline")
        await self.record_command(incident_id, viewer, said, command="timeline")
        return await self.timeline(incident_id, viewer, page_size=page_size, all_kinds=all_kinds)

    async def timeline(
        self,
        incident_id: str,
        viewer: str,
        *,
        before: int | None = None,
        page_size: int = 20,
        all_kinds: bool = False,
    ) -> TimelinePage | None:
        async with self.svc.db.session() as s:
            if await service.get(s, incident_id) is None:
                return None
            rows = await service.events(s, incident_id, include_removed=True)
        hidden = 0
        if not all_kinds:
            kept = [e for e in rows if not is_bookkeeping(e.kind)]
            hidden = sum(not e.removed for e in rows) - sum(not e.removed for e in kept)
            rows = kept
        # Positions come from the full list, so a cursor stays valid even if its event was unpinned since.
        end = len(rows)
        if before is not None:
            end = next((i for i, e in enumerate(rows) if e.id == before), len(rows))
        visible = [e for e in rows[:end] if not e.removed]
        total = sum(not e.removed for e in rows)
        chunk = visible[-page_size:] if page_size > 0 else []
        older = len(visible) > len(chunk)
        tz = await self.svc.chat.user_tz(viewer)
        return TimelinePage(
            incident_id,
            [TimelineEntry(e.id, e.at, e.kind, e.actor, e.text, dict(e.data or {})) for e in chunk],
            first_number=len(visible) - len(chunk) + 1,
            total=total,
            older_cursor=chunk[0].id if older and chunk else None,
            tz=tz,
            all_kinds=all_kinds,
            hidden=hidden,
        )

    # -- timeline capture: 📌 reactions and joins ---------------------------------------------------------
    async def pin(self, channel: str, ts: str, by: str) -> bool:
        """Add a war-room message to the timeline once. True if this call added it (or brought it back)."""
        async with self.svc.db.session() as s:
            inc = await service.by_channel(s, channel)
            if inc is None:
                return False
            row = await _event_by_key(s, _pin_key(inc.id, ts))
            if row is not None:
                return _add_pinner(row, by)
            incident_id = inc.id
        # Reads only, outside any transaction: the entry is written in one go below.
        text, author, failed = "", None, None
        try:
            msg = await self.svc.chat.history_message(channel, ts)
        except ChatError as exc:
            msg, failed = None, exc
        if msg is not None:
            text = str(msg.get("text") or "")
            author = str(msg.get("user") or msg.get("bot_id") or "") or None
        link = await self.svc.chat.permalink(channel, ts)
        now = self.svc.clock.now()
        # Kept as Slack gave it (mrkdwn: its mentions, `&lt;` for a typed `<`); the timeline view shows it
        # escaped (bot/event_text.py), so its @channel and mentions never fire again.
        async with self.svc.db.session() as s:
            added = await service.add_event(
                s,
                incident_id,
                "pinned",
                text[:MAX_PINNED_TEXT] if msg is not None else "(message text unavailable)",
                at=_ts_time(ts) or now,  # the timeline shows when it was said, not when it was pinned
                actor=author,
                data={
                    "ts": ts,
                    "channel": channel,
                    "permalink": link,
                    "author": author,
                    "pinned_by": [by],
                    "pinned_at": now.isoformat(),
                },
                dedupe_key=_pin_key(incident_id, ts),
            )
            if not added:  # someone else pinned it at the same moment
                row = await _event_by_key(s, _pin_key(incident_id, ts))
                if row is not None:
                    _add_pinner(row, by)
        if failed is not None:
            await self._slack_failed(incident_id, failed, "Could not read the pinned message")
        return added

    async def unpin(self, channel: str, ts: str, by: str) -> bool:
        """The 📌 was taken off: the entry is marked removed once nobody's 📌 is left on the message."""
        async with self.svc.db.session() as s:
            inc = await service.by_channel(s, channel)
            if inc is None:
                return False
            row = await _event_by_key(s, _pin_key(inc.id, ts))
            if row is None or row.removed:
                return False
            pinners = [u for u in row.data.get("pinned_by", []) if u != by]
            row.data = {**row.data, "pinned_by": pinners}  # reassign: JSON columns track whole values only
            if not pinners:
                row.removed = True
            return row.removed

    async def joined(self, channel: str, user: str) -> bool:
        now = self.svc.clock.now()
        async with self.svc.db.session() as s:
            inc = await service.by_channel(s, channel)
            if inc is None:
                return False
            return await service.add_event(
                s,
                inc.id,
                "joined",
                Line(Person(user), " joined the war room"),
                at=now,
                actor=user,
                dedupe_key=f"{inc.id}:joined:{inc.cycle}:{user}",
            )

    # -- stakeholders ------------------------------------------------------------------------------------
    async def announce(self, incident_id: str, text: Line, *, dedupe_key: str | None = None) -> bool:
        """One line to ANNOUNCE_CHANNEL, if configured, in its own transaction."""
        async with self.svc.db.session() as s:
            queued = await self._announce(s, incident_id, text, self.svc.clock.now(), dedupe_key=dedupe_key)
        if queued:
            await self._deliver(incident_id)
        return queued

    async def _announce(
        self, s: AsyncSession, incident_id: str, said: Line, now: datetime, *, dedupe_key: str | None = None
    ) -> bool:
        """Queue the announcement in the caller's transaction. With a key, a repeat queues nothing. The
        same line is the Slack message (escaped, the room linked) and the timeline event."""
        target = self.svc.settings.announce_channel
        if not target:
            return False
        fresh = await service.add_event(
            s,
            incident_id,
            "announce",
            "Announced to stakeholders: " + said,
            at=now,
            data={"channel": target},
            dedupe_key=dedupe_key,
        )
        if fresh:
            text = render_line(said, SLACK)
            inc = await service.get(s, incident_id)
            blocks = self.svc.render.announcement(text, incident_id, inc.channel_id if inc else None)
            payload = {"text": text, "blocks": blocks, "priority": BACKGROUND}  # behind pages
            await enqueue(s, "post", channel=target, incident_id=incident_id, at=now, payload=payload)
        return fresh

    # -- helpers -----------------------------------------------------------------------------------------
    def _label(self, severity: str) -> str:
        return self.svc.playbook.severities.label(severity)

    async def _template_and_line(self, s: AsyncSession, inc: Incident, line: str, now: datetime) -> None:
        """Queue the in-place template edit, then the line saying what changed (same channel: in order)."""
        await enqueue(s, "template", channel=inc.channel_id or inc.id, incident_id=inc.id, at=now)
        if inc.channel_id:
            await self._post(s, inc, inc.channel_id, line, now)

    async def _post(self, s: AsyncSession, inc: Incident, channel: str, text: str, now: datetime) -> None:
        await enqueue(s, "post", channel=channel, incident_id=inc.id, at=now, payload={"text": text})

    async def _deliver(self, incident_id: str, *, fire_due: bool = False) -> None:
        """After commit: send the queued effects now; what fails transiently the worker retries."""
        await deliver(self.svc, incident_id=incident_id)
        if fire_due:
            # Steps due now (L1 after reopen, a raised severity) go out without waiting for the worker.
            await self.svc.kick(incident_id)

    async def _slack_failed(self, incident_id: str, exc: ChatError, what: str) -> None:
        log.warning("%s for %s: %s", what, incident_id, exc)
        async with self.svc.db.session() as s:
            await service.add_event(
                s,
                incident_id,
                "slack_failed",
                f"{what}: {exc.method} {exc.error}",
                at=self.svc.clock.now(),
                data={"method": exc.method, "error": exc.error},
            )


ANNOUNCED_STATUSES = ("IDENTIFIED", "MONITORING")
ANNOUNCED_SEVERITIES = ("P0", "P1")
STATUS_ICON = {"IDENTIFIED": "🔎", "MONITORING": "👀"}


async def invite_effect(svc: Services, row: OutboxMessage) -> dict[str, Any]:
    """The outbox's `invite` effect (registered at wiring): add `payload.users` to the row's channel.

    One by one: Slack refuses a whole invite with already_in_channel when any one user is a member."""
    users = [str(u) for u in row.payload.get("users", [])]
    channel = str(row.payload.get("to") or row.channel)  # `to`: a page's invite is ordered on its own key
    invited = []
    for user in users:
        try:
            await svc.chat.invite(channel, [user])
            invited.append(user)
        except ChatError as exc:
            if exc.transient:
                raise
            if exc.error not in ("already_in_channel", "cant_invite_self"):
                log.warning("could not invite %s to %s: %s", user, channel, exc.error)
    return {"users": users, "invited": invited}


async def announce_declared(svc: Services, incident_id: str) -> bool:
    """The declare announcement; idempotent, so provisioning retries may call it every time."""
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id)
    if inc is None:
        return False
    label = svc.playbook.severities.label(inc.severity)
    text = Line(f"{_drill(inc)}🚨 {inc.id} declared {label}: ", inc.summary, _room(inc))
    return await LifecycleFlows(svc).announce(
        incident_id, text, dedupe_key=f"{incident_id}:announce:declared"
    )


async def open_war_rooms(svc: Services, limit: int = 5) -> list[tuple[str, str]]:
    """(incident id, channel id) of the newest open incidents: where a misplaced command should go."""
    async with svc.db.session() as s:
        stmt = (
            select(Incident.id, Incident.channel_id)
            .where(Incident.status != IncidentStatus.RESOLVED, Incident.channel_id.is_not(None))
            .order_by(Incident.declared_at.desc())
            .limit(limit)
        )
        return [(str(i), str(c)) for i, c in (await s.execute(stmt)).all()]


def _room(inc: Incident) -> Line:
    return Line(" (", Room(inc.channel_id), ")") if inc.channel_id else Line()


def _drill(inc: Incident) -> str:
    return "[DRILL] " if inc.is_drill else ""


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _pin_key(incident_id: str, ts: str) -> str:
    return f"{incident_id}:pin:{ts[:40]}"


def _ts_time(ts: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (ValueError, OverflowError, OSError):
        return None


async def _event_by_key(s: AsyncSession, key: str) -> TimelineEvent | None:
    stmt = select(TimelineEvent).where(TimelineEvent.dedupe_key == key).with_for_update()
    return (await s.execute(stmt)).scalar_one_or_none()


def _add_pinner(row: TimelineEvent, by: str) -> bool:
    """A second 📌 adds nothing; a 📌 on an entry that had been unpinned brings it back."""
    pinners = list(row.data.get("pinned_by", []))
    if by not in pinners:
        row.data = {**row.data, "pinned_by": [*pinners, by]}
    if row.removed:
        row.removed = False
        return True
    return False


__all__ = [
    "OPEN_STATUSES",
    "LifecycleFlows",
    "Outcome",
    "ResolveCheck",
    "ResolveResult",
    "TemplateEdit",
    "TimelinePage",
    "announce_declared",
    "open_war_rooms",
    "status_options",
    "transition_error",
]
