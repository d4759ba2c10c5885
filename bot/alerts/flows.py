"""Store a webhook notification, then turn it into incident effects.

`store` runs before the sender gets its 2xx (so a crash after the answer loses nothing); `process` runs
after it in a tracked task, and the worker's `alerts_tick` picks up whatever a dead process left behind.
Processing is one transaction per notification (alert rows, timeline, war-room posts as outbox rows, status
changes, the notification marked done): a retry after a crash repeats nothing. Declarations go through
IncidentFlows.declare (MTTD from the alert's startsAt) before that transaction, so the transaction finds the
new incident like any open one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import incident_store as service
from bot import timefmt
from bot.alerts.payload import AlertIn, Notification, parse
from bot.alerts.present import SOURCE_NAMES, alert_line, esc, notification_message, plain_line
from bot.alerts.routing import AlertPolicy, Route, load_policy
from bot.context import Services
from bot.escalation.flows import replan
from bot.incidents.flows import DeclareRequest, IncidentFlows
from bot.incidents.lifecycle import LifecycleFlows
from bot.models import Alert, AlertNotification, Incident
from bot.outbox import deliver, enqueue
from bot.states import AlertNotificationState, AlertStatus, IncidentStatus

log = logging.getLogger("incident_bot.alerts")

BOT_USER = "incident-bot"
LEASE = timedelta(seconds=60)  # a 'processing' claim older than this belongs to a dead process
WORKER_GRACE = timedelta(seconds=10)  # the web process handles fresh ones itself
MAX_ATTEMPTS = 5
UNATTACHED = "-"


def policy(svc: Services) -> AlertPolicy:
    cache = svc.__dict__.setdefault("_alert_policy", {})
    path = svc.settings.alerts_file
    if path not in cache:
        cache[path] = load_policy(path)
    return cache[path]  # type: ignore[no-any-return]


def group_problem(source: str, group_key: str) -> str:
    return f"alert:{source[:2]}:{hashlib.sha256(group_key.encode()).hexdigest()[:40]}"


# -- store (before the 2xx) -----------------------------------------------------------------------------


async def store(svc: Services, n: Notification, body: bytes) -> int:
    now = svc.clock.now()
    async with svc.db.session() as s:
        row = AlertNotification(
            source=n.source,
            received_at=now,
            body=body.decode("utf-8"),
            group_key=n.group_key,
            status=n.status,
            alert_count=len(n.alerts),
            state=AlertNotificationState.PENDING,
            attempts=0,
            outcome={},
        )
        s.add(row)
        await s.flush()
        nid = int(row.id)
    for a in n.alerts:
        svc.metrics.alerts_received.labels(source=n.source, status=a.status).inc()
    return nid


# -- process (after the 2xx) ----------------------------------------------------------------------------


async def _claim(svc: Services, nid: int) -> bool:
    now = svc.clock.now()
    stmt = (
        update(AlertNotification)
        .where(
            AlertNotification.id == nid,
            AlertNotification.attempts < MAX_ATTEMPTS,
            or_(
                AlertNotification.state == AlertNotificationState.PENDING,
                and_(
                    AlertNotification.state == AlertNotificationState.PROCESSING,
                    AlertNotification.claimed_at < now - LEASE,
                ),
            ),
        )
        .values(
            state=AlertNotificationState.PROCESSING, claimed_at=now, attempts=AlertNotification.attempts + 1
        )
        .execution_options(synchronize_session=False)
    )
    async with svc.db.session() as s:
        return bool((await s.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def process(svc: Services, nid: int) -> dict[str, Any] | None:
    """Process one stored notification (once). Returns its outcome, None when someone else has it."""
    # One notification at a time per process: two for the same group must not both declare.
    lock = svc.__dict__.setdefault("_alerts_lock", asyncio.Lock())
    async with lock:
        if not await _claim(svc, nid):
            return None
        try:
            return await _process(svc, nid)
        except Exception as exc:
            log.exception("alert notification %s failed", nid)
            async with svc.db.session() as s:
                row = await s.get(AlertNotification, nid)
                if row is not None:
                    row.error = f"{type(exc).__name__}: {exc}"[:2000]
                    row.state = (
                        AlertNotificationState.PENDING
                        if row.attempts < MAX_ATTEMPTS
                        else AlertNotificationState.FAILED
                    )
            return None


@dataclass
class _Change:
    inc: Incident
    new: list[Alert] = field(default_factory=list)
    refired: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    repeats: int = 0
    flap: bool = False
    auto_resolve: bool = False
    firing_before: bool = False


class _Lookup:
    """Per-transaction caches: a 500-alert body must not cost 500 queries per question."""

    def __init__(self, s: AsyncSession, source: str, alerts: Sequence[AlertIn]) -> None:
        self.s = s
        self.source = source
        self.fps = sorted({a.fingerprint for a in alerts})
        self.rows: dict[tuple[str, str], Alert] = {}
        self.by_fp: dict[str, list[Alert]] = {}
        self.incidents: dict[str, Incident | None] = {}
        self.problems: dict[str, Incident | None] = {}

    async def load(self) -> None:
        for i in range(0, len(self.fps), 500):
            stmt = select(Alert).where(
                Alert.source == self.source, Alert.fingerprint.in_(self.fps[i : i + 500])
            )
            for row in (await self.s.execute(stmt.order_by(Alert.id))).scalars():
                self.add(row)

    def add(self, row: Alert) -> None:
        self.rows[(row.fingerprint, row.scope)] = row
        self.by_fp.setdefault(row.fingerprint, []).append(row)

    async def incident(self, incident_id: str) -> Incident | None:
        if incident_id not in self.incidents:
            self.incidents[incident_id] = await service.get(self.s, incident_id)
        return self.incidents[incident_id]

    async def resolved_for(self, problem: str, since: datetime) -> Incident | None:
        """The incident of this problem resolved at or after `since`, if any."""
        key = f"resolved:{problem}"
        if key not in self.problems:
            stmt = (
                select(Incident)
                .where(
                    Incident.problem_key == problem,
                    Incident.status == IncidentStatus.RESOLVED,
                    Incident.resolved_at >= since,
                )
                .order_by(Incident.resolved_at.desc())
                .limit(1)
            )
            inc = (await self.s.execute(stmt)).scalar_one_or_none()
            self.problems[key] = inc
            if inc is not None:
                self.incidents[inc.id] = inc
        return self.problems[key]

    async def open_for(self, problem: str) -> Incident | None:
        if problem not in self.problems:
            inc = await service.open_for_problem(self.s, problem)
            self.problems[problem] = inc
            if inc is not None:
                self.incidents[inc.id] = inc
        return self.problems[problem]


@dataclass(frozen=True)
class _Target:
    kind: str  # attach | flap | declare | record
    incident: Incident | None = None
    problem: str | None = None


async def _target(
    look: _Lookup, n: Notification, a: AlertIn, r: Route, pol: AlertPolicy, now: datetime
) -> _Target:
    earlier = look.by_fp.get(a.fingerprint, [])
    # 1. The alert already belongs to an open incident: it stays there (repeats, resolve, re-fire).
    for row in reversed(earlier):
        if (
            row.incident_id
            and (inc := await look.incident(row.incident_id))
            and inc.status != IncidentStatus.RESOLVED
        ):
            return _Target("attach", inc)
    if r.action != "record":
        # 2. The problem the rule names (the Factory monitor's), then 3. the sender's group.
        for problem in (r.problem, group_problem(n.source, n.group_key)):
            if problem and (inc := await look.open_for(problem)):
                return _Target("attach", inc)
    # 4. Flapping: it (or its group/problem) was on an incident resolved moments ago: back there, no new one.
    for row in reversed(earlier):
        if row.incident_id and (inc := await look.incident(row.incident_id)):
            if inc.resolved_at and now - inc.resolved_at <= pol.flap_damping:
                return _Target("flap", inc)
    if r.action == "declare" and a.firing:
        for problem in (r.problem, group_problem(n.source, n.group_key)):
            if problem and (inc := await look.resolved_for(problem, now - pol.flap_damping)):
                return _Target("flap", inc)
    if r.action == "declare" and a.firing:
        return _Target("declare", problem=r.problem or group_problem(n.source, n.group_key))
    return _Target("record")


async def _process(svc: Services, nid: int) -> dict[str, Any]:
    async with svc.db.session() as s:
        stored = await s.get(AlertNotification, nid)
        assert stored is not None
        source, body = stored.source, stored.body
    n = parse(source, body.encode("utf-8"))
    pol = policy(svc)
    routes = [pol.route(a.labels) for a in n.alerts]
    now = svc.clock.now()

    # Phase 1: which groups need a new incident (read only).
    wanted: dict[str, tuple[Route, list[AlertIn]]] = {}
    async with svc.db.session() as s:
        look = _Lookup(s, n.source, n.alerts)
        await look.load()
        for a, r in zip(n.alerts, routes, strict=True):
            t = await _target(look, n, a, r, pol, now)
            if t.kind == "declare" and t.problem:
                wanted.setdefault(t.problem, (r, []))[1].append(a)
    for problem, (route, alerts) in wanted.items():
        await _declare(svc, n, problem, route, alerts)

    # Phase 2: everything else, in one transaction.
    now = svc.clock.now()
    changes: dict[str, _Change] = {}
    counts = {"new": 0, "repeats": 0, "resolved": 0, "refired": 0, "recorded": 0, "unmatched": 0}
    async with svc.db.session() as s:
        look = _Lookup(s, n.source, n.alerts)
        await look.load()
        for a, r in zip(n.alerts, routes, strict=True):
            t = await _target(look, n, a, r, pol, now)
            inc = t.incident if t.kind in ("attach", "flap") else None
            change = None
            if inc is not None:
                change = changes.get(inc.id)
                if change is None:
                    change = changes[inc.id] = _Change(inc, firing_before=await _any_firing(s, inc.id))
                change.flap |= t.kind == "flap"
                change.auto_resolve |= r.auto_resolve
            what = await _apply(s, look, n, a, r, t, inc, now)
            svc.metrics.alerts_routed.labels(rule=r.rule, action=t.kind).inc()
            counts["unmatched"] += not r.matched
            counts["recorded"] += inc is None
            if what in ("repeat", "repeat_resolved"):
                svc.metrics.alerts_deduped.labels(source=n.source).inc()
                counts["repeats"] += 1
            else:
                counts[what] += 1
            if change is not None:
                row = look.rows[(a.fingerprint, inc.id if inc else UNATTACHED)]
                if what == "new":
                    (change.resolved if row.status == AlertStatus.RESOLVED else change.new).append(row)
                elif what == "refired":
                    change.refired.append(row)
                elif what == "resolved":
                    change.resolved.append(row)
                else:
                    change.repeats += 1
        await s.flush()
        auto_resolve = []
        for change in changes.values():
            if await _effects(svc, s, n, nid, change, now):
                auto_resolve.append(change.inc.id)
        stored = await s.get(AlertNotification, nid)
        assert stored is not None
        outcome = {**counts, "incidents": sorted(changes), "declared": sorted(wanted)}
        stored.state, stored.processed_at, stored.outcome, stored.error = (
            AlertNotificationState.DONE,
            now,
            outcome,
            None,
        )
    for incident_id in changes:
        await deliver(svc, incident_id=incident_id)
    for incident_id in auto_resolve:
        await LifecycleFlows(svc).resolve(incident_id, BOT_USER, force=True)
    return outcome


async def _any_firing(s: AsyncSession, incident_id: str) -> bool:
    stmt = (
        select(Alert.id).where(Alert.incident_id == incident_id, Alert.status == AlertStatus.FIRING).limit(1)
    )
    return (await s.execute(stmt)).first() is not None


async def _apply(
    s: AsyncSession,
    look: _Lookup,
    n: Notification,
    a: AlertIn,
    r: Route,
    t: _Target,
    inc: Incident | None,
    now: datetime,
) -> str:
    """Write one alert. Returns new | repeat | refired | resolved | repeat_resolved."""
    scope = inc.id if inc is not None else UNATTACHED
    row = look.rows.get((a.fingerprint, scope))
    if row is None:
        row = Alert(
            source=n.source,
            fingerprint=a.fingerprint,
            scope=scope,
            incident_id=inc.id if inc is not None else None,
            group_key=n.group_key,
            name=a.name,
            status=a.status,
            labels=a.labels,
            annotations=a.annotations,
            links=a.links,
            values=a.values,
            rule=r.rule,
            action=t.kind if t.kind != "attach" or r.action != "declare" else "declare",
            starts_at=a.starts_at,
            ends_at=a.ends_at if not a.firing else None,
            first_seen=now,
            last_seen=now,
            repeats=0,
            flaps=0,
            notifications=1,
        )
        s.add(row)
        look.add(row)
        return "new"
    row.last_seen, row.notifications = now, row.notifications + 1
    # The latest annotations and values are what people need; labels are the identity and do not change.
    row.annotations, row.values, row.links = a.annotations, a.values or row.values, a.links or row.links
    if a.firing:
        if row.status == AlertStatus.FIRING:
            row.repeats += 1
            return "repeat"
        row.status, row.ends_at, row.flaps = AlertStatus.FIRING, None, row.flaps + 1
        if a.starts_at:
            row.starts_at = row.starts_at or a.starts_at
        return "refired"
    if row.status == AlertStatus.FIRING:
        row.status, row.ends_at = AlertStatus.RESOLVED, a.ends_at or now
        return "resolved"
    return "repeat_resolved"


async def _effects(
    svc: Services, s: AsyncSession, n: Notification, nid: int, c: _Change, now: datetime
) -> bool:
    """Timeline, war-room post and status change of one incident. True when it should auto-resolve."""
    inc = c.inc
    firing_now = await _any_firing(s, inc.id)
    all_resolved = c.firing_before and not firing_now and bool(c.resolved)
    still = await _firing_count(s, inc.id)
    name = SOURCE_NAMES.get(n.source, n.source)
    parts = [
        f"{k} {v}"
        for k, v in (
            ("new", len(c.new)),
            ("firing again", len(c.refired)),
            ("resolved", len(c.resolved)),
            ("still firing (repeat)", c.repeats),
        )
        if v
    ]
    names = ", ".join(f"“{plain_line(x.name, 80)}”" for x in [*c.new, *c.refired, *c.resolved][:5])
    text = f"{name} notification: {', '.join(parts)}" + (f": {names}" if names else "")
    if n.truncated:
        text += f" ({n.truncated} more left out by the sender: raise max_alerts)"
    if all_resolved:
        text += ". All alerts resolved"
    await service.add_event(
        s,
        inc.id,
        "alert",
        text,
        at=now,
        actor=n.source,
        data={
            "notification": nid,
            "source": n.source,
            "group_key": n.group_key[:200],
            "new": [x.fingerprint for x in c.new][:100],
            "refired": [x.fingerprint for x in c.refired][:100],
            "resolved": [x.fingerprint for x in c.resolved][:100],
            "repeats": c.repeats,
            "all_resolved": all_resolved,
            "truncated": n.truncated,
        },
        dedupe_key=f"alerts:{nid}:{inc.id}",
    )
    lines: list[str] = []
    if (c.new or c.refired) and inc.status == IncidentStatus.MONITORING:
        await _back_to_investigating(svc, s, inc, [*c.new, *c.refired][0].name, now)
        lines.append("🔁 An alert is firing again: status → INVESTIGATING (the fix did not hold).")
    if c.flap and inc.status == IncidentStatus.RESOLVED and (c.new or c.refired):
        damping = timefmt.format_duration(svc_policy_damping(svc))
        lines.append(
            f"♻️ Firing again within {damping} of resolve: no new incident opened. "
            "`/incident reopen` if it is back."
        )
    if c.new or c.refired or c.resolved:
        msg = notification_message(
            n.source, c.new, c.refired, c.resolved, all_resolved=all_resolved, still_firing=still
        )
        if n.truncated:
            msg += f"\n\n⚠️ {n.truncated} more alerts were left out by the sender (its max_alerts)."
        if lines:
            msg = "\n".join(lines) + "\n\n" + msg
        await enqueue(
            s,
            "post",
            # Before the war room exists (Slack down at declare) the post waits behind the provisioning.
            channel=inc.channel_id or inc.id,
            incident_id=inc.id,
            at=now,
            payload={"text": msg, "war_room": True},
            dedupe_key=f"alerts:{nid}:{inc.id}:post",
        )
    return all_resolved and c.auto_resolve and inc.status != IncidentStatus.RESOLVED


def svc_policy_damping(svc: Services) -> timedelta:
    return policy(svc).flap_damping


async def _firing_count(s: AsyncSession, incident_id: str) -> int:
    stmt = select(func.count()).where(Alert.incident_id == incident_id, Alert.status == AlertStatus.FIRING)
    return int((await s.execute(stmt)).scalar_one())


async def _back_to_investigating(
    svc: Services, s: AsyncSession, inc: Incident, alert: str, now: datetime
) -> None:
    """The same rule as a person leaving MONITORING: the resolution clock starts over, the ladder re-plans."""
    inc.status, inc.monitoring_at, inc.updated_at = IncidentStatus.INVESTIGATING, None, now
    await replan(svc, s, inc, reason="alert firing again")
    await service.add_event(
        s,
        inc.id,
        "status",
        f"Status MONITORING → INVESTIGATING: alert “{plain_line(alert, 120)}” is firing again",
        at=now,
        actor=BOT_USER,
        data={"from": IncidentStatus.MONITORING, "to": IncidentStatus.INVESTIGATING, "via": "alert"},
    )
    await enqueue(s, "template", channel=inc.channel_id or inc.id, incident_id=inc.id, at=now)


async def _declare(svc: Services, n: Notification, problem: str, route: Route, alerts: list[AlertIn]) -> None:
    now = svc.clock.now()
    first = alerts[0]
    starts = [a.starts_at for a in alerts if a.starts_at is not None]
    # startsAt is when the sender saw the problem: MTTD counts from it (never from the future).
    detected = min([*starts, now]) if starts else None
    summary = esc(first.annotations.get("summary") or first.annotations.get("description") or "")
    title = esc(first.name) + (f" (+{len(alerts) - 1} more)" if len(alerts) > 1 else "")
    text = f"{title}: {summary}" if summary else title
    source = SOURCE_NAMES.get(n.source, n.source)
    # Two replicas (or an Alertmanager HA pair sending the same group to both) must declare once: the claim
    # key is the same for both racers, and differs for the next incident of the problem after this one.
    async with svc.db.session() as s:
        earlier = await s.execute(select(func.count()).where(Incident.problem_key == problem))
        request_key = f"alerts:declare:{problem}:{int(earlier.scalar_one())}"
    result = await IncidentFlows(svc).declare(
        DeclareRequest(
            request_key=request_key,
            severity=route.severity,
            summary=" ".join(text.split())[:480],
            user=BOT_USER,
            impact=f"Automatic detection: {source} alert (routing rule {route.rule})",
            area=route.area,
            source=n.source,
            detected_at=detected,
            problem_key=problem,
        )
    )
    if result.state in ("open_for_problem", "duplicate") or not result.incident_id:
        return
    async with svc.db.session() as s:
        await service.add_event(
            s,
            result.incident_id,
            "detected",
            f"{source} alert “{plain_line(first.name, 120)}” firing since {detected:%H:%M:%S} UTC"
            if detected
            else f"{source} alert “{plain_line(first.name, 120)}” firing",
            at=svc.clock.now(),
            actor=n.source,
            data={"rule": route.rule, "problem": problem, "detected_at": str(detected)},
        )
    await svc.kick(result.incident_id, by="alerts")  # the L1 page goes out now
    log.warning(
        "%s alert declared %s (%s, rule %s)", n.source, result.incident_id, route.severity, route.rule
    )


# -- for other code --------------------------------------------------------------------------------------


async def alerts_all_resolved(session: AsyncSession, incident_id: str) -> bool:
    """The resolve health gate's question: is no alert of this incident still firing? (True with no alerts.)"""
    return not await _any_firing(session, incident_id)


