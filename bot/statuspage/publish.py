"""Publishing on purpose: drafts, previews, permission checks, second-person approval, and every effect of a
published update (component states, timeline, war-room line, webhooks, Atlassian mirror, next reminder) in
the transaction that publishes it."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import incident_store as service
from bot.context import Services
from bot.models import Incident, StatusComponent, StatusIncident, StatusSubscriber, StatusUpdate, Timer
from bot.outbox import deliver, enqueue
from bot.states import IncidentStatus, PublicIncidentStatus, StatusUpdateState, TimerState
from bot.statuspage.config import PageConfig, load_config
from bot.statuspage.model import INCIDENT_LABEL, STATE_LABEL, Draft, worst
from bot.statuspage.render import update_text
from bot.statuspage.store import set_public_state, update_view
from bot.timefmt import fmt_elapsed

log = logging.getLogger("incident_bot.statuspage")

REMINDER = "status_reminder"
PROMPT_SEVERITIES = ("P0", "P1")
OPEN_ACTION = "statuspage_open"
PUBLISH_ACTION = "statuspage_publish"
DISCARD_ACTION = "statuspage_discard"


def config_of(svc: Services) -> PageConfig:
    return load_config(svc.settings.statuspage_file)


def admins(svc: Services) -> set[str]:
    return {u.strip() for u in svc.settings.statuspage_admins.split(",") if u.strip()}


def may_publish(svc: Services, inc: Incident, user: str) -> bool:
    """The commander, the comms lead, or a configured admin. Membership of the war room is not enough:
    what customers read is a decision, not a side effect of being in the channel."""
    return bool(user) and (user in (inc.commander, inc.comms_lead) or user in admins(svc))


def needs_approval(svc: Services, inc: Incident) -> bool:
    return svc.settings.statuspage_p0_approval and inc.severity == "P0"


def who_may(inc: Incident) -> str:
    roles = [f"<@{u}>" for u in (inc.commander, inc.comms_lead) if u]
    return " or ".join(dict.fromkeys(roles)) or "the commander"


@dataclass(frozen=True)
class Current:
    """What the compose form starts from: the public incident (if any) and the components' public states."""

    title: str
    status: str | None
    states: dict[str, str]


async def current_public(svc: Services, incident_id: str) -> Current:
    async with svc.db.session() as s:
        pub = (
            await s.execute(select(StatusIncident).where(StatusIncident.incident_id == incident_id))
        ).scalar_one_or_none()
        rows = {r.key: r.state for r in (await s.execute(select(StatusComponent))).scalars()}
    keys = config_of(svc).keys
    states = {k: rows.get(k, "operational") for k in keys}
    return Current(pub.title if pub else "", pub.status if pub else None, states)


@dataclass(frozen=True)
class DraftResult:
    state: Literal["created", "duplicate", "forbidden", "missing"]
    text: str
    update_id: int | None = None
    token: str | None = None
    incident: Incident | None = None


async def create_draft(
    svc: Services, incident_id: str, user: str, draft: Draft, *, request_key: str | None = None
) -> DraftResult:
    now = svc.clock.now()
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id)
        if inc is None:
            return DraftResult("missing", "That incident no longer exists.")
        if inc.is_drill:
            return DraftResult("forbidden", "Drills never reach the public status page.", incident=inc)
        if not may_publish(svc, inc, user):
            return DraftResult(
                "forbidden",
                f"Only {who_may(inc)} (or a status-page admin) can publish for {inc.id}.",
                incident=inc,
            )
        if request_key and not await service.claim_request(s, request_key, now):
            return DraftResult("duplicate", "That form was already submitted.", incident=inc)
        known = set(config_of(svc).keys)
        row = StatusUpdate(
            incident_id=inc.id,
            title=draft.title.strip(),
            status=draft.status,
            message=draft.message.strip(),
            components={k: v for k, v in draft.states.items() if k in known},
            state=StatusUpdateState.DRAFT,
            author=user,
            created_at=now,
            preview_token=secrets.token_urlsafe(32),
        )
        s.add(row)
        await s.flush()
        return DraftResult("created", "Draft saved.", row.id, row.preview_token, inc)


@dataclass(frozen=True)
class PublishResult:
    state: Literal[
        "published", "awaiting_approval", "already", "stale", "forbidden", "missing", "self_approval"
    ]
    text: str
    incident_id: str | None = None


