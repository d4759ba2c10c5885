"""Health-gated resolve: an incident the monitor watches resolves only on a fresh green check and a clean
window (no failing monitor sample for `alerting.clean_for`), on top of the playbook's MONITORING time."""

from __future__ import annotations

from dataclasses import dataclass

from bot import incident_store as service
from bot.context import Services
from bot.health.flows import run_check
from bot.health.monitor import DRILL_PROBLEM, PROBLEM
from bot.health.thresholds import load_thresholds
from bot.models import AlertState, Incident
from bot.states import IncidentStatus, MonitorAlertState


@dataclass(frozen=True)
class HealthGate:
    ok: bool
    text: str  # why not, in plain words; "" when ok
    verdict: str | None = None  # of the fresh check


def gated(inc: Incident) -> bool:
    """Incidents bound to a Factory-health alert (declared by the monitor, or drills) are gated."""
    return inc.problem_key in (PROBLEM, DRILL_PROBLEM)


async def health_gate(svc: Services, inc: Incident, user: str) -> HealthGate:
    th = load_thresholds()
    report = await run_check(svc, incident_id=inc.id, kind="check", actor=user)
    now = svc.clock.now()
    problems: list[str] = []
    if report.verdict != "healthy":
        problems.append(
            f"the fresh check is {report.verdict}: {report.impact or ', '.join(report.failing_probes)}"
        )
    async with svc.db.session() as s:
        alert = await s.get(AlertState, inc.problem_key or "")
    if alert is not None:
        last = alert.last_failing_at
        quiet = (now - last).total_seconds() if last is not None else None
        if alert.state != MonitorAlertState.INACTIVE or (quiet is not None and quiet < th.alerting.clean_s):
            left = th.alerting.clean_s - (quiet or 0)
            problems.append(
                f"the monitor's alert is {alert.state}; a clean window needs {th.alerting.clean_s / 60:g} min"
                f" without a failing check ({max(left, 0) / 60:.0f} min to go)"
            )
    return HealthGate(not problems, "; ".join(problems), report.verdict)


async def resolve_objection(svc: Services, incident_id: str, user: str) -> str:
    """The health gate as a resolve gate (registered at wiring): why not ("" = no objection). Only incidents
    bound to the monitor's alert are gated; the others resolve on the playbook's criteria alone."""
    async with svc.db.session() as s:
        inc = await service.get(s, incident_id)
    if inc is None or inc.status == IncidentStatus.RESOLVED or not gated(inc):
        return ""
    return (await health_gate(svc, inc, user)).text
