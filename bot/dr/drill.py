"""Disaster-recovery drills (seed 003, "Test and Validate the DR Plan"): a DRILL incident, a fault injected into
the Factory, the times to detect, acknowledge and recover measured and compared with dr.yaml's RTO/RPO; and the
tabletop walk-through of dr-plan.md's recovery procedures, one step at a time.

Every time is measured from the fault (the outage's start, which is where the RTO counts from):
- detect: the first failing check sample after it (the monitor's, `/incident check`'s or the drill's own);
- acknowledge: the DRILL incident's first acknowledgement;
- recover: the first all-green check after the last failing one (the recovery action, when there is one,
  runs a check right after it: that check is the one that counts).

Against the simulated Factory (it answers `GET /_sim/state`) the fault starts at once through its control API.
Against a real Factory the drill goes through its chaos API, whose chaos only starts the next day between 08:00
and 13:59 (UTC−7): the clock then starts at the chaos' `startDate`, and `service-down` is refused (the chaos
API cannot stop the Factory).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import incident_store as service
from bot.context import Services
from bot.dr.fault import DrillRefused, Target, detect_target, inject, no_real_chaos, target_name
from bot.dr.plan import load_dr, plan_hash
from bot.dr.report import DRILL_SEVERITY, FAILING, TABLETOP, DrillReport, build_report, measure, report_line
from bot.dr.times import iso, parse_time
from bot.health.flows import RecoveryRun, claim_recovery, recover, run_check
from bot.health.monitor import DRILL_PROBLEM, MONITOR_USER, PROBLEM
from bot.health.probes import CheckReport
from bot.health.scenarios import SCENARIOS
from bot.incidents.flows import DeclareRequest, IncidentFlows
from bot.incidents.lifecycle import LifecycleFlows
from bot.models import CheckSample, Drill, ProcessedRequest
from bot.outbox import deliver, enqueue
from bot.permissions import real_factory_refusal
from bot.slack_text import esc
from bot.states import IncidentStatus

log = logging.getLogger("incident_bot.drill")


# -- start -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DrillStarted:
    drill_id: int
    incident_id: str
    channel_id: str | None
    scenario: str
    report: DrillReport
    duplicate: bool = False


async def _drill_for(s: AsyncSession, incident_id: str) -> Drill | None:
    stmt = select(Drill).where(Drill.incident_id == incident_id).order_by(Drill.id.desc()).limit(1)
    return (await s.execute(stmt)).scalars().first()


async def start_drill(
    svc: Services,
    scenario: str,
    user: str,
    *,
    request_key: str | None = None,
    target: Target | None = None,
    allow_real_factory: bool = False,
    via: str = "slack",
) -> DrillStarted:
    """Open the DRILL incident, inject the fault and record the drill. DrillRefused says why not.

    Who may is checked by the caller (handlers/guard.py); against a Factory that is not the simulator a
    drill starts real chaos, so it also needs `allow_real_factory` (setting or CLI flag)."""
    sc = SCENARIOS.get(scenario)
    if sc is None:
        raise DrillRefused(
            f"Unknown drill `{esc(scenario[:30])}`: use one of {', '.join(SCENARIOS)} or tabletop."
        )
    async with svc.db.session() as s:
        if request_key and await s.get(ProcessedRequest, request_key) is not None:
            ref = await service.request_ref(s, request_key)
            drill = await _drill_for(s, ref) if ref else None
            inc = await service.get(s, ref) if ref else None
            if drill is None or inc is None:
                raise DrillRefused("That request was already handled.")
            return DrillStarted(
                drill.id, inc.id, inc.channel_id, drill.scenario, DrillReport.of(drill.report), True
            )
        busy = await service.open_for_problem(s, PROBLEM) or await service.open_for_problem(s, DRILL_PROBLEM)
    if busy is not None:
        what = "A drill" if busy.is_drill else "A Factory-health incident"
        where = f" (<#{busy.channel_id}>)" if busy.channel_id else ""
        raise DrillRefused(
            f"{what} is open: {busy.id}{where}. No drill while it runs: finish or resolve it first."
        )
    kind = target or await detect_target(svc.settings.factory_url)
    if kind == "factory" and sc.chaos is None:
        raise DrillRefused(no_real_chaos(sc))
    if kind == "factory" and (why := real_factory_refusal(allowed=allow_real_factory, via=via)):
        raise DrillRefused(why)
    baseline = await run_check(svc, kind="drill", actor=user)
    if baseline.verdict != "healthy":
        bad = ", ".join(f"{r.name} {r.status}" for r in baseline.results if r.status in FAILING)
        raise DrillRefused(
            f"The checks are not green before the drill ({bad or baseline.verdict}). A drill measures recovery "
            "from a healthy start: fix that first (`/incident check`)."
        )
    result = await IncidentFlows(svc).declare(
        DeclareRequest(
            severity=DRILL_SEVERITY,
            summary=f"Drill: {sc.title}",
            user=user,
            impact=f"DRILL, not a real outage: the fault is injected on purpose ({target_name(kind)}).",
            area="api",
            request_key=request_key,
            source="drill",
            is_drill=True,
            problem_key=DRILL_PROBLEM,  # its own alert: a drill never mutes real monitoring
        )
    )
    if result.state == "open_for_problem":
        raise DrillRefused(f"{result.incident_id} is open for Factory health: no drill while it runs.")
    if result.incident_id is None:
        raise DrillRefused("That request was already handled.")
    incident_id = result.incident_id
    if result.state == "duplicate":
        async with svc.db.session() as s:
            drill = await _drill_for(s, incident_id)
        if drill is None:
            raise DrillRefused("That drill is still starting; try again in a moment.")
        return DrillStarted(
            drill.id, incident_id, result.channel_id, drill.scenario, DrillReport.of(drill.report), True
        )
    await svc.kick(incident_id)  # the L1 page, marked [DRILL], goes out now
    now = svc.clock.now()
    async with svc.db.session() as s:
        floor = (await s.execute(select(func.max(CheckSample.id)))).scalar_one_or_none() or 0
        dr_service = load_dr().services.get(sc.service)
        report = DrillReport(
            scenario=sc.key,
            incident_id=incident_id,
            title=sc.title,
            section=sc.section,
            target=kind,
            factory_url=svc.settings.factory_url,
            severity=DRILL_SEVERITY,
            started_by=user,
            started_at=iso(now),
            sample_floor=int(floor),
            service=sc.service,
            service_name=dr_service.name if dr_service else sc.service,
            plan_hash=plan_hash(),
        )
        drill = Drill(incident_id=incident_id, scenario=sc.key, started_at=now, report=report.as_json())
        s.add(drill)
        await s.flush()
        drill_id = drill.id
    try:
        injection = await inject(svc, sc, kind)
    except DrillRefused as exc:
        await _abort(svc, drill_id, incident_id, user, exc.message)
        raise DrillRefused(f"{exc.message}\nThe drill incident {incident_id} was closed.") from exc
    report = replace(
        report,
        state="running",
        fault=injection.fault,
        injected_at=iso(injection.at),
        chaos_start=iso(injection.chaos_start),
        origin=iso(injection.origin),
        starts_later=injection.starts_later,
        injection=injection.detail,
    )
    async with svc.db.session() as s:
        row = await s.get(Drill, drill_id)
        assert row is not None
        row.report = report.as_json()
        await service.add_event(
            s,
            incident_id,
            "drill",
            f"[DRILL] Fault injected ({sc.key}): {injection.detail}",
            at=injection.at,
            actor=user,
            data={"drill_id": drill_id, "scenario": sc.key, "target": kind, "fault": injection.fault},
            dedupe_key=f"drill:{drill_id}:injected",
        )
        inc = await service.get(s, incident_id)
        channel = inc.channel_id if inc else None
        if channel:
            await _post(
                s,
                channel,
                incident_id,
                svc.render.drill_started(drill_id, report),
                key=f"drill:{drill_id}:started",
                at=injection.at,
            )
    await _deliver(svc, incident_id)
    return DrillStarted(drill_id, incident_id, channel, sc.key, report)


async def _abort(svc: Services, drill_id: int, incident_id: str, user: str, why: str) -> None:
    now = svc.clock.now()
    async with svc.db.session() as s:
        row = await s.get(Drill, drill_id)
        if row is not None:
            row.finished_at = now
            row.report = {**row.report, "state": "aborted", "error": why, "finished_at": iso(now)}
        await service.add_event(s, incident_id, "drill", f"[DRILL] Aborted: {why}", at=now, actor=user)
    await LifecycleFlows(svc).resolve(incident_id, user, force=True)


async def _post(
    s: AsyncSession,
    channel: str,
    incident_id: str,
    message: tuple[str, list[dict[str, Any]]],
    *,
    key: str,
    at: datetime,
) -> None:
    text, blocks = message
    await enqueue(
        s,
        "post",
        channel=channel,
        incident_id=incident_id,
        at=at,
        payload={"text": text, "blocks": blocks},
        dedupe_key=key,
    )


async def _deliver(svc: Services, incident_id: str) -> None:
    await deliver(svc, incident_id=incident_id)


@dataclass(frozen=True)
class DrillCheck:
    """The drill's "Check recovery now": the check's report, and the drill's report when it finished."""

    report: CheckReport
    finished: DrillReport | None