async def _latest_published(s: AsyncSession, incident_id: str) -> datetime | None:
    stmt = select(func.max(StatusUpdate.published_at)).where(
        StatusUpdate.incident_id == incident_id, StatusUpdate.state == StatusUpdateState.PUBLISHED
    )
    return (await s.execute(stmt)).scalar_one_or_none()


async def publish(svc: Services, update_id: int, user: str) -> PublishResult:
    """The Publish (or Approve) button. Safe against double clicks and stale previews: the draft row is
    locked and its state decides."""
    async with svc.db.session() as s:
        result = await _publish_locked(svc, s, update_id, user, svc.clock.now())
    if result.incident_id and result.state in ("published", "awaiting_approval"):
        await deliver(svc, incident_id=result.incident_id)  # war-room line, webhooks, Atlassian
    return result


async def _publish_locked(
    svc: Services, s: AsyncSession, update_id: int, user: str, now: datetime
) -> PublishResult:
    stmt = select(StatusUpdate).where(StatusUpdate.id == update_id)
    if svc.db.dialect == "postgresql":
        stmt = stmt.with_for_update()
    u = (await s.execute(stmt)).scalar_one_or_none()
    if u is None or u.incident_id is None:
        return PublishResult(
            "missing", "That preview is out of date: compose again with `/incident statuspage`."
        )
    inc = await service.get(s, u.incident_id, for_update=True)
    if inc is None:
        return PublishResult("missing", "That incident no longer exists.")
    if u.state == StatusUpdateState.PUBLISHED:
        return PublishResult("already", "That update is already published.", inc.id)
    if u.state == StatusUpdateState.DISCARDED:
        return PublishResult("stale", "That draft was discarded.", inc.id)
    if not may_publish(svc, inc, user):
        text = f"Only {who_may(inc)} (or a status-page admin) can publish for {inc.id}."
        return PublishResult("forbidden", text, inc.id)
    latest = await _latest_published(s, inc.id)
    if latest is not None and latest > u.created_at:
        u.state = StatusUpdateState.DISCARDED
        return PublishResult(
            "stale",
            "A newer public update was published after this preview; nothing was sent. "
            "Run `/incident statuspage` to write the next one.",
            inc.id,
        )
    if needs_approval(svc, inc):
        if u.state == StatusUpdateState.DRAFT:
            u.state = StatusUpdateState.AWAITING_APPROVAL
            await _ask_approval(svc, s, inc, u, now)
            text = "P0: a second person must approve this update. I asked in the war room."
            return PublishResult("awaiting_approval", text, inc.id)
        if user == u.author:
            text = "A second person must approve: someone other than the author."
            return PublishResult("self_approval", text, inc.id)
        u.approved_by = user
    await _publish(svc, s, inc, u, user, now)
    return PublishResult(
        "published", f"📣 Published to the status page: {svc.settings.public_url}/status", inc.id
    )


async def discard(svc: Services, update_id: int, user: str) -> str:
    async with svc.db.session() as s:
        u = await s.get(StatusUpdate, update_id)
        if u is None or u.state not in (StatusUpdateState.DRAFT, StatusUpdateState.AWAITING_APPROVAL):
            return "Nothing to discard."
        if user != u.author:
            inc = await service.get(s, u.incident_id or "")
            if inc is None or not may_publish(svc, inc, user):
                return "Only its author, the commander or the comms lead can discard this draft."
        u.state = StatusUpdateState.DISCARDED
    return "Draft discarded; nothing was published."