async def resolve_objection(svc: Services, incident_id: str, user: str) -> str:
    """The alerts' resolve gate (registered at wiring): an incident whose alert still fires at its source is
    not resolved on the playbook's criteria alone; "" = no objection. Resolving anyway stays possible and is
    recorded as an override."""
    async with svc.db.session() as s:
        firing = await _firing_count(s, incident_id)
        if not firing:
            return ""
        stmt = (
            select(Alert.name)
            .where(Alert.incident_id == incident_id, Alert.status == AlertStatus.FIRING)
            .order_by(Alert.first_seen, Alert.id)
            .limit(3)
        )
        # Plain text (the gate's words are stored on the timeline as typed; each surface escapes them).
        names = [" ".join(n.split())[:80] for n in (await s.execute(stmt)).scalars()]
    more = f" and {firing - len(names)} more" if firing > len(names) else ""
    noun = "alert is" if firing == 1 else "alerts are"
    return f"{firing} {noun} still firing at the source ({', '.join(names)}{more})"


async def incident_alerts(svc: Services, incident_id: str, limit: int = 200) -> list[Alert]:
    async with svc.db.session() as s:
        stmt = (
            select(Alert)
            .where(Alert.incident_id == incident_id)
            .order_by(Alert.status, Alert.first_seen, Alert.id)  # 'firing' sorts before 'resolved'
            .limit(limit)
        )
        return list((await s.execute(stmt)).scalars())


