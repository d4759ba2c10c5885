"""Declare an incident and provision its war room. DB first, Slack after commit, every step on the timeline."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import incident_store as service
from bot.context import Services
from bot.db import DatabaseUnavailable
from bot.escalation.flows import queue_war_room_ready, replan
from bot.event_text import Line, Room
from bot.incidents.card import IncidentCard
from bot.incidents.ids import channel_name, incident_id
from bot.incidents.lifecycle import announce_declared
from bot.models import Incident, OutboxMessage
from bot.oncall.service import war_room_oncall
from bot.outbox import deliver, enqueue, requeue, state_of
from bot.pir import links
from bot.ports import ChatError, Mark
from bot.states import IncidentStatus, OutboxState, ProvisionState
from bot.statuspage.publish import on_declared

log = logging.getLogger("incident_bot.declare")

MAX_NAME_ATTEMPTS = 20
# Declared by the bot itself: nobody is commander until a person takes it.
AUTOMATED_SOURCES = ("monitor", "alertmanager", "grafana")
# A war room's PIR bookmark must outlive the review (held within 5-7 days): signed for 90 days.
BOOKMARK_TTL = timedelta(days=90)
# How long a duplicate delivery waits for the war room's owner before answering with what it sees.
PROVISION_WAIT = 15.0


@dataclass(frozen=True)
class DeclareRequest:
    severity: str
    summary: str
    user: str
    impact: str = ""
    area: str | None = None
    request_key: str | None = None  # trigger_id / view id: a retry of the same request declares nothing new
    source: str = "slash"
    detected_at: datetime | None = None
    is_drill: bool = False
    problem_key: str | None = None


@dataclass(frozen=True)
class DeclareResult:
    state: Literal["ready", "failed", "duplicate", "rate_limited", "open_for_problem"]
    incident_id: str | None = None
    channel_id: str | None = None
    error: str | None = None

    @property
    def created(self) -> bool:
        return self.state in ("ready", "failed")


@dataclass(frozen=True)
class Declared:
    """What the person who declared (or retried the war room) is shown: the result and, when it names an
    incident, its card; `unavailable` when the card could not be read (the database went away after)."""

    result: DeclareResult
    card: IncidentCard | None = None
    unavailable: bool = False


class IncidentFlows:
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    # -- from Slack: one call per intention, with what the answer shows ------------------------------------
    async def declare_and_show(self, req: DeclareRequest) -> Declared:
        """Declare; when an incident was created, fire the steps due now (L1) rather than waiting for the
        worker's next poll; and the card the declarer's answer shows."""
        result = await self.declare(req)
        if result.created and result.incident_id:
            await self.svc.kick(result.incident_id)
        return await self.shown(result)

    async def retry_provision(self, incident: str) -> Declared:
        """The "Retry" button of a war room that failed: through the outbox claim (request_provision), never
        `provision` directly, so a double click or a setup still running builds no second war room."""
        return await self.shown(await self.request_provision(incident))

    async def shown(self, result: DeclareResult) -> Declared:
        if result.state in ("rate_limited", "open_for_problem") or result.incident_id is None:
            return Declared(result)
        try:
            inc = await service.load(self.svc.db, result.incident_id)
        except DatabaseUnavailable:
            return Declared(result, unavailable=True)
        assert inc is not None
        return Declared(result, IncidentCard.of(inc, self.svc.playbook))

    # -- declare ------------------------------------------------------------------------------------------
    async def declare(self, req: DeclareRequest) -> DeclareResult:
        now = self.svc.clock.now()
        async with self.svc.db.session() as s:
            if req.request_key and not await service.claim_request(s, req.request_key, now):
                existing = await service.request_ref(s, req.request_key)
                dup = True
            else:
                dup, existing = False, None
                if req.problem_key and (open_inc := await service.open_for_problem(s, req.problem_key)):
                    return DeclareResult("open_for_problem", open_inc.id, open_inc.channel_id)
                limit = self.svc.settings.declare_rate_limit
                if req.source in ("slash", "modal") and limit > 0:
                    recent = await service.declared_since(s, req.user, now - timedelta(minutes=1))
                    if recent >= limit:
                        return DeclareResult("rate_limited", error=f"at most {limit} declarations a minute")
                inc = await self._create(s, req, now)
                if req.request_key:
                    await service.set_request_ref(s, req.request_key, inc.id)
                existing = inc.id
        if dup:
            # Slack retried, or someone double-submitted: finish what the first one started, create nothing.
            # Never provision directly: the outbox row's claim is the war room's single owner.
            if existing is None:
                return DeclareResult("duplicate")
            result = await self.request_provision(existing)
            return DeclareResult("duplicate", existing, result.channel_id, result.error)
        assert existing is not None
        try:
            await deliver(self.svc, incident_id=existing)
            # A duplicate delivery may have claimed the row first: then it is the owner and this one waits.
            return await self._await_provision(existing, PROVISION_WAIT)
        except DatabaseUnavailable:
            # The incident is committed; its war room is an outbox row the worker builds when the database
            # is back. Saying "nothing was changed" here would make the declarer declare it twice.
            return DeclareResult("failed", existing, error="database unavailable; the war room follows")

    async def request_provision(self, incident: str, *, wait: float = PROVISION_WAIT) -> DeclareResult:
        """Ask for the war room to be (finished) built, by whoever owns its outbox row, and wait a little.

        Used by Slack's retries, double submits and the "Retry setup" button. A row that gave up is made
        pending again; a row another delivery holds is left to it: two owners would make two channels."""
        async with self.svc.db.session() as s:
            inc = await service.get(s, incident)
            if inc is None:
                return DeclareResult("failed", incident, error="incident not found")
            if inc.provision_state != ProvisionState.READY:
                await requeue(s, f"{incident}:provision", self.svc.clock.now())
        return await self._await_provision(incident, wait)

    async def _await_provision(self, incident: str, wait: float) -> DeclareResult:
        deadline = time.monotonic() + wait
        while True:
            await deliver(self.svc, incident_id=incident)
            result = await self._provision_result(incident)
            if result.state == "ready" or time.monotonic() >= deadline:
                return result
            if not await self._provision_in_flight(incident):
                return result
            await asyncio.sleep(0.05)  # the owner is mid-way (maybe in another process): let it finish

    async def _provision_in_flight(self, incident: str) -> bool:
        return await state_of(self.svc, f"{incident}:provision") in (OutboxState.PENDING, OutboxState.SENDING)

    async def _provision_result(self, incident: str) -> DeclareResult:
        async with self.svc.db.session() as s:
            row = await service.get(s, incident)
        if row is None:
            return DeclareResult("failed", incident, error="incident not found")
        if row.provision_state == ProvisionState.READY:
            return DeclareResult("ready", row.id, row.channel_id)
        return DeclareResult(
            "failed", row.id, row.channel_id, row.provision_error or "war room setup pending"
        )

    async def _create(self, s: AsyncSession, req: DeclareRequest, now: datetime) -> Incident:
        attempt = 1
        while await service.id_taken(s, incident_id(now, attempt)):
            attempt += 1
        while True:
            # Two declarations in the same second race for the id: the loser takes the next suffix.
            inc = self._new_incident(req, now, incident_id(now, attempt))
            try:
                async with s.begin_nested():
                    s.add(inc)
                    await s.flush()
                break
            except IntegrityError:
                attempt += 1
        sev = self.svc.playbook.severities.label(req.severity)
        await service.add_event(
            s,
            inc.id,
            "declared",
            f"Declared {sev}: {req.summary}",  # as typed; surfaces render from data, escaped
            at=now,
            actor=req.user,
            data={
                "severity": req.severity,
                "area": req.area,
                "source": req.source,
                "drill": req.is_drill,
                "summary": req.summary,
                "label": sev,
            },
        )
        await replan(self.svc, s, inc, reason="declared")
        # The war room is an outbox effect: if Slack is down now, the worker builds it when Slack returns.
        await enqueue(
            s, "provision", channel=inc.id, incident_id=inc.id, at=now, dedupe_key=f"{inc.id}:provision"
        )
        return inc

    @staticmethod
    def _new_incident(req: DeclareRequest, now: datetime, inc_id: str) -> Incident:
        return Incident(
            id=inc_id,
            severity=req.severity,
            status=IncidentStatus.NEW,
            summary=req.summary,
            impact=req.impact,
            root_cause="",
            next_steps="",
            area=req.area,
            commander=req.user if req.source not in AUTOMATED_SOURCES else None,
            declared_by=req.user,
            declared_at=now,
            detected_at=req.detected_at or now,
            updated_at=now,
            plan_version=0,
            cycle=1,
            is_drill=req.is_drill,
            source=req.source,
            problem_key=req.problem_key,
            provision_state=ProvisionState.PENDING,
        )

    # -- war room -----------------------------------------------------------------------------------------
    async def provision(self, incident: str) -> DeclareResult:
        """Create/finish the war room. Resumable: each finished step is recorded and skipped next time."""
        step = "load"
        try:
            async with self.svc.db.session() as s:
                inc = await service.get(s, incident)
                if inc is None:
                    return DeclareResult("failed", incident, error="incident not found")
                if inc.provision_state == ProvisionState.READY:
                    return DeclareResult("ready", inc.id, inc.channel_id)
            step = "conversations.create"
            resumed = inc.channel_id is not None  # an earlier try got this far, and maybe further
            if inc.channel_id is None:
                inc = await self._create_channel(inc)
            assert inc.channel_id is not None
            channel = inc.channel_id
            step = "conversations.invite"
            await self._once(inc, "invite", lambda: self._invite(inc))
            card = IncidentCard.of(inc, self.svc.playbook)
            step = "conversations.setTopic"
            await self._once(inc, "topic", lambda: self.svc.chat.set_topic(channel, card.topic()))
            step = "chat.postMessage"
            if inc.template_ts is None:
                inc = await self._post_template(inc, resumed=resumed)
            assert inc.template_ts is not None
            ts = inc.template_ts
            step = "pins.add"
            await self._once(inc, "pin", lambda: self._pin(channel, ts))
        except ChatError as exc:
            await self._failed(incident, step, exc)
            return DeclareResult(
                "failed", incident, self._channel_of(inc) if step != "load" else None, exc.error
            )
        now = self.svc.clock.now()
        async with self.svc.db.session() as s:
            row = await service.get(s, incident)
            assert row is not None
            row.provision_state, row.provision_error = ProvisionState.READY, None
            await service.add_event(
                s,
                incident,
                "war_room_ready",
                Line("War room ", Room(channel), " ready"),
                at=now,
                dedupe_key=f"{incident}:provision:ready",
            )
            # Everyone paged so far is invited, and page DMs sent before the room existed are edited to name it.
            await queue_war_room_ready(self.svc, s, row, now)
        await deliver(self.svc, incident_id=incident)
        # Stakeholders hear once the war room exists.
        await self._bookmarks(incident, channel)
        await announce_declared(self.svc, incident)
        # P0/P1: prompt for a public status-page update.
        await on_declared(self.svc, incident)
        return DeclareResult("ready", incident, channel)

    async def _bookmarks(self, incident: str, channel: str) -> None:
        """The war room's bookmarks bar: its timeline & PIR, then the configured links. Queued once."""
        now, st = self.svc.clock.now(), self.svc.settings
        pir = links.incident_url(st.public_url, incident, st.link_secret(), now, suffix="", ttl=BOOKMARK_TTL)
        marks = [("Timeline & PIR", pir, ":memo:"), *((t, u, ":link:") for t, u in st.war_room_bookmarks())]
        async with self.svc.db.session() as s:
            fresh = await service.add_event(
                s, incident, "slack", f"Bookmarked {len(marks)} links in the war room", at=now,
                data={"step": "bookmarks"}, dedupe_key=f"{incident}:provision:bookmarks",
            )  # fmt: skip
            if not fresh:
                return
            for title, link, emoji in marks:
                payload = {"title": title, "link": link, "emoji": emoji}
                await enqueue(s, "bookmark", channel=channel, incident_id=incident, at=now, payload=payload)
        await deliver(self.svc, incident_id=incident)

    async def refresh_template(self, incident: str) -> bool:
        """Edit the pinned template in place (through the outbox, so a Slack outage only delays it).
        True when it is already done."""

        async with self.svc.db.session() as s:
            inc = await service.get(s, incident)
            if inc is None:
                return False
            await enqueue(
                s, "template", channel=inc.channel_id or inc.id, incident_id=inc.id, at=self.svc.clock.now()
            )
        return await deliver(self.svc, incident_id=incident) > 0

    async def push_template(self, incident: str) -> None:
        """Render the incident as stored now onto the pinned template. Raises ChatError."""
        async with self.svc.db.session() as s:
            inc = await service.get(s, incident)
        if inc is None or not inc.channel_id or not inc.template_ts:
            return  # provisioning posts the current template itself
        card = IncidentCard.of(inc, self.svc.playbook)
        text, blocks = self.svc.render.template(card)
        await self.svc.chat.update(inc.channel_id, inc.template_ts, text, blocks)
        await self.svc.chat.set_topic(inc.channel_id, card.topic())

    @staticmethod
    def _channel_of(inc: Incident | None) -> str | None:
        return inc.channel_id if inc is not None else None

    async def _create_channel(self, inc: Incident) -> Incident:
        """Create the war room, exactly once even when Slack did the create and the answer was lost (a 5xx,
        a timeout, a crash before the id was stored): each name is claimed in the database before it is
        tried, and a `name_taken` on a name this incident claimed is its own room, adopted by posting the
        template to `#name` (the one way the Web API turns a name into an id). A name another incident
        claimed, or a channel the bot is not in, is passed over for the next suffix."""
        for attempt in range(1, MAX_NAME_ATTEMPTS + 1):
            name = channel_name(inc.id, drill=inc.is_drill, attempt=attempt)
            if not await self._claim_name(inc.id, name):
                continue  # another incident's room: INC-X-2's first name is INC-X's second
            try:
                channel_id = await self.svc.chat.create_channel(name)
            except ChatError as exc:
                if exc.error != "name_taken":
                    raise
                adopted = await self._adopt_channel(inc, name)
                if adopted is None:
                    continue
                return adopted
            return await self._record_channel(inc, channel_id, name)
        raise ChatError("conversations.create", "name_taken")

    async def _claim_name(self, incident: str, name: str) -> bool:
        """Claim a war-room name for this incident before asking Slack for it (a unique key, so the first
        incident to claim a name owns it for good). True when the name is this incident's."""
        key = f"war-room-name:{name}"
        async with self.svc.db.session() as s:
            fresh = await service.add_event(
                s, incident, "slack", f"Claimed the war room name #{name}", at=self.svc.clock.now(),
                data={"step": "claim", "name": name}, dedupe_key=key,
            )  # fmt: skip
            if fresh:
                return True
            return await service.event_incident(s, key) == incident

    async def _adopt_channel(self, inc: Incident, name: str) -> Incident | None:
        """`name` (claimed by this incident) is taken: when the bot is in that channel it is the room an
        earlier try created. The template goes there by name; Slack's answer names the channel's id."""
        text, blocks = self.svc.render.template(IncidentCard.of(inc, self.svc.playbook))
        try:
            channel_id, ts = await self.svc.chat.post_to_name(name, text, blocks)
        except ChatError as exc:
            if exc.error in ("channel_not_found", "not_in_channel", "is_archived"):
                return None  # somebody else's channel (or one closed since): not ours to move into
            raise
        log.warning("%s: #%s existed already (a create whose answer was lost); adopted it", inc.id, name)
        return await self._record_channel(inc, channel_id, name, template_ts=ts)

    async def _record_channel(
        self, inc: Incident, channel_id: str, name: str, *, template_ts: str | None = None
    ) -> Incident:
        now = self.svc.clock.now()
        async with self.svc.db.session() as s:
            row = await service.get(s, inc.id, for_update=True)
            assert row is not None
            if row.channel_id is not None and row.channel_id != channel_id:
                # Only reachable if a lease ran out mid-setup: keep the first room, close ours.
                log.warning("%s already has war room %s; archiving %s", inc.id, row.channel_id, channel_id)
                await self._archive_quietly(channel_id)
                return row
            row.channel_id, row.channel_name = channel_id, name
            data: dict[str, object] = {"method": "conversations.create", "channel": channel_id, "name": name}
            if template_ts is not None:
                data["adopted"] = True  # its create's answer was lost; found again by name
            await service.add_event(
                s, inc.id, "slack", f"Created war room #{name}", at=now, data=data,
                dedupe_key=f"{inc.id}:provision:channel",
            )  # fmt: skip
            if template_ts is not None and row.template_ts is None:
                row.template_ts = template_ts
                await self._template_posted(s, inc.id, template_ts, now)
            return row

    async def _template_posted(self, s: AsyncSession, incident: str, ts: str, now: datetime) -> None:
        await service.add_event(
            s, incident, "slack", "Posted the update template", at=now,
            data={"method": "chat.postMessage", "ts": ts}, dedupe_key=f"{incident}:provision:template",
        )  # fmt: skip

    async def _archive_quietly(self, channel: str) -> None:
        try:
            await self.svc.chat.archive(channel)
        except ChatError as exc:
            log.warning("could not archive orphan war room %s: %s", channel, exc.error)

    async def responders(self, inc: Incident) -> list[str]:
        """The declarer, whoever is primary on call now, and the routed team's on-call (bot.oncall)."""
        route = self.svc.playbook.routing.get(inc.area or "")
        oncall = await war_room_oncall(self.svc, route.team if route else None, self.svc.clock.now())
        users = [inc.declared_by, *oncall]
        return [u for u in dict.fromkeys(users) if u and u.startswith(("U", "W"))]

    async def _invite(self, inc: Incident) -> dict[str, object]:
        users = await self.responders(inc)
        if users:
            assert inc.channel_id is not None
            await self.svc.chat.invite(inc.channel_id, users)
        return {"users": users}

    async def _pin(self, channel: str, ts: str) -> None:
        try:
            await self.svc.chat.pin(channel, ts)
        except ChatError as exc:
            if exc.error != "already_pinned":
                raise

    async def _post_template(self, inc: Incident, *, resumed: bool) -> Incident:
        """Posted once: a resumed set-up (an earlier try may have posted it and died before recording it)
        looks for the template's mark in the new room first."""
        assert inc.channel_id is not None
        mark = Mark(f"template:{inc.id}")
        found = await self.svc.chat.find_marked(inc.channel_id, mark.key) if resumed else None
        if found is not None:
            ts = str(found["ts"])
        else:
            text, blocks = self.svc.render.template(IncidentCard.of(inc, self.svc.playbook))
            ts = await self.svc.chat.post(inc.channel_id, text, blocks, mark=mark)
        async with self.svc.db.session() as s:
            row = await service.get(s, inc.id)
            assert row is not None
            row.template_ts = ts
            await self._template_posted(s, inc.id, ts, self.svc.clock.now())
            return row

    async def _once(self, inc: Incident, step: str, action: object) -> None:
        key = f"{inc.id}:provision:{step}"
        async with self.svc.db.session() as s:
            if await service.has_event(s, key):
                return
        result = await action()  # type: ignore[operator]
        texts = {
            "invite": "Invited responders",
            "topic": "Set the channel topic",
            "pin": "Pinned the template",
        }
        async with self.svc.db.session() as s:
            await service.add_event(
                s,
                inc.id,
                "slack",
                texts.get(step, step),
                at=self.svc.clock.now(),
                data={"step": step, **(result if isinstance(result, dict) else {})},
                dedupe_key=key,
            )

    async def _failed(self, incident: str, step: str, exc: ChatError) -> None:
        log.warning("war room setup for %s failed at %s: %s", incident, step, exc.error)
        async with self.svc.db.session() as s:
            row = await service.get(s, incident)
            if row is None:
                return
            row.provision_state, row.provision_error = ProvisionState.FAILED, f"{step}: {exc.error}"
            await service.add_event(
                s,
                incident,
                "slack_failed",
                f"Slack {step} failed: {exc.error}",
                at=self.svc.clock.now(),
                data={"method": step, "error": exc.error},
            )


async def provision_effect(svc: Services, row: OutboxMessage) -> dict[str, str | None]:
    """The outbox's `provision` effect (registered at wiring): build or resume the war room."""
    result = await IncidentFlows(svc).provision(str(row.incident_id))
    if result.state == "failed" and result.error:
        raise ChatError("provision", result.error)
    return {"channel": result.channel_id}


async def template_effect(svc: Services, row: OutboxMessage) -> None:
    """The outbox's `template` effect: the pinned template shows the incident as stored now."""
    await IncidentFlows(svc).push_template(str(row.incident_id))
