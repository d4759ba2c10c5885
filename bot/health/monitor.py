"""The background monitor (run by the worker): one check per interval, judged by bot.health.judge, feeding an
alert state machine per problem (Prometheus alerting-rule style), stored in the `alert_states` table:

    inactive --failing sample--> pending (that sample = detection time)
    pending  --failing for `for` with `min_samples` failing checks--> firing (declare, or re-activate)
    pending  --no failing sample for `clean_for`--> inactive
    firing   --clean sample--> resolving
    resolving --failing sample--> firing (a flap: same incident, counted)
    resolving --no failing sample for `clean_for`--> inactive ("metrics back to normal": MONITORING)

Firing while the bound incident is MONITORING or IDENTIFIED moves it back to INVESTIGATING, says so in the war
room with the failing probes and pages the current level again. After the incident is resolved the alert
stays bound to it for `enhanced_monitoring`: a relapse then reopens it. Numbers come from thresholds.yaml.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import or_, select, update

from bot import incident_store as service
from bot.context import Services
from bot.escalation.flows import pages_in_cycle, replan
from bot.health.flows import run_check
from bot.health.judge import Metrics, Sample, metrics_of, severity_of, summarise
from bot.health.probes import FACTORY_PROBES, CheckReport
from bot.health.report import redact_report_url
from bot.health.scenarios import SCENARIOS
from bot.health.thresholds import Thresholds, load_thresholds
from bot.incidents.flows import DeclareRequest, IncidentFlows
from bot.incidents.lifecycle import LifecycleFlows
from bot.models import AlertState, CheckSample, Drill, Incident
from bot.outbox import deliver, enqueue
from bot.states import IncidentStatus, MonitorAlertState
from bot.statuspage.automation import apply_factory_judgement

log = logging.getLogger("incident_bot.monitor")

PROBLEM = "factory-health"
DRILL_PROBLEM = "factory-drill"  # a drill's own alert: it never holds (or mutes) the real one
MONITOR_USER = "incident-bot"
ORDER_PATH = ("order", "verify")

Action = Literal["none", "declare", "reactivate", "reopen", "recovered"]


@dataclass(frozen=True)
class Window:
    """The monitor samples of one incident (since its detection), judged with bot.health.judge."""

    metrics: Metrics
    first_failing_at: datetime | None
    latest_failing: bool

    def describe(self) -> str:
        return self.metrics.describe()


def judge(samples: list[CheckSample]) -> Window:
    runs: dict[str, list[CheckSample]] = {}
    for smp in sorted(samples, key=lambda x: (x.at, x.id or 0)):
        runs.setdefault(smp.run_id, []).append(smp)
    ordered = sorted(runs.values(), key=lambda r: r[0].at)
    summaries = [
        summarise([Sample(x.probe, x.status, x.latency_ms, x.detail, x.http_status) for x in run])
        for run in ordered
    ]
    first = next((run[0].at for run, sm in zip(ordered, summaries, strict=True) if sm.failing), None)
    return Window(metrics_of(summaries), first, bool(summaries and summaries[-1].failing))


async def window_since(
    svc: Services, since: datetime | None, until: datetime | None = None, *, after: bool = False
) -> Window:
    """The monitor samples from `since` (or strictly after it, with `after`) to `until`."""
    async with svc.db.session() as s:
        stmt = select(CheckSample).where(CheckSample.run_id.like("monitor-%"))
        if since is not None:
            stmt = stmt.where(CheckSample.at > since if after else CheckSample.at >= since)
        if until is not None:
            stmt = stmt.where(CheckSample.at <= until)
        return judge(list((await s.execute(stmt)).scalars()))


def _owner(svc: Services) -> str:
    return str(svc.__dict__.setdefault("_monitor_owner", f"monitor-{uuid.uuid4().hex[:10]}"))


async def monitor_tick(svc: Services) -> None:
    """Called on every worker pass; starts a check when one is due and none is running (the probes take up
    to their timeout, so they run beside the timer loop, not inside it)."""
    state = svc.__dict__.setdefault("_monitor", {"next": None, "task": None})
    now = svc.clock.now()
    if state["task"] is not None and not state["task"].done():
        return
    if state["next"] is not None and now < state["next"]:
        return
    if not svc.settings.factory_url or svc.settings.monitor_interval <= 0:
        return
    state["next"] = now + timedelta(seconds=svc.settings.monitor_interval)
    state["task"] = svc.tasks.spawn(monitor_once(svc), "monitor")


async def _ensure_alert_row(s: Any, problem: str, now: datetime) -> None:
    """The problem's alert row, created inactive the first time (a concurrent creator wins harmlessly)."""
    ins = service._insert(s, AlertState).values(
        problem_key=problem,
        state=MonitorAlertState.INACTIVE,
        failing_samples=0,
        flaps=0,
        updated_at=now,
        data={},
    )
    await s.execute(ins.on_conflict_do_nothing())


