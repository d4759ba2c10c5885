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

import argparse
import asyncio
import copy
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import incident_store as service
from bot.config import Settings, get_settings
from bot.context import Services
from bot.dr.plan import DR_PLAN, load_dr, plan_hash
from bot.errors import UserFacingError
from bot.health.flows import recover, run_check
from bot.health.monitor import MONITOR_USER, PROBLEM
from bot.health.probes import describe_error
from bot.incidents.flows import DeclareRequest, IncidentFlows
from bot.incidents.lifecycle import LifecycleFlows
from bot.models import CheckSample, Drill, Incident, ProcessedRequest, TimelineEvent
from bot.outbox import deliver, enqueue
from bot.pir.metrics import fmt_duration
from bot.playbook import PlaybookError, format_duration
from bot.states import IncidentStatus

log = logging.getLogger("incident_bot.drill")

Target = Literal["simulator", "factory"]
DRILL_SEVERITY = "P1"
FAILING = ("down", "degraded")  # a check run is green when none of its probes is in these states
TABLETOP = "tabletop"
TABLETOP_IDLE = timedelta(hours=24)  # an unanswered tabletop older than this is abandoned by the next start
REAL_CHAOS_NOTE = (
    "The real Factory starts chaos at a random time the next day between 08:00 and 13:59 (UTC−7), not now: "
    "the drill's clock starts when the chaos does."
)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    sim_mode: str  # POST /_sim/mode/{sim_mode}
    chaos: str | None  # PUT /api/vendor/chaos/{chaos} on a real Factory; None: not possible there
    service: str  # the dr.yaml service whose RTO/RPO the drill is judged against
    section: str  # dr-plan.md's procedure for it


SCENARIOS: dict[str, Scenario] = {
    "fail": Scenario("fail", "Factory chaos `fail`: orders answer 500", "fail", "fail", "factory", "4.1"),
    "throttle": Scenario(
        "throttle", "Factory chaos `throttle`: orders take ~32 s", "throttle", "throttle", "factory", "4.2"
    ),
    "badjwt": Scenario(
        "badjwt", "Factory chaos `badjwt`: order JWTs fail verification", "badjwt", "badjwt", "factory", "4.3"
    ),
    "service-down": Scenario(
        "service-down", "Factory unreachable: pizza ordering down", "down", None, "pizza-service", "4.4"
    ),
}


class DrillRefused(UserFacingError):
    """The drill cannot start (or go on); `message` says why, for the person who asked."""


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _secs(td: timedelta | None) -> float | None:
    return None if td is None else round(td.total_seconds(), 3)


def fmt_secs(value: object) -> str:
    """A stored number of seconds as '4 min 12 s'; None as '—'."""
    if not isinstance(value, int | float):
        return "—"
    return fmt_duration(timedelta(seconds=float(value)))


# -- the fault ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Injection:
    target: Target
    fault: str  # the simulator's mode, or the real Factory's chaos type
    at: datetime  # when the bot injected it
    chaos_start: datetime | None  # a real Factory: when its chaos is scheduled to start (GET /api/vendor)
    detail: str

    @property
    def starts_later(self) -> bool:
        return self.target == "factory"

    @property
    def origin(self) -> datetime:
        """Where the drill's clock starts: the chaos' own start on a real Factory, else the injection."""
        if self.target == "factory" and self.chaos_start is not None:
            return self.chaos_start
        return self.at


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    return str(body.get("message", body))[:200] if isinstance(body, dict) else str(body)[:200]


async def detect_target(factory_url: str, *, timeout: float = 5.0) -> Target:
    """`simulator` when FACTORY_URL answers the simulator's `GET /_sim/state`, else `factory`."""
    url = factory_url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            r = await http.get(f"{url}/_sim/state")
    except httpx.HTTPError as exc:
        raise DrillRefused(
            f"The Factory at {url} does not answer ({describe_error(exc)}): a drill starts from a healthy Factory."
        ) from exc
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code == 200 and isinstance(body, dict) and isinstance(body.get("mode"), str):
        return "simulator"
    return "factory"