async def _ask_approval(
    svc: Services, s: AsyncSession, inc: Incident, u: StatusUpdate, now: datetime
) -> None:
    if not inc.channel_id:
        return
    text = update_text(u.title, update_view(u, config_of(svc), at=now))
    quoted = "\n".join(f"> {_mrkdwn(line)}" for line in text.splitlines())
    blocks = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"🔐 <@{u.author}> wants to publish this P0 status-page update. A second person "
                f"({who_may(inc)} or an admin) must approve:\n{quoted}"[:3000],
            },
        },
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": PUBLISH_ACTION,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve and publish"},
                    "value": str(u.id),
                }
            ],
        },
    ]
    await enqueue(
        s,
        "post",
        channel=inc.channel_id,
        incident_id=inc.id,
        at=now,
        payload={"text": f"Approval needed for a P0 status-page update by <@{u.author}>", "blocks": blocks},
        dedupe_key=f"status:{u.id}:approval",
    )


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def _publish(
    svc: Services, s: AsyncSession, inc: Incident, u: StatusUpdate, user: str, now: datetime
) -> None:
    config = config_of(svc)
    pub = (
        await s.execute(select(StatusIncident).where(StatusIncident.incident_id == inc.id))
    ).scalar_one_or_none()
    impact = worst(u.components.values())
    if pub is None:
        pub = StatusIncident(
            incident_id=inc.id, title=u.title, status=u.status, impact=impact, created_at=now
        )
        s.add(pub)
        await s.flush()
    pub.title, pub.status = u.title, u.status
    pub.impact = worst((pub.impact, impact))
    pub.resolved_at = now if u.status == PublicIncidentStatus.RESOLVED else None
    for key, state in u.components.items():
        if config.component(key) is not None:
            await set_public_state(s, key, state, now)
    u.state, u.published_at, u.status_incident_id = StatusUpdateState.PUBLISHED, now, pub.id
    affected = ", ".join(
        f"{c.name} ({STATE_LABEL[u.components[c.key]].lower()})"
        for c in config.components
        if c.key in u.components and u.components[c.key] != "operational"
    )
    approved = f", approved by <@{u.approved_by}>" if u.approved_by else ""
    line = f"{INCIDENT_LABEL[u.status]} · {u.title}: {u.message}" + (f" [{affected}]" if affected else "")
    await service.add_event(
        s,
        inc.id,
        "public_update",
        line[:4000],
        at=now,
        actor=user,
        data={
            "update_id": u.id,
            "status": u.status,
            "components": u.components,
            "approved_by": u.approved_by,
        },
        dedupe_key=f"{inc.id}:public_update:{u.id}",
    )
    if inc.channel_id:
        await enqueue(
            s,
            "post",
            channel=inc.channel_id,
            incident_id=inc.id,
            at=now,
            payload={
                "text": f"📣 Public update published by <@{u.author}>{approved}: *{INCIDENT_LABEL[u.status]}* · "
                f"{_mrkdwn(u.title)} (<{svc.settings.public_url}/status|status page>)"
            },
        )
    subs = (await s.execute(select(StatusSubscriber).where(StatusSubscriber.active.is_(True)))).scalars()
    for sub in subs:
        await enqueue(
            s,
            "status_webhook",
            channel=f"status-webhook:{sub.id}",
            incident_id=inc.id,
            at=now,
            payload={"subscriber_id": sub.id, "update_id": u.id},
            dedupe_key=f"status:{u.id}:webhook:{sub.id}",
        )
    if svc.settings.statuspage_atlassian_page_id:
        await enqueue(
            s,
            "status_atlassian",
            channel="status-atlassian",
            incident_id=inc.id,
            at=now,
            payload={"update_id": u.id},
            dedupe_key=f"status:{u.id}:atlassian",
        )
    if u.status != PublicIncidentStatus.RESOLVED:
        cadence = _scaled(svc, svc.playbook.severities[inc.severity].update_cadence)
        if cadence:
            schedule_reminder(s, inc.id, now + cadence, after=now)


def _scaled(svc: Services, td: timedelta | None) -> timedelta | None:
    return td * svc.settings.time_scale if td is not None else None


def schedule_reminder(
    s: AsyncSession, incident_id: str, due: datetime, *, after: datetime, n: int = 1
) -> None:
    """A public-update reminder. Its incident id lives in `data`, not the column, so the ladder's re-plans
    (which drop the incident's pending timers) leave it alone; it checks for itself whether it is still due."""
    s.add(
        Timer(
            incident_id=None,
            kind=REMINDER,
            step=f"public-{n}",
            due_at=due,
            plan_version=0,
            data={"incident": incident_id, "after": after.isoformat(), "n": n},
        )
    )


def _open_button(incident_id: str, label: str, *, resolved: bool = False) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": OPEN_ACTION,
                "style": "primary",
                "text": {"type": "plain_text", "text": label},
                "value": f"{incident_id}|resolved" if resolved else incident_id,
            }
        ],
    }