async def _claim(svc: Services, problem: str, owner: str, now: datetime, lease: float) -> bool:
    """Own this problem's tick (a lease in the alert row): a second worker skips; a dead one's lease expires."""
    async with svc.db.session() as s:
        await _ensure_alert_row(s, problem, now)
        res = await s.execute(
            update(AlertState)
            .where(
                AlertState.problem_key == problem,
                or_(
                    AlertState.tick_owner.is_(None),
                    AlertState.tick_until.is_(None),
                    AlertState.tick_until < now,
                ),
            )
            .values(tick_owner=owner, tick_until=now + timedelta(seconds=lease))
            .execution_options(synchronize_session=False)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]


async def _release(svc: Services, problem: str, owner: str) -> None:
    async with svc.db.session() as s:
        await s.execute(
            update(AlertState)
            .where(AlertState.problem_key == problem, AlertState.tick_owner == owner)
            .values(tick_owner=None, tick_until=None)
            .execution_options(synchronize_session=False)
        )


async def alert_state(svc: Services, problem: str = PROBLEM) -> AlertState | None:
    async with svc.db.session() as s:
        return await s.get(AlertState, problem)


async def monitor_once(svc: Services, th: Thresholds | None = None, *, problem: str = PROBLEM) -> str:
    """One monitor step. Returns what it did: ok | watching | declared | open | reactivated | reopened |
    resolving | recovered | busy (another worker owns this tick)."""
    th = th or load_thresholds()
    owner, now = _owner(svc), svc.clock.now()
    if not await _claim(svc, problem, owner, now, th.alerting.lease_s):
        return "busy"
    try:
        report = await run_check(svc, kind="monitor")
        drill = await _open_drill(svc) if problem == PROBLEM else None
        if drill is None:
            return await _step(svc, problem, report, th)
        drill_id, scenario = drill
        # One check feeds both alerts: the drill's (bound to its DRILL incident) and the real one, which
        # ignores only the failure the drill injected, so a real failure during a drill is still declared.
        drill_outcome = await _step(svc, DRILL_PROBLEM, report, th, bind=drill_id)
        real = await _step(svc, problem, report, th, explained=explained_by_drill(report, scenario))
        return real if real != "ok" else drill_outcome
    finally:
        await _release(svc, problem, owner)


def fault_of(report: CheckReport) -> str | None:
    """The fault a check shows, in drill-scenario terms: fail | throttle | badjwt | down | other | None."""
    if report.verdict == "healthy":
        return None
    factory = [r for r in report.results if r.name in FACTORY_PROBES and r.status != "skipped"]
    if factory and all(r.status == "down" for r in factory):
        return "down"
    chaos = report.chaos_type
    return chaos if chaos in ("fail", "throttle", "badjwt") else "other"


def explained_by_drill(report: CheckReport, scenario: str) -> bool:
    """True when the failing check is the fault the drill injected (its scenario's signature), nothing else."""
    sc = SCENARIOS.get(scenario)
    fault = fault_of(report)
    if sc is None or fault is None:
        return False
    return fault in (sc.sim_mode, sc.chaos)


async def _open_drill(svc: Services) -> tuple[str, str] | None:
    """(incident id, scenario) of the open drill incident, if any."""
    async with svc.db.session() as s:
        inc = await service.open_for_problem(s, DRILL_PROBLEM)
        if inc is None:
            return None
        stmt = select(Drill.scenario).where(Drill.incident_id == inc.id).order_by(Drill.id.desc()).limit(1)
        scenario = (await s.execute(stmt)).scalar_one_or_none()
        return inc.id, str(scenario or "")