async def unattached_alerts(svc: Services, limit: int = 30) -> list[Alert]:
    """Recorded only (no rule matched, or the rule only records): newest first."""
    async with svc.db.session() as s:
        stmt = (
            select(Alert).where(Alert.scope == UNATTACHED).order_by(Alert.last_seen.desc(), Alert.id.desc())
        )
        return list((await s.execute(stmt.limit(limit))).scalars())


def list_text(alerts: Sequence[Alert], title: str, limit_chars: int = 2800) -> list[str]:
    """Sections of at most limit_chars for `/incident alerts`."""
    out: list[str] = []
    current = title
    for a in alerts:
        line = alert_line(a)
        if len(current) + len(line) + 1 > limit_chars:
            out.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    out.append(current)
    return out


# -- worker ----------------------------------------------------------------------------------------------


async def alerts_tick(svc: Services) -> None:
    """Notifications a dead or busy process left: pending past the grace period, or claims past the lease."""
    now = svc.clock.now()
    stmt = (
        select(AlertNotification.id)
        .where(
            AlertNotification.attempts < MAX_ATTEMPTS,
            or_(
                and_(
                    AlertNotification.state == AlertNotificationState.PENDING,
                    AlertNotification.received_at <= now - WORKER_GRACE,
                ),
                and_(
                    AlertNotification.state == AlertNotificationState.PROCESSING,
                    AlertNotification.claimed_at < now - LEASE,
                ),
            ),
        )
        .order_by(AlertNotification.id)
        .limit(20)
    )
    async with svc.db.session() as s:
        ids = list((await s.execute(stmt)).scalars())
    for nid in ids:
        await process(svc, nid)