async def check_drill(svc: Services, incident_id: str, user: str) -> DrillCheck:
    """Check now, and finish the drill if the checks are green (e.g. service-down, once the Factory is back)."""
    report = await run_check(svc, incident_id=incident_id, kind="check", actor=user)
    return DrillCheck(report, await finish_drill_if_any(svc, incident_id, user))


@dataclass(frozen=True)
class RecoveryOutcome:
    """The "Run recovery" button: `claimed_by` when someone already ran the recovery from that report
    (nothing was done again); else the run and, for a drill incident, the drill's report once finished."""

    claimed_by: str | None = None
    run: RecoveryRun | None = None
    drill: DrillReport | None = None


async def recover_from_report(
    svc: Services,
    incident_id: str,
    user: str,
    report_key: str,
    *,
    started: Callable[[], Awaitable[None]],
    waiting: Callable[[float], Awaitable[None]],
    ran: Callable[[RecoveryRun], Awaitable[None]],
    every: float = 5.0,
) -> RecoveryOutcome:
    """Once per report (the claim is a row: a double click or another process runs it once), end the
    Factory's chaos and check again, then finish the drill if this is a drill incident. The adapter's
    messages are the callbacks: `started` before the recovery, `waiting(seconds)` every `every` seconds
    while it runs (throttle hides its link for ~32 s), `ran` with its result before the drill's report."""
    if report_key:
        by = await claim_recovery(svc, incident_id, report_key, user)
        if by is not None:
            return RecoveryOutcome(claimed_by=by)
    await started()
    task = asyncio.ensure_future(recover(svc, incident_id, user))
    waited = 0.0
    while not task.done():
        await asyncio.wait([task], timeout=every)
        waited += every
        if not task.done():
            await waiting(waited)
    run = task.result()
    await ran(run)
    return RecoveryOutcome(run=run, drill=await finish_drill_if_any(svc, incident_id, user))