async def _step(
    svc: Services,
    problem: str,
    report: CheckReport,
    th: Thresholds,
    *,
    bind: str | None = None,
    explained: bool = False,
) -> str:
    now = svc.clock.now()
    failing = report.verdict != "healthy" and not explained
    cfg, action, outcome = th.alerting, "none", "ok"
    async with svc.db.session() as s:
        await _ensure_alert_row(s, problem, now)
        alert = (
            await s.execute(select(AlertState).where(AlertState.problem_key == problem).with_for_update())
        ).scalar_one()
        if bind is not None and alert.incident_id != bind:  # a new drill: a fresh alert bound to it
            alert.incident_id, alert.state, alert.failing_samples = bind, MonitorAlertState.INACTIVE, 0
            alert.pending_since = alert.firing_since = alert.resolving_since = alert.last_failing_at = None
        bound = await service.get(s, alert.incident_id) if alert.incident_id else None
        open_inc = bound if bound is not None and bound.status != IncidentStatus.RESOLVED else None
        if open_inc is None and problem == PROBLEM:
            open_inc = await service.open_for_problem(s, problem)
        alert.last_sample_at, alert.updated_at = now, now
        if failing:
            alert.last_failing_at = now
            if alert.state == MonitorAlertState.INACTIVE:
                alert.state, alert.pending_since, alert.failing_samples = MonitorAlertState.PENDING, now, 0
                alert.firing_since = alert.resolving_since = None
            alert.failing_samples += 1
            if alert.state == MonitorAlertState.RESOLVING:
                alert.state, alert.resolving_since, alert.flaps = (
                    MonitorAlertState.FIRING,
                    None,
                    alert.flaps + 1,
                )
            elif alert.state == MonitorAlertState.PENDING:
                since = alert.pending_since or now
                if (
                    now - since
                ).total_seconds() >= cfg.for_s and alert.failing_samples >= th.monitor.min_samples:
                    alert.state, alert.firing_since = MonitorAlertState.FIRING, now
            if alert.state == MonitorAlertState.FIRING:
                action, outcome = _firing_action(open_inc, bound, now, cfg.enhanced_monitoring_s)
                if action in ("declare", "reopen") and problem == DRILL_PROBLEM:
                    action, outcome = (
                        "none",
                        "ok",
                    )  # a drill alert never declares: its incident is the drill's
            else:
                outcome = "open" if open_inc is not None else "watching"  # attached to the open incident
        else:
            quiet = (now - alert.last_failing_at).total_seconds() if alert.last_failing_at else float("inf")
            if alert.state == MonitorAlertState.FIRING:
                alert.state, alert.resolving_since = MonitorAlertState.RESOLVING, now
            if (
                alert.state in (MonitorAlertState.PENDING, MonitorAlertState.RESOLVING)
                and quiet >= cfg.clean_s
            ):
                was = alert.state
                alert.state, alert.failing_samples = MonitorAlertState.INACTIVE, 0
                alert.pending_since = alert.firing_since = alert.resolving_since = None
                if was == MonitorAlertState.RESOLVING and open_inc is not None:
                    action, outcome = "recovered", "recovered"
                else:
                    outcome = "ok"
            elif alert.state in (MonitorAlertState.PENDING, MonitorAlertState.RESOLVING):
                outcome = "watching" if alert.state == MonitorAlertState.PENDING else "resolving"
            elif open_inc is not None:
                outcome = "open"
        if open_inc is not None and alert.incident_id != open_inc.id:
            alert.incident_id = open_inc.id
        target = open_inc.id if open_inc is not None else None
        if target and report.run_id:  # samples belong to the incident they were taken for
            await s.execute(
                update(CheckSample)
                .where(CheckSample.run_id == report.run_id)
                .values(incident_id=target)
                .execution_options(synchronize_session=False)
            )
        detected = alert.pending_since
        bound_id = bound.id if bound is not None else None
        streak = alert.failing_samples if failing else 0
    if problem == PROBLEM:
        # The status page's "automated" component states follow the same judgement (never the drill's).
        verdict = report.verdict if failing else "healthy"
        await apply_factory_judgement(svc, verdict, streak, th.monitor.min_samples, report.impact or "")
    if action == "declare":
        return await _declare(svc, problem, report, th, detected)
    if action == "reactivate" and target:
        await _reactivate(svc, target, report)
        return "reactivated"
    if action == "reopen" and bound_id:
        await _reopen(svc, bound_id, report)
        return "reopened"
    if action == "recovered" and target:
        await _back_to_normal(svc, target, th)
    return outcome