async def on_declared(svc: Services, incident_id: str) -> None:
    """Once the war room exists: P0/P1 prompt the commander to publish within the severity's response target
    (a button, through the outbox), and a reminder is armed for that target. Idempotent (provisioning retries)."""
    now = svc.clock.now()
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id)
        if inc is None or not inc.channel_id or inc.severity not in PROMPT_SEVERITIES or inc.is_drill:
            return
        if not await service.claim_request(s, f"status:{inc.id}:prompt", now):
            return
        target = _scaled(svc, svc.playbook.severities[inc.severity].response_target) or timedelta(minutes=15)
        who = f"<@{inc.commander}>" if inc.commander else "Commander"
        text = (
            f"📣 {who}: {inc.severity} affects customers. Publish a public status-page update within "
            f"{fmt_elapsed(target)} (by {inc.declared_at + target:%H:%M} UTC). Nothing is published automatically."
        )
        blocks = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            _open_button(inc.id, "Write public update"),
        ]
        await enqueue(
            s,
            "post",
            channel=inc.channel_id,
            incident_id=inc.id,
            at=now,
            payload={"text": text, "blocks": blocks},
            dedupe_key=f"status:{inc.id}:prompt",
        )
        schedule_reminder(s, inc.id, inc.declared_at + target, after=inc.declared_at)
    await deliver(svc, incident_id=incident_id)


async def on_resolved(svc: Services, s: AsyncSession, inc: Incident, now: datetime) -> None:
    """In resolve's transaction: when customers were told about this incident, offer the "resolved" update."""
    pub = (
        await s.execute(select(StatusIncident).where(StatusIncident.incident_id == inc.id))
    ).scalar_one_or_none()
    if pub is None or pub.status == PublicIncidentStatus.RESOLVED or not inc.channel_id:
        return
    text = "📣 Customers were told about this incident. Publish the *resolved* update on the status page:"
    await _offer(
        s,
        inc,
        now,
        text,
        _open_button(inc.id, "Publish “resolved”", resolved=True),
        dedupe_key=f"status:{inc.id}:resolved-offer:{inc.cycle}",
    )


async def _offer(
    s: AsyncSession,
    inc: Incident,
    now: datetime,
    text: str,
    button: dict[str, Any],
    dedupe_key: str | None = None,
) -> None:
    """A war-room line with the button that opens the public-update modal (an outbox row, this transaction)."""
    await enqueue(
        s,
        "post",
        channel=inc.channel_id or inc.id,  # callers check the war room exists
        incident_id=inc.id,
        at=now,
        payload={
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}, button],
        },
        dedupe_key=dedupe_key,
    )


async def fire_status_reminder(svc: Services, timer: Timer, worker: str) -> None:

    now = svc.clock.now()
    incident_id = str(timer.data.get("incident", ""))
    after = datetime.fromisoformat(str(timer.data.get("after")))
    n = int(timer.data.get("n", 1))
    async with svc.db.session() as s:
        t = await s.get(Timer, timer.id)
        if t is None or t.claimed_by != worker:
            return
        inc = await service.get(s, incident_id)
        latest = await _latest_published(s, incident_id) if inc else None
        pub = (
            await s.execute(select(StatusIncident).where(StatusIncident.incident_id == incident_id))
        ).scalar_one_or_none()
        superseded = latest is not None and latest > after
        finished = pub is not None and pub.status == PublicIncidentStatus.RESOLVED
        if inc is None or superseded or finished or (inc.status == IncidentStatus.RESOLVED and pub is None):
            t.state, t.fired_at, t.last_error = TimerState.DROPPED, now, "no longer due"
            return
        t.state, t.fired_at = TimerState.DONE, now
        cadence = _scaled(svc, svc.playbook.severities[inc.severity].update_cadence)
        if cadence and inc.status != IncidentStatus.RESOLVED:
            schedule_reminder(s, inc.id, now + cadence, after=after, n=n + 1)
        who = f"<@{inc.commander}>" if inc.commander else "Commander"
        since = (
            "customers have heard nothing yet"
            if latest is None
            else f"last public update {fmt_elapsed(now - latest)} ago"
        )
        text = f"⏰ Public update due, {who}: {since}."
        await service.add_event(
            s, inc.id, "reminder", f"Public update due: {since}", at=now, data={"public": n}
        )
        if inc.channel_id:
            await _offer(s, inc, now, text, _open_button(inc.id, "Write public update"))
    await deliver(svc, incident_id=incident_id)