async def finish_drill_if_any(svc: Services, incident_id: str, user: str | None = None) -> DrillReport | None:
    """Finish the open drill of this incident once its checks are green again (or its incident was resolved
    meanwhile): store the report, post it in the war room, and close the drill incident so it no longer holds
    the Factory-health alert. None when there is no drill to finish yet. Safe to call after any check."""
    now = svc.clock.now()
    async with svc.db.session() as s:
        stmt = (
            select(Drill)
            .where(Drill.incident_id == incident_id, Drill.finished_at.is_(None), Drill.scenario != TABLETOP)
            .order_by(Drill.id)
            .limit(1)
            .with_for_update()
        )
        drill = (await s.execute(stmt)).scalars().first()
        inc = await service.get(s, incident_id)
        if drill is None or inc is None or drill.report.get("state") != "running":
            return None
        m = await measure(s, drill, inc)
        if m.recovered_at is None and inc.status != IncidentStatus.RESOLVED:
            return None
        report = replace(build_report(svc, DrillReport.of(drill.report), m, now), finished_by=user)
        drill.finished_at, drill.report = now, report.as_json()
        await service.add_event(
            s,
            incident_id,
            "drill_report",
            "[DRILL] " + report_line(report),
            at=now,
            actor=user,
            data={
                "drill_id": drill.id,
                **report.figures(),
            },
            dedupe_key=f"drill:{drill.id}:report",
        )
        if inc.channel_id:
            await _post(
                s,
                inc.channel_id,
                incident_id,
                svc.render.drill_report(drill.id, report),
                key=f"drill:{drill.id}:report",
                at=now,
            )
        resolved = inc.status == IncidentStatus.RESOLVED
    await _deliver(svc, incident_id)
    if not resolved:
        await LifecycleFlows(svc).resolve(incident_id, user or MONITOR_USER, force=True)
    log.info("drill %s finished: %s", incident_id, report_line(report))
    return report


async def wait_for_drill(
    svc: Services,
    started: DrillStarted,
    user: str,
    *,
    interval: float = 15.0,
    timeout: float | None = None,
    run_recovery: bool = False,
) -> DrillReport | None:
    """Check every `interval` seconds (these checks count as detection) until the drill finishes; with
    `run_recovery`, run the recovery action once a check shows the fault. None at the timeout."""
    r = started.report
    rto = float(load_dr().services.get(r.service, load_dr().services["factory"]).rto.total_seconds())
    origin = parse_time(r.origin) or svc.clock.now()
    lead = max((origin - svc.clock.now()).total_seconds(), 0.0)
    deadline = asyncio.get_running_loop().time() + (timeout if timeout is not None else lead + rto)
    recovered_once = False
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(interval)
        check = await run_check(svc, incident_id=started.incident_id, kind="drill", actor=user)
        if (
            run_recovery
            and not recovered_once
            and check.verdict != "healthy"
            and r.scenario != "service-down"
        ):
            await recover(svc, started.incident_id, user)
            recovered_once = True
        report = await finish_drill_if_any(svc, started.incident_id, user)
        if report is not None:
            return report
        async with svc.db.session() as s:
            done = await s.get(Drill, started.drill_id)
            if done is not None and done.finished_at is not None:
                return DrillReport.of(done.report)
    return None