def _firing_action(
    open_inc: Incident | None, bound: Incident | None, now: datetime, enhanced_s: float
) -> tuple[Action, str]:
    if open_inc is not None:
        if open_inc.status in (IncidentStatus.MONITORING, IncidentStatus.IDENTIFIED):
            return "reactivate", "reactivated"
        return "none", "open"
    if bound is not None and bound.resolved_at is not None:
        if (now - bound.resolved_at).total_seconds() <= enhanced_s:
            return "reopen", "reopened"
    return "declare", "declared"


def _failing_text(report: CheckReport) -> str:
    probes = ", ".join(f"{r.name} ({r.detail})" for r in report.results if r.status in ("down", "degraded"))
    return redact_report_url(f"{report.impact or report.verdict}. Failing: {probes or 'none'}")[:1500]


async def _declare(
    svc: Services, problem: str, report: CheckReport, th: Thresholds, detected: datetime | None
) -> str:
    w = await window_since(svc, detected)
    severity = (
        severity_of(w.metrics, partial=True, scheduled=False, th=th) or report.suggested_severity or "P2"
    )
    what = report.impact.split(";")[0] if report.impact else report.verdict
    summary = f"Factory health: {what}"[:480]
    result = await IncidentFlows(svc).declare(
        DeclareRequest(
            severity=severity,
            summary=summary,
            user=MONITOR_USER,
            impact=f"{report.impact or report.verdict}. Since detection: {w.describe()}"[:2000],
            area="api",
            source="monitor",
            detected_at=detected,
            problem_key=problem,
        )
    )
    if result.state == "open_for_problem":
        return "open"
    if not result.incident_id:
        return "watching"
    now = svc.clock.now()
    async with svc.db.session() as s:
        alert = await s.get(AlertState, problem)
        if alert is not None:
            alert.incident_id = result.incident_id
        await s.execute(
            update(CheckSample)
            .where(CheckSample.run_id.like("monitor-%"), CheckSample.at >= (detected or now))
            .values(incident_id=result.incident_id)
            .execution_options(synchronize_session=False)
        )
        await service.add_event(
            s,
            result.incident_id,
            "detected",
            f"Monitor detected the problem at {(detected or now):%H:%M:%S} UTC: {w.describe()}",
            at=now,
            data={"metrics": w.metrics.as_dict(), "first_failing_at": str(detected), "problem": problem},
        )
    await svc.kick(result.incident_id, by="monitor")
    await _post_report(svc, result.incident_id, report, "🩺 Check that declared this incident")
    log.warning("monitor declared %s (%s)", result.incident_id, severity)
    return "declared"


async def _post_report(svc: Services, incident_id: str, report: CheckReport, title: str) -> None:
    """The check report (with the recovery button when chaos is known) in the war room, through the outbox."""
    text, blocks = svc.render.check_report(report, incident_id, title)
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id)
        if inc is None or not inc.channel_id:
            return
        await enqueue(
            s,
            "post",
            channel=inc.channel_id,
            incident_id=incident_id,
            at=svc.clock.now(),
            payload={"text": text, "blocks": blocks},
        )
    await deliver(svc, incident_id=incident_id)