async def inject(svc: Services, sc: Scenario, target: Target) -> Injection:
    """Start the fault: the simulator switches at once; a real Factory schedules chaos for the next day."""
    url = svc.settings.factory_url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            if target == "simulator":
                r = await http.post(f"{url}/_sim/mode/{sc.sim_mode}", headers=CLOSE)
                if not r.is_success:
                    raise DrillRefused(
                        f"The simulator refused mode `{sc.sim_mode}`: HTTP {r.status_code} {_message(r)}"
                    )
                if sc.sim_mode == "down":
                    await _until_refused(http, url)
                what = (
                    "closed (connection refused)" if sc.sim_mode == "down" else f"switched to `{sc.sim_mode}`"
                )
                return Injection(
                    target, sc.sim_mode, svc.clock.now(), None, f"Simulated Factory {what}, effective at once"
                )
            if sc.chaos is None:
                raise DrillRefused(_no_real(sc))
            auth = {"Authorization": f"Bearer {svc.settings.secret('factory_api_key')}"}
            r = await http.put(f"{url}/api/vendor/chaos/{sc.chaos}", headers=auth)
            if r.status_code != 200:
                raise DrillRefused(
                    f"The Factory refused chaos `{sc.chaos}`: HTTP {r.status_code} {_message(r)}"
                )
            at = svc.clock.now()
            start: datetime | None = None
            try:
                v = await http.get(f"{url}/api/vendor", headers=auth)
                chaos = v.json().get("chaos") if v.status_code == 200 else None
                if isinstance(chaos, dict) and chaos.get("type") == sc.chaos:
                    start = parse_time(chaos.get("startDate"))
            except (httpx.HTTPError, ValueError, AttributeError):
                pass  # the start time is a nicety: the first failing check still marks the fault
            when = f" Scheduled start: {start:%Y-%m-%d %H:%M} UTC." if start else ""
            return Injection(
                target, sc.chaos, at, start, f"Chaos `{sc.chaos}` requested.{when} {REAL_CHAOS_NOTE}"
            )
    except httpx.HTTPError as exc:
        raise DrillRefused(f"Could not reach the Factory at {url}: {describe_error(exc)}") from exc


CLOSE = {"Connection": "close"}  # no kept-alive connection to hold a closing server open


