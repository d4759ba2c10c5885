"""What a drill measured (from the check samples and the incident) and the stored report built from it,
with its plain-text renderings (a timeline line, the CLI's report, `/incident dr status`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import Services
from bot.dr.fault import REAL_CHAOS_NOTE, target_name
from bot.dr.plan import load_dr
from bot.dr.times import fmt_secs, iso, parse_time, secs
from bot.models import CheckSample, Drill, Incident, TimelineEvent
from bot.playbook import format_duration

DRILL_SEVERITY = "P1"
FAILING = ("down", "degraded")  # a check run is green when none of its probes is in these states
TABLETOP = "tabletop"
STILL_SCHEDULED = (
    "Chaos never started during the drill: the real Factory still has it scheduled and it cannot be cancelled "
    "(the fix code appears only once chaos runs). Expect the fault at {when}; the monitor will catch it."
)
_RUNNING_SINCE = re.compile(r"running since (\S+)")


@dataclass(frozen=True)
class DrillReport:
    """A drill's report, typed: what it injected, the instants it measured (ISO text, as stored), the times
    since the fault in seconds and the verdicts against the objectives. Stored as JSON in `drills.report`
    (`as_json`, read back with `of`); a tabletop's report is its own shape (bot/dr/tabletop.py)."""

    scenario: str
    incident_id: str
    kind: str = "drill"
    state: str = "starting"  # starting → running → finished | ended | aborted
    title: str = ""
    section: str = ""  # dr-plan.md's section for the scenario
    target: str = "simulator"  # simulator | factory
    factory_url: str = ""
    severity: str = DRILL_SEVERITY
    started_by: str = ""
    started_at: str | None = None
    sample_floor: int = 0  # check samples up to this id were before the drill
    service: str = "factory"
    service_name: str = ""
    plan_hash: str = ""
    fault: str | None = None
    injected_at: str | None = None
    chaos_start: str | None = None  # a real Factory: when its chaos is scheduled to start
    origin: str | None = None  # where the clock starts
    starts_later: bool = False
    injection: str = ""  # what was done, in words
    error: str | None = None  # why it was aborted
    warning: str | None = None
    finished_at: str | None = None
    finished_by: str | None = None
    detected_at: str | None = None
    detected_by: str | None = None
    detected_detail: str | None = None
    acknowledged_at: str | None = None
    acknowledged_by: str | None = None
    ack_note: str | None = None
    recovery_action_at: str | None = None
    recovery_action_by: str | None = None
    recovery_outcome: str | None = None
    recovered_at: str | None = None
    ttd_s: float | None = None
    tta_s: float | None = None
    ttr_s: float | None = None
    ack_after_detect_s: float | None = None
    ttd_target_s: float | None = None
    ttd_met: bool | None = None
    response_target_s: float | None = None
    response_met: bool | None = None
    rto_s: float | None = None
    rto_met: bool | None = None
    rpo_s: float | None = None
    rpo_text: str = ""
    data_lost: str | None = None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> DrillReport:
        """From the stored JSON (keys this version does not know are left out)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def figures(self) -> dict[str, Any]:
        """The instants, times and verdicts (the timeline event's data)."""
        return {k: v for k, v in self.as_json().items() if k.endswith(("_s", "_met", "_at"))}


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
    r = DrillReport.of(drill.report)
    origin = parse_time(r.origin) or drill.started_at
    floor = int(r.sample_floor or 0)
    # A real Factory's chaos starts when it does (the scheduled startDate may be moved or overwritten): every
    # sample after the injection counts, and the clock starts at the chaos' own start once a check sees it.
    real = r.target == "factory"
    since = (parse_time(r.injected_at) or drill.started_at) if real else origin
    stmt = (
        select(CheckSample)
        .where(CheckSample.id > floor, CheckSample.at >= since)
        .order_by(CheckSample.at, CheckSample.id)
    )
    runs: dict[str, list[CheckSample]] = {}
    for smp in (await s.execute(stmt)).scalars():
        runs.setdefault(smp.run_id, []).append(smp)
    ordered = list(runs.values())  # in order of their first sample
    failing = [[x for x in run if x.status in FAILING] for run in ordered]
    bad = [i for i, f in enumerate(failing) if f]
    detected_at = detected_by = detail = recovered_at = None
    if bad and real:
        vendor = next((x for x in ordered[bad[0]] if x.probe == "factory_vendor"), None)
        seen = _RUNNING_SINCE.search(vendor.detail) if vendor is not None else None
        started = parse_time(seen[1]) if seen else None
        origin = min(started, ordered[bad[0]][0].at) if started else ordered[bad[0]][0].at
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


def build_report(svc: Services, base: DrillReport, m: Measures, now: datetime) -> DrillReport:
    """The stored drill report: the instants, the measured times, and the verdicts against the objectives."""
    dr = load_dr()
    svc_key = base.service or "factory"
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
    sev = base.severity or DRILL_SEVERITY
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
    warning = None
    if base.target == "factory" and m.detected_at is None:
        warning = STILL_SCHEDULED.format(when=base.chaos_start or "an unknown time")
    return replace(
        base,
        origin=iso(m.origin),
        warning=warning,
        state="finished" if m.recovered_at is not None else "ended",
        finished_at=iso(now),
        detected_at=iso(m.detected_at),
        detected_by=m.detected_by,
        detected_detail=m.detected_detail,
        acknowledged_at=iso(m.acknowledged_at),
        acknowledged_by=m.acknowledged_by,
        ack_note=ack_note,
        recovery_action_at=iso(m.recovery_action_at),
        recovery_action_by=m.recovery_action_by,
        recovery_outcome=m.recovery_outcome,
        recovered_at=iso(m.recovered_at),
        ttd_s=secs(ttd),
        tta_s=secs(tta),
        ttr_s=secs(ttr),
        ack_after_detect_s=secs(ack_after_detect),
        ttd_target_s=secs(mttd_target),
        ttd_met=(ttd < mttd_target) if ttd is not None else None,
        response_target_s=secs(response_target),
        response_met=(ack_after_detect <= response_target)
        if ack_after_detect is not None and response_target is not None
        else None,
        rto_s=secs(rto),
        rto_met=rto_met,
        rpo_s=secs(rpo),
        rpo_text=rpo_text,
        data_lost="none",
    )


def report_line(r: DrillReport) -> str:
    verdict = {True: "within the RTO ✅", False: "RTO missed ❌", None: "not recovered"}[r.rto_met]
    return (
        f"Drill {r.scenario}: detect {fmt_secs(r.ttd_s)}, acknowledge {fmt_secs(r.tta_s)}, "
        f"recover {fmt_secs(r.ttr_s)} vs RTO {fmt_secs(r.rto_s)}: {verdict}"
    )


def report_text(r: DrillReport) -> str:
    """The report as plain text (the CLI prints it)."""
    lines = [
        f"DRILL REPORT: {r.scenario} ({r.title})",
        f"  incident      {r.incident_id}  target: {target_name(str(r.target))}",
        f"  fault         {r.injection}",
        f"  clock starts  {r.origin}",
        f"  detected      {fmt_secs(r.ttd_s)} after the fault (by {r.detected_by or '—'};"
        f" target < {fmt_secs(r.ttd_target_s)})",
        f"  acknowledged  {fmt_secs(r.tta_s)} after the fault (by {r.acknowledged_by or 'nobody'})"
        + (f" — {r.ack_note}" if r.ack_note else ""),
        f"  recovered     {fmt_secs(r.ttr_s)} after the fault"
        f" (recovery action: {r.recovery_outcome or 'none recorded'})",
        f"  RTO           {fmt_secs(r.rto_s)}: "
        + {True: "met", False: "MISSED", None: "not recovered"}[r.rto_met],
        f"  RPO           {r.rpo_text}",
    ]
    if r.starts_later:
        lines.append(f"  note          {REAL_CHAOS_NOTE}")
    if r.warning:
        lines.append(f"  WARNING       {r.warning}")
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
        d = DrillReport.of(r)
        met = d.rto_met
        mark = {True: " ✅", False: " ❌"}.get(met, "") if isinstance(met, bool) else ""
        text = (
            f"recover {fmt_secs(d.ttr_s)}{mark} vs RTO {fmt_secs(d.rto_s)} "
            f"(detect {fmt_secs(d.ttd_s)}, acknowledge {fmt_secs(d.tta_s)}); "
            f"{'no data at risk' if d.rpo_s is None else 'RPO ' + fmt_secs(d.rpo_s)}"
        )
        return text, met if isinstance(met, bool) else None
    figures = ", ".join(f"{k} {fmt_secs(v)}" for k, v in r.items() if k.endswith("_s"))
    return f"recorded{': ' + figures if figures else ''}", None