async def _reactivate(svc: Services, incident_id: str, report: CheckReport) -> None:
    """Firing again while MONITORING/IDENTIFIED: back to INVESTIGATING, say why, page the current level again
    (a new cycle, so the page is a new one and needs a new acknowledgement)."""
    now = svc.clock.now()
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id, for_update=True)
        if inc is None or inc.status not in (IncidentStatus.MONITORING, IncidentStatus.IDENTIFIED):
            return
        levels = [p.level for p in await pages_in_cycle(s, inc) if p.state != "failed"]
        level = max(levels) if levels else 1
        old = inc.status
        inc.cycle += 1
        inc.cycle_started_at = now
        inc.status, inc.monitoring_at, inc.updated_at, inc.acknowledged_by = (
            IncidentStatus.INVESTIGATING,
            None,
            now,
            None,
        )
        text = (
            f"Relapse: the monitor fires again while {old}. Status → INVESTIGATING. {_failing_text(report)}"
        )
        await service.add_event(
            s,
            inc.id,
            "relapse",
            text,
            at=now,
            actor=MONITOR_USER,
            data={"from": old, "cycle": inc.cycle, "level": level, "failing": report.failing_probes},
        )
        await replan(svc, s, inc, reason="relapse", forced=(f"L{level}",))
        if inc.channel_id:
            await enqueue(
                s,
                "post",
                channel=inc.channel_id,
                incident_id=inc.id,
                at=now,
                payload={"text": f"🔁 {text} Paging L{level} again."},
            )
    await IncidentFlows(svc).refresh_template(incident_id)
    await deliver(svc, incident_id=incident_id)
    await svc.kick(incident_id, by="monitor")
    await _post_report(svc, incident_id, report, "🩺 Check that saw the relapse")


async def _reopen(svc: Services, incident_id: str, report: CheckReport) -> None:
    """A relapse during enhanced monitoring after resolve: reopen the incident and say why."""
    outcome = await LifecycleFlows(svc).reopen(incident_id, MONITOR_USER)
    if not outcome.ok:
        return
    now = svc.clock.now()
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id)
        text = f"Relapse during enhanced monitoring after resolve: reopened by the monitor. {_failing_text(report)}"
        await service.add_event(
            s, incident_id, "relapse", text, at=now, actor=MONITOR_USER, data={"reopened": True}
        )
        if inc is not None and inc.channel_id:
            await enqueue(
                s,
                "post",
                channel=inc.channel_id,
                incident_id=incident_id,
                at=now,
                payload={"text": f"🔁 {text}"},
            )
    await deliver(svc, incident_id=incident_id)
    await _post_report(svc, incident_id, report, "🩺 Check that saw the relapse")


async def _back_to_normal(svc: Services, incident_id: str, th: Thresholds) -> None:
    now = svc.clock.now()
    minimum = svc.playbook.severities.monitoring_minimum * svc.settings.time_scale
    mins = int(minimum.total_seconds() // 60)
    async with svc.db.session() as s:
        alert = (
            (await s.execute(select(AlertState).where(AlertState.incident_id == incident_id)))
            .scalars()
            .first()
        )
        last_failing = alert.last_failing_at if alert is not None else None
    clean = await window_since(svc, last_failing or now - timedelta(seconds=th.alerting.clean_s), after=True)
    if clean.latest_failing:  # never "back to normal" while the latest window fails
        return
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id)
        since = (inc.detected_at or inc.declared_at) if inc is not None else None
    whole = await window_since(svc, since)
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id, for_update=True)
        if inc is None or inc.status in (IncidentStatus.MONITORING, IncidentStatus.RESOLVED):
            return
        inc.status, inc.monitoring_at, inc.updated_at = IncidentStatus.MONITORING, now, now
        await replan(svc, s, inc, reason="metrics back to normal")
        text = (
            f"Status → MONITORING by the monitor: metrics back to normal ({clean.metrics.checks} clean checks over"
            f" {th.alerting.clean_s / 60:g} min; since detection: {whole.describe()})"
        )
        await service.add_event(
            s,
            incident_id,
            "status",
            text,
            at=now,
            actor=MONITOR_USER,
            data={"status": IncidentStatus.MONITORING, "by": "monitor", "clean": clean.metrics.as_dict()},
        )
        channel = inc.channel_id
    await IncidentFlows(svc).refresh_template(incident_id)
    # A drill registers a hook (wiring) that finishes it here; its report then says the rest.
    for owns_recovery in svc.dispatch.recovery_hooks:
        if await owns_recovery(svc, incident_id):
            return
    if channel:
        async with svc.db.session() as s:
            await enqueue(
                s,
                "post",
                channel=channel,
                incident_id=incident_id,
                at=now,
                payload={
                    "text": f"📉 Metrics back to normal: {clean.metrics.checks} clean checks over"
                    f" {th.alerting.clean_s / 60:g} min. MONITORING for {mins} min per playbook."
                },
            )
        await deliver(svc, incident_id=incident_id)