async def _until_refused(http: httpx.AsyncClient, url: str, within: float = 10.0) -> None:
    """`down` closes the simulated Factory's socket after answering: wait until it really refuses."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while loop.time() < end:
        try:
            await http.get(f"{url}/_sim/state", headers=CLOSE, timeout=1.0)
        except httpx.TransportError:
            return
        await asyncio.sleep(0.05)
    raise DrillRefused(f"The simulator accepted `down`, but the Factory still answers after {within:g} s.")


def _no_real(sc: Scenario) -> str:
    return (
        f"`{sc.key}` cannot be drilled against the real Factory: its chaos API only has fail, throttle and "
        "badjwt. Run it against the simulated Factory (`incident-bot factory-sim`, FACTORY_URL pointing at it)."
    )


async def _clear_sim(svc: Services) -> None:
    url = svc.settings.factory_url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            await http.post(f"{url}/_sim/mode/healthy")
    except httpx.HTTPError:
        pass


# -- start -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DrillStarted:
    drill_id: int
    incident_id: str
    channel_id: str | None
    scenario: str
    report: dict[str, Any]
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
) -> DrillStarted:
    """Open the DRILL incident, inject the fault and record the drill. DrillRefused says why not."""
    sc = SCENARIOS.get(scenario)
    if sc is None:
        raise DrillRefused(f"Unknown drill `{scenario[:30]}`: use one of {', '.join(SCENARIOS)} or tabletop.")
    async with svc.db.session() as s:
        if request_key and await s.get(ProcessedRequest, request_key) is not None:
            ref = await service.request_ref(s, request_key)
            drill = await _drill_for(s, ref) if ref else None
            inc = await service.get(s, ref) if ref else None
            if drill is None or inc is None:
                raise DrillRefused("That request was already handled.")
            return DrillStarted(drill.id, inc.id, inc.channel_id, drill.scenario, dict(drill.report), True)
        busy = await service.open_for_problem(s, PROBLEM)
    if busy is not None:
        what = "A drill" if busy.is_drill else "A Factory-health incident"
        where = f" (<#{busy.channel_id}>)" if busy.channel_id else ""
        raise DrillRefused(
            f"{what} is open: {busy.id}{where}. No drill while it runs: finish or resolve it first."
        )
    kind = target or await detect_target(svc.settings.factory_url)
    if kind == "factory" and sc.chaos is None:
        raise DrillRefused(_no_real(sc))
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
            problem_key=PROBLEM,
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
            drill.id, incident_id, result.channel_id, drill.scenario, dict(drill.report), True
        )
    await svc.kick(incident_id)  # the L1 page, marked [DRILL], goes out now
    now = svc.clock.now()
    async with svc.db.session() as s:
        floor = (await s.execute(select(func.max(CheckSample.id)))).scalar_one_or_none() or 0
        dr_service = load_dr().services.get(sc.service)
        report: dict[str, Any] = {
            "kind": "drill",
            "state": "starting",
            "scenario": sc.key,
            "title": sc.title,
            "section": sc.section,
            "target": kind,
            "factory_url": svc.settings.factory_url,
            "severity": DRILL_SEVERITY,
            "incident_id": incident_id,
            "started_by": user,
            "started_at": _iso(now),
            "sample_floor": int(floor),
            "service": sc.service,
            "service_name": dr_service.name if dr_service else sc.service,
            "plan_hash": plan_hash(),
        }
        drill = Drill(incident_id=incident_id, scenario=sc.key, started_at=now, report=report)
        s.add(drill)
        await s.flush()
        drill_id = drill.id
    try:
        injection = await inject(svc, sc, kind)
    except DrillRefused as exc:
        await _abort(svc, drill_id, incident_id, user, exc.message)
        raise DrillRefused(f"{exc.message}\nThe drill incident {incident_id} was closed.") from exc
    report = {
        **report,
        "state": "running",
        "fault": injection.fault,
        "injected_at": _iso(injection.at),
        "chaos_start": _iso(injection.chaos_start),
        "origin": _iso(injection.origin),
        "starts_later": injection.starts_later,
        "injection": injection.detail,
    }
    async with svc.db.session() as s:
        row = await s.get(Drill, drill_id)
        assert row is not None
        row.report = report
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


def target_name(target: str) -> str:
    return "the simulated Factory" if target == "simulator" else "the real Factory, through its chaos API"


async def _abort(svc: Services, drill_id: int, incident_id: str, user: str, why: str) -> None:
    now = svc.clock.now()
    async with svc.db.session() as s:
        row = await s.get(Drill, drill_id)
        if row is not None:
            row.finished_at = now
            row.report = {**row.report, "state": "aborted", "error": why, "finished_at": _iso(now)}
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


# -- measure and finish ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measures:
    origin: datetime
    detected_at: datetime | None = None
    detected_by: str | None = None  # monitor | check | drill: who ran the first failing check
    detected_detail: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    recovery_action_at: datetime | None = None
    recovery_action_by: str | None = None
    recovery_outcome: str | None = None
    recovered_at: datetime | None = None
    last_check_at: datetime | None = None
    last_check_green: bool | None = None


async def measure(s: AsyncSession, drill: Drill, inc: Incident) -> Measures:
    """What the check samples and the incident say so far (see the module doc for the definitions)."""
    r = drill.report
    origin = parse_time(r.get("origin")) or drill.started_at
    floor = int(r.get("sample_floor") or 0)
    stmt = (
        select(CheckSample)
        .where(CheckSample.id > floor, CheckSample.at >= origin)
        .order_by(CheckSample.at, CheckSample.id)
    )
    runs: dict[str, list[CheckSample]] = {}
    for smp in (await s.execute(stmt)).scalars():
        runs.setdefault(smp.run_id, []).append(smp)
    ordered = list(runs.values())  # in order of their first sample
    failing = [[x for x in run if x.status in FAILING] for run in ordered]
    bad = [i for i, f in enumerate(failing) if f]
    detected_at = detected_by = detail = recovered_at = None
    if bad:
        first = bad[0]
        detected_at, detected_by = ordered[first][0].at, ordered[first][0].run_id.split("-", 1)[0]
        detail = "; ".join(f"{x.probe} {x.status}: {x.detail[:80]}" for x in failing[first][:2])
        if bad[-1] + 1 < len(ordered):
            recovered_at = ordered[bad[-1] + 1][0].at
    ev_stmt = (
        select(TimelineEvent)
        .where(
            TimelineEvent.incident_id == inc.id, TimelineEvent.kind == "recovery", TimelineEvent.at >= origin
        )
        .order_by(TimelineEvent.at, TimelineEvent.id)
    )
    events = list((await s.execute(ev_stmt)).scalars())
    action = next((e for e in events if e.data.get("resolved")), events[0] if events else None)
    ack = inc.acknowledged_at
    return Measures(
        origin=origin,
        detected_at=detected_at,
        detected_by=detected_by,
        detected_detail=detail,
        acknowledged_at=ack,
        acknowledged_by=inc.acknowledged_by if ack else None,
        recovery_action_at=action.at if action else None,
        recovery_action_by=action.actor if action else None,
        recovery_outcome=("chaos ended" if action.data.get("resolved") else "not resolved")
        if action
        else None,
        recovered_at=recovered_at,
        last_check_at=ordered[-1][0].at if ordered else None,
        last_check_green=(not failing[-1]) if ordered else None,
    )


def build_report(svc: Services, base: dict[str, Any], m: Measures, now: datetime) -> dict[str, Any]:
    """The stored drill report: the instants, the measured times, and the verdicts against the objectives."""
    dr = load_dr()
    svc_key = str(base.get("service") or "factory")
    objective = dr.services.get(svc_key) or dr.services.get("factory") or next(iter(dr.services.values()))
    rto, rpo = objective.rto, objective.rpo

    def since(at: datetime | None) -> timedelta | None:
        return None if at is None else at - m.origin

    ttd, ttr = since(m.detected_at), since(m.recovered_at)
    tta = since(m.acknowledged_at)
    ack_note = None
    if tta is not None and tta < timedelta(0):
        tta, ack_note = None, "acknowledged before the fault started"
    ack_after_detect = (
        m.acknowledged_at - m.detected_at
        if m.acknowledged_at is not None and m.detected_at is not None and m.acknowledged_at >= m.detected_at
        else None
    )
    sev = str(base.get("severity") or DRILL_SEVERITY)
    known = svc.playbook.severities.severities.get(sev)
    response_target = known.response_target if known is not None else None
    mttd_target = svc.playbook.severities.mttd_target
    elapsed = now - m.origin
    rto_met: bool | None = (ttr <= rto) if ttr is not None else (False if elapsed > rto else None)
    if rpo is None:
        rpo_text = f"No data at risk: {objective.name} holds no data of ours (RPO —); nothing was lost."
    else:
        rpo_text = (
            f"RPO {format_duration(rpo)}: this drill does not lose data; the restore drill measures the RPO."
        )
    return {
        **base,
        "state": "finished" if m.recovered_at is not None else "ended",
        "finished_at": _iso(now),
        "detected_at": _iso(m.detected_at),
        "detected_by": m.detected_by,
        "detected_detail": m.detected_detail,
        "acknowledged_at": _iso(m.acknowledged_at),
        "acknowledged_by": m.acknowledged_by,
        "ack_note": ack_note,
        "recovery_action_at": _iso(m.recovery_action_at),
        "recovery_action_by": m.recovery_action_by,
        "recovery_outcome": m.recovery_outcome,
        "recovered_at": _iso(m.recovered_at),
        "ttd_s": _secs(ttd),
        "tta_s": _secs(tta),
        "ttr_s": _secs(ttr),
        "ack_after_detect_s": _secs(ack_after_detect),
        "ttd_target_s": _secs(mttd_target),
        "ttd_met": (ttd < mttd_target) if ttd is not None else None,
        "response_target_s": _secs(response_target),
        "response_met": (ack_after_detect <= response_target)
        if ack_after_detect is not None and response_target is not None
        else None,
        "rto_s": _secs(rto),
        "rto_met": rto_met,
        "rpo_s": _secs(rpo),
        "rpo_text": rpo_text,
        "data_lost": "none",
    }


async def finish_drill_if_any(
    svc: Services, incident_id: str, user: str | None = None
) -> dict[str, Any] | None:
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
        report = build_report(svc, dict(drill.report), m, now)
        report["finished_by"] = user
        drill.finished_at, drill.report = now, report
        await service.add_event(
            s,
            incident_id,
            "drill_report",
            "[DRILL] " + report_line(report),
            at=now,
            actor=user,
            data={
                "drill_id": drill.id,
                **{k: v for k, v in report.items() if k.endswith(("_s", "_met", "_at"))},
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


def report_line(r: dict[str, Any]) -> str:
    verdict = {True: "within the RTO ✅", False: "RTO missed ❌"}.get(r.get("rto_met"), "not recovered")  # type: ignore[arg-type]
    return (
        f"Drill {r.get('scenario')}: detect {fmt_secs(r.get('ttd_s'))}, acknowledge {fmt_secs(r.get('tta_s'))}, "
        f"recover {fmt_secs(r.get('ttr_s'))} vs RTO {fmt_secs(r.get('rto_s'))}: {verdict}"
    )


def report_text(r: dict[str, Any]) -> str:
    """The report as plain text (the CLI prints it)."""
    lines = [
        f"DRILL REPORT: {r.get('scenario')} ({r.get('title', '')})",
        f"  incident      {r.get('incident_id')}  target: {target_name(str(r.get('target')))}",
        f"  fault         {r.get('injection', '')}",
        f"  clock starts  {r.get('origin')}",
        f"  detected      {fmt_secs(r.get('ttd_s'))} after the fault (by {r.get('detected_by') or '—'};"
        f" target < {fmt_secs(r.get('ttd_target_s'))})",
        f"  acknowledged  {fmt_secs(r.get('tta_s'))} after the fault (by {r.get('acknowledged_by') or 'nobody'})"
        + (f" — {r['ack_note']}" if r.get("ack_note") else ""),
        f"  recovered     {fmt_secs(r.get('ttr_s'))} after the fault"
        f" (recovery action: {r.get('recovery_outcome') or 'none recorded'})",
        f"  RTO           {fmt_secs(r.get('rto_s'))}: "
        + {True: "met", False: "MISSED"}.get(r.get("rto_met"), "not recovered"),  # type: ignore[arg-type]
        f"  RPO           {r.get('rpo_text', '')}",
    ]
    if r.get("starts_later"):
        lines.append(f"  note          {REAL_CHAOS_NOTE}")
    return "\n".join(lines) + "\n"


def drill_summary(r: dict[str, Any]) -> tuple[str, bool | None]:
    """One line for `/incident dr status`, and whether the drill met its objectives (None: nothing to judge)."""
    if r.get("kind") == TABLETOP:
        sm = r.get("summary") or {}
        blocked = len(sm.get("blocked") or [])
        text = (
            f"{sm.get('done', 0)}/{sm.get('steps', 0)} steps done, {blocked} blocked, "
            f"{fmt_secs(sm.get('total_s'))}"
        )
        return text, blocked == 0
    if r.get("kind") == "drill":
        met = r.get("rto_met")
        mark = {True: " ✅", False: " ❌"}.get(met, "") if isinstance(met, bool) else ""
        text = (
            f"recover {fmt_secs(r.get('ttr_s'))}{mark} vs RTO {fmt_secs(r.get('rto_s'))} "
            f"(detect {fmt_secs(r.get('ttd_s'))}, acknowledge {fmt_secs(r.get('tta_s'))}); "
            f"{'no data at risk' if r.get('rpo_s') is None else 'RPO ' + fmt_secs(r.get('rpo_s'))}"
        )
        return text, met if isinstance(met, bool) else None
    figures = ", ".join(f"{k} {fmt_secs(v)}" for k, v in r.items() if k.endswith("_s"))
    return f"recorded{': ' + figures if figures else ''}", None


# -- tabletop ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanStep:
    section: str
    text: str


_HEADING = re.compile(r"^(#{2,3})\s+(.*)$")
_ITEM = re.compile(r"^(\s*)([-*]|\d+\.)\s+(.*)$")
_PROCEDURES = re.compile(r"^(?:\d+\.\s*)?recovery procedures", re.I)


def _mrkdwn(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"\*\*(.+?)\*\*", r"*\1*", text)


def tabletop_steps(path: Path | str | None = None) -> list[PlanStep]:
    """The steps of dr-plan.md's "Recovery procedures" section, in order: each paragraph, bullet and numbered
    item is a step; a line ending in ':' that introduces a numbered list becomes the prefix of its items."""
    path = Path(path) if path is not None else DR_PLAN
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise PlaybookError(f"{path} not found") from exc
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if (m := _HEADING.match(line)) and m.group(1) == "##" and _PROCEDURES.match(m.group(2))
        ),
        None,
    )
    if start is None:
        raise PlaybookError(f"{path.name} has no '## Recovery procedures' section to walk through")
    section = "§" + _HEADING.match(lines[start]).group(2).strip()  # type: ignore[union-attr]
    raw: list[tuple[str, str, bool]] = []  # (section, text, numbered)
    current: list[str] | None = None
    numbered = False

    def flush() -> None:
        nonlocal current
        if current:
            raw.append((section, " ".join(current), numbered))
        current = None

    for line in lines[start + 1 :]:
        head = _HEADING.match(line)
        if (head and head.group(1) == "##") or line.strip() == "---":
            break
        if head:
            flush()
            section = "§" + head.group(2).strip()
            continue
        if not line.strip():
            flush()
            continue
        item = _ITEM.match(line)
        if item:
            flush()
            current, numbered = [item.group(3).strip()], item.group(2)[0].isdigit()
        elif current is None:
            current, numbered = [line.strip()], False
        else:
            current.append(line.strip())
    flush()
    steps: list[PlanStep] = []
    lead, n, total = "", 0, 0
    for i, (sec, text, num) in enumerate(raw):
        nxt = raw[i + 1] if i + 1 < len(raw) else None
        if text.endswith(":") and nxt is not None and nxt[2] and nxt[0] == sec and not num:
            lead, n = text.rstrip(":").strip(), 0
            total = 0
            for later in raw[i + 1 :]:
                if not later[2] or later[0] != sec:
                    break
                total += 1
            continue
        if num and lead:
            n += 1
            steps.append(PlanStep(sec, _mrkdwn(f"{lead}, step {n}/{total}: {text}")))
            if n == total:
                lead = ""
            continue
        lead = ""
        steps.append(PlanStep(sec, _mrkdwn(text)))
    if not steps:
        raise PlaybookError(f"{path.name}: the recovery procedures section has no steps")
    return [PlanStep(_mrkdwn(st.section), st.text) for st in steps]


@dataclass(frozen=True)
class TabletopStep:
    drill_id: int
    index: int
    total: int
    section: str
    text: str
    channel: str
    resumed: bool = False


@dataclass(frozen=True)
class TabletopAnswer:
    state: Literal["recorded", "stale", "missing"]
    drill_id: int
    index: int
    channel: str = ""
    outcome: str | None = None
    by: str | None = None
    seconds: float | None = None
    answered_ts: str | None = None
    step: TabletopStep | None = None  # the answered step
    next: TabletopStep | None = None
    summary: dict[str, Any] | None = None  # when this answer finished the tabletop


def _step_view(drill: Drill, index: int, *, resumed: bool = False) -> TabletopStep:
    r = drill.report
    step = r["steps"][index]
    return TabletopStep(
        drill.id, index, len(r["steps"]), str(step["section"]), str(step["text"]), str(r["channel"]), resumed
    )


def _last_activity(drill: Drill) -> datetime:
    times = [drill.started_at]
    for step in drill.report.get("steps", []):
        times += [t for t in (parse_time(step.get("posted_at")), parse_time(step.get("answered_at"))) if t]
    return max(times)


async def start_tabletop(svc: Services, channel: str, user: str) -> TabletopStep:
    """Start a tabletop in this channel, or resume the one still running here (its current step again)."""
    try:
        steps = tabletop_steps()
    except PlaybookError as exc:
        raise DrillRefused(f"Cannot run a tabletop: {exc}") from exc
    now = svc.clock.now()
    async with svc.db.session() as s:
        stmt = select(Drill).where(Drill.scenario == TABLETOP, Drill.finished_at.is_(None)).with_for_update()
        for open_one in (await s.execute(stmt)).scalars():
            if open_one.report.get("channel") != channel:
                continue
            if now - _last_activity(open_one) <= TABLETOP_IDLE:
                return _step_view(open_one, int(open_one.report.get("current", 0)), resumed=True)
            open_one.finished_at = now
            open_one.report = {**open_one.report, "state": "abandoned", "finished_at": _iso(now)}
        drill = Drill(
            incident_id=None,
            scenario=TABLETOP,
            started_at=now,
            report={
                "kind": TABLETOP,
                "state": "running",
                "channel": channel,
                "started_by": user,
                "started_at": _iso(now),
                "plan_hash": plan_hash(),
                "current": 0,
                "steps": [{"index": i, "section": st.section, "text": st.text} for i, st in enumerate(steps)],
            },
        )
        s.add(drill)
        await s.flush()
        return _step_view(drill, 0)


async def tabletop_posted(svc: Services, drill_id: int, index: int, ts: str) -> None:
    """Record the message a step was posted as; its timing starts with the first posting."""
    async with svc.db.session() as s:
        drill = await s.get(Drill, drill_id, with_for_update=True)
        if drill is None or drill.scenario != TABLETOP:
            return
        report = copy.deepcopy(drill.report)
        step = report["steps"][index]
        step.setdefault("posted_at", _iso(svc.clock.now()))
        step["ts"] = ts
        drill.report = report


async def answer_tabletop(
    svc: Services, drill_id: int, index: int, outcome: str, user: str
) -> TabletopAnswer:
    """Done or Blocked for one step: timed from its posting; the next step (or the summary) follows."""
    if outcome not in ("done", "blocked"):
        raise ValueError(outcome)
    now = svc.clock.now()
    async with svc.db.session() as s:
        drill = await s.get(Drill, drill_id, with_for_update=True)
        if drill is None or drill.scenario != TABLETOP:
            return TabletopAnswer("missing", drill_id, index)
        report = copy.deepcopy(drill.report)
        steps: list[dict[str, Any]] = report["steps"]
        if not 0 <= index < len(steps):
            return TabletopAnswer("missing", drill_id, index, report["channel"])
        step = steps[index]
        if step.get("outcome") or drill.finished_at is not None or index != report.get("current"):
            return TabletopAnswer(
                "stale", drill_id, index, report["channel"], step.get("outcome"), step.get("by")
            )
        posted = parse_time(step.get("posted_at")) or now
        step.update(outcome=outcome, by=user, answered_at=_iso(now), seconds=_secs(now - posted))
        summary: dict[str, Any] | None = None
        if index + 1 < len(steps):
            report["current"] = index + 1
        else:
            summary = tabletop_summary(report, now, drill.started_at)
            report.update(state="finished", finished_at=_iso(now), summary=summary)
            drill.finished_at = now
        drill.report = report
        view = _step_view(drill, index)
        nxt = _step_view(drill, index + 1) if summary is None else None
        return TabletopAnswer(
            "recorded",
            drill_id,
            index,
            report["channel"],
            outcome,
            user,
            step["seconds"],
            step.get("ts"),
            view,
            nxt,
            summary,
        )


def tabletop_summary(report: dict[str, Any], now: datetime, started_at: datetime) -> dict[str, Any]:
    steps = report.get("steps", [])
    blocked = [
        {"index": st["index"], "section": st["section"], "text": st["text"][:300], "by": st.get("by")}
        for st in steps
        if st.get("outcome") == "blocked"
    ]
    timed = [float(st["seconds"]) for st in steps if isinstance(st.get("seconds"), int | float)]
    slowest = max(steps, key=lambda st: st.get("seconds") or 0, default=None)
    return {
        "steps": len(steps),
        "done": sum(1 for st in steps if st.get("outcome") == "done"),
        "blocked": blocked,
        "total_s": _secs(now - started_at),
        "step_time_s": round(sum(timed), 3),
        "slowest": {
            "index": slowest["index"],
            "section": slowest["section"],
            "seconds": slowest.get("seconds"),
        }
        if slowest
        else None,
    }


# -- CLI -----------------------------------------------------------------------------------------------------


# How the CLI gets its services: wiring.services.open_services (the domain does not build them itself).
OpenServices = Callable[[Settings], AbstractAsyncContextManager[Services]]


def drill_main(argv: Sequence[str], open_services: OpenServices, *, settings: Settings | None = None) -> int:
    """`incident-bot drill fail|throttle|badjwt|service-down [--wait [--recover]]`."""
    p = argparse.ArgumentParser(
        prog="incident-bot drill",
        description="Run a disaster-recovery drill: a [DRILL] incident in Slack, a fault injected into the "
        "Factory (the simulator at once; a real Factory through its chaos API, which starts the next day), "
        "times to detect, acknowledge and recover measured against the RTO in dr.yaml.",
    )
    p.add_argument("scenario", choices=list(SCENARIOS))
    p.add_argument(
        "--wait", action="store_true", help="check every --interval until recovered, then print the report"
    )
    p.add_argument(
        "--recover",
        action="store_true",
        help="with --wait: run the recovery action once the fault shows (unattended)",
    )
    p.add_argument(
        "--interval", type=float, default=15.0, help="seconds between checks with --wait (default 15)"
    )
    p.add_argument("--timeout", type=float, help="stop waiting after S seconds (default: the RTO)")
    p.add_argument("--target", choices=["auto", "simulator", "factory"], default="auto")
    p.add_argument(
        "--user", default=MONITOR_USER, help="who runs the drill (a Slack user id shows as a mention)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(list(argv))
    try:
        return asyncio.run(_drill_cli(open_services(settings or get_settings()), args))
    except DrillRefused as exc:
        print(f"incident-bot drill: {exc.message}", file=sys.stderr)
        return 1


async def _drill_cli(services: AbstractAsyncContextManager[Services], args: argparse.Namespace) -> int:
    async with services as svc:
        target: Target | None = None if args.target == "auto" else args.target
        started = await start_drill(svc, args.scenario, args.user, target=target)
        _print_started(started, args.json)
        if not args.wait:
            return 0
        report = await wait_for_drill(
            svc,
            started,
            args.user,
            interval=args.interval,
            timeout=args.timeout,
            run_recovery=args.recover,
        )
        if report is None:
            print(
                "incident-bot drill: not recovered before the timeout; the drill stays open "
                f"({started.incident_id}).",
                file=sys.stderr,
            )
            return 1
        print(
            json.dumps(report, indent=2) if args.json else report_text(report),
            end="" if not args.json else "\n",
        )
        return 0


def _print_started(started: DrillStarted, as_json: bool) -> None:
    r = started.report
    if as_json:
        print(json.dumps({"drill_id": started.drill_id, **r}, indent=2))
        return
    print(
        f"Drill #{started.drill_id} started: {started.scenario} → {started.incident_id}"
        f" (war room {started.channel_id or 'not ready yet'})"
    )
    print(f"  {r.get('injection', '')}")
    print(
        f"  clock starts {r.get('origin')}; finish with the recovery action (dr-plan.md §{r.get('section')}),"
        " then the report is posted in the war room."
    )


async def wait_for_drill(
    svc: Services,
    started: DrillStarted,
    user: str,
    *,
    interval: float = 15.0,
    timeout: float | None = None,
    run_recovery: bool = False,
) -> dict[str, Any] | None:
    """Check every `interval` seconds (these checks count as detection) until the drill finishes; with
    `run_recovery`, run the recovery action once a check shows the fault. None at the timeout."""
    r = started.report
    rto = float(
        load_dr().services.get(str(r.get("service")), load_dr().services["factory"]).rto.total_seconds()
    )
    origin = parse_time(r.get("origin")) or svc.clock.now()
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
            and r.get("scenario") != "service-down"
        ):
            await recover(svc, started.incident_id, user)
            recovered_once = True
        report = await finish_drill_if_any(svc, started.incident_id, user)
        if report is not None:
            return report
        async with svc.db.session() as s:
            done = await s.get(Drill, started.drill_id)
            if done is not None and done.finished_at is not None:
                return dict(done.report)
    return None
