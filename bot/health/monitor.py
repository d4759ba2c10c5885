"""The background monitor (run by the worker): probe on a schedule, judge a sliding window of samples
against thresholds.yaml, declare before customers notice, and say when metrics are back to normal."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from bot import incident_store as service
from bot.context import Services
from bot.escalation.flows import replan
from bot.health.flows import run_check
from bot.health.probes import CheckReport
from bot.health.thresholds import Thresholds, classify, load_thresholds
from bot.incidents.flows import DeclareRequest, IncidentFlows
from bot.models import CheckSample
from bot.outbox import deliver, enqueue
from bot.states import IncidentStatus

log = logging.getLogger("incident_bot.monitor")

PROBLEM = "factory-health"
MONITOR_USER = "incident-bot"
ORDER_PATH = ("order", "verify")


@dataclass(frozen=True)
class Window:
    runs: int
    failing_streak: int  # consecutive failing runs, newest first
    first_failing_at: datetime | None
    error_rate: float
    p99_ms: float
    availability: float

    def describe(self) -> str:
        return (
            f"error rate {self.error_rate:.0%}, p99 {self.p99_ms:.0f} ms, availability {self.availability:.1%}"
            f" over {self.runs} checks"
        )


def judge(samples: list[CheckSample]) -> Window:
    """Metrics of a window. A run fails when any order-path or Factory probe is down; error rate and p99 are
    over the order probe (the synthetic transaction), availability over runs."""
    runs: dict[str, list[CheckSample]] = {}
    for smp in sorted(samples, key=lambda x: (x.at, x.id or 0)):
        runs.setdefault(smp.run_id, []).append(smp)
    ordered = sorted(runs.values(), key=lambda r: r[0].at)
    failed = [any(x.status == "down" for x in run) for run in ordered]
    streak, first = 0, None
    for run, bad in zip(reversed(ordered), reversed(failed), strict=True):
        if not bad:
            break
        streak, first = streak + 1, run[0].at
    orders = [x for run in ordered for x in run if x.probe in ORDER_PATH and x.status != "skipped"]
    errors = sum(1 for x in orders if x.status == "down")
    lat = sorted(x.latency_ms for x in orders) or [0.0]
    p99 = lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)]
    return Window(
        runs=len(ordered),
        failing_streak=streak,
        first_failing_at=first,
        error_rate=errors / len(orders) if orders else 0.0,
        p99_ms=p99,
        availability=(1 - sum(failed) / len(failed)) if failed else 1.0,
    )


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


async def monitor_once(svc: Services, th: Thresholds | None = None) -> str:
    """One monitor step. Returns what it did: ok | watching | declared | open | recovered."""
    th = th or load_thresholds()
    report = await run_check(svc, kind="monitor")
    now = svc.clock.now()
    window_s = max(th.monitor.window_s, svc.settings.monitor_interval * (th.monitor.min_samples + 1))
    async with svc.db.session() as s:
        stmt = select(CheckSample).where(
            CheckSample.run_id.like("monitor-%"), CheckSample.at >= now - timedelta(seconds=window_s)
        )
        samples = list((await s.execute(stmt)).scalars())
        open_inc = await service.open_for_problem(s, PROBLEM)
    w = judge(samples)
    severity = classify(w.error_rate, w.p99_ms, w.availability, th)
    if open_inc is None:
        # One failed check is not an incident: only a streak of min_samples failing runs declares.
        if severity is None or w.failing_streak < th.monitor.min_samples:
            return "watching" if w.failing_streak else "ok"
        return await _declare(svc, report, w, severity)
    if (
        report.verdict != "down"
        and w.failing_streak == 0
        and open_inc.status not in (IncidentStatus.MONITORING, IncidentStatus.RESOLVED)
    ):
        await _back_to_normal(svc, open_inc.id, w)
        return "recovered"
    return "open"


async def _declare(svc: Services, report: CheckReport, w: Window, severity: str) -> str:
    down = [r for r in report.results if r.status == "down"]
    what = ", ".join(f"{r.name} {r.detail}" for r in down[:2]) or report.verdict
    summary = f"Factory health: {what}"[:480]
    result = await IncidentFlows(svc).declare(
        DeclareRequest(
            severity=severity,
            summary=summary,
            user=MONITOR_USER,
            impact=f"Automatic detection: {w.describe()}",
            area="api",
            source="monitor",
            detected_at=w.first_failing_at,
            problem_key=PROBLEM,
        )
    )
    if result.state == "open_for_problem":
        return "open"
    if result.incident_id:
        async with svc.db.session() as s:
            await service.add_event(
                s,
                result.incident_id,
                "detected",
                f"Monitor detected the problem at {w.first_failing_at:%H:%M:%S} UTC: {w.describe()}",
                at=svc.clock.now(),
                data={"window": w.__dict__ | {"first_failing_at": str(w.first_failing_at)}},
            )
        await svc.kick(result.incident_id, by="monitor")
    log.warning("monitor declared %s (%s)", result.incident_id, severity)
    return "declared"


async def _back_to_normal(svc: Services, incident_id: str, w: Window) -> None:
    now = svc.clock.now()
    minimum = svc.playbook.severities.monitoring_minimum * svc.settings.time_scale
    mins = int(minimum.total_seconds() // 60)
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id, for_update=True)
        if inc is None or inc.status in (IncidentStatus.MONITORING, IncidentStatus.RESOLVED):
            return
        inc.status, inc.monitoring_at, inc.updated_at = IncidentStatus.MONITORING, now, now
        await replan(svc, s, inc, reason="metrics back to normal")
        await service.add_event(
            s,
            incident_id,
            "status",
            f"Status → MONITORING by the monitor: metrics back to normal ({w.describe()})",
            at=now,
            actor=MONITOR_USER,
            data={"status": IncidentStatus.MONITORING, "by": "monitor"},
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
                payload={"text": f"📉 Metrics back to normal; MONITORING for {mins} min per playbook."},
            )
        await deliver(svc, incident_id=incident_id)
