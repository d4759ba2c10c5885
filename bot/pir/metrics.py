"""Incident response metrics (seed 001, "Metrics to Track"). Pure: datetimes in, durations and verdicts out.

Definitions used everywhere (the PIR states them too):
- detection time = incident.detected_at (the monitor's first failing sample), else the declaration time;
- MTTD = declared_at − detected_at; MTTA = acknowledged_at − declared_at; MTTR = resolved_at − declared_at;
- escalation rate = incidents with a page at level ≥ 2 / all incidents in the period;
- MTTF = uptime / number of incidents, uptime = period − time covered by incidents (declared → resolved,
  clipped to the period; overlapping incidents count once).
Targets are met when strictly below them ("P0: <15 min", "<10 %").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.playbook import SEVERITIES, SeverityBook
from bot.timefmt import fmt_duration as fmt_duration  # re-exported: callers import it from here

# Seed 001: "MTTD target: <5 minutes for P0/P1"; lower severities have no detection target.
MTTD_SEVERITIES = ("P0", "P1")

DEFINITIONS = {
    "MTTD": "declared − detected (first failing check, else declaration)",
    "MTTA": "first acknowledgement − declared",
    "MTTR": "resolved − declared",
}


@dataclass(frozen=True)
class Times:
    """The instants one incident's metrics are computed from (UTC-aware)."""

    severity: str
    declared_at: datetime
    detected_at: datetime | None = None
    acknowledged_at: datetime | None = None
    monitoring_at: datetime | None = None
    resolved_at: datetime | None = None
    escalated: bool = False  # any page at level >= 2

    @property
    def detected(self) -> datetime:
        return self.detected_at or self.declared_at


def _span(start: datetime | None, end: datetime | None) -> timedelta | None:
    if start is None or end is None:
        return None
    return max(end - start, timedelta(0))  # clock skew between probes and the bot must not go negative


def mttd(t: Times) -> timedelta:
    return _span(t.detected, t.declared_at) or timedelta(0)


def mtta(t: Times) -> timedelta | None:
    return _span(t.declared_at, t.acknowledged_at)


def mttr(t: Times) -> timedelta | None:
    return _span(t.declared_at, t.resolved_at)


@dataclass(frozen=True)
class Measure:
    name: str  # MTTD | MTTA | MTTR
    value: timedelta | None  # None: not happened yet (never acknowledged, still open)
    target: timedelta | None  # None: no target for this severity

    @property
    def met(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        return self.value < self.target

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "no target"
        if self.value is None:
            return "pending"
        return "met" if self.met else "missed"


def targets(book: SeverityBook, severity: str) -> dict[str, timedelta | None]:
    sev = book.severities.get(severity)
    return {
        "MTTD": book.mttd_target if severity in MTTD_SEVERITIES else None,
        "MTTA": sev.response_target if sev else None,
        "MTTR": sev.mttr_target if sev else None,
    }


def measures(t: Times, book: SeverityBook) -> list[Measure]:
    goal = targets(book, t.severity)
    return [
        Measure("MTTD", mttd(t), goal["MTTD"]),
        Measure("MTTA", mtta(t), goal["MTTA"]),
        Measure("MTTR", mttr(t), goal["MTTR"]),
    ]


def mean(values: Iterable[timedelta | None]) -> timedelta | None:
    got = [v for v in values if v is not None]
    if not got:
        return None
    total = sum(got, timedelta(0))
    return timedelta(seconds=round(total.total_seconds() / len(got)))


def covered(intervals: Iterable[tuple[datetime, datetime]]) -> timedelta:
    """Total length of the union of intervals (overlapping incidents are one outage, not two)."""
    total, cur_start, cur_end = timedelta(0), None, None
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if cur_end is None or start > cur_end:
            if cur_start is not None and cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        elif end > cur_end:
            cur_end = end
    if cur_start is not None and cur_end is not None:
        total += cur_end - cur_start
    return total


@dataclass(frozen=True)
class SeverityStats:
    severity: str
    count: int
    measures: list[Measure]  # means over the incidents that have the value, against the per-incident targets


@dataclass(frozen=True)
class Stats:
    start: datetime
    end: datetime
    total: int
    open: int
    by_severity: dict[str, SeverityStats]
    overall: list[Measure]  # means over all severities (no target: targets differ per severity)
    escalated: int
    escalation_rate: float | None
    escalation_target: float
    downtime: timedelta
    uptime: timedelta
    mttf: timedelta | None  # None: no incidents, so no failure to measure to
    previous_mttf: timedelta | None = None
    previous_total: int | None = None

    @property
    def escalation_met(self) -> bool | None:
        return None if self.escalation_rate is None else self.escalation_rate < self.escalation_target

    @property
    def mttf_trend(self) -> str | None:
        """Seed 001's MTTF target is an increasing trend: compare with the previous period of equal length."""
        if self.previous_total is None:
            return None
        if self.mttf is None:
            return "up" if self.previous_total else "flat"
        if self.previous_mttf is None:
            return "down" if self.total else "flat"
        if self.mttf == self.previous_mttf:
            return "flat"
        return "up" if self.mttf > self.previous_mttf else "down"


def compute_stats(
    incidents: Sequence[Times],
    start: datetime,
    end: datetime,
    book: SeverityBook,
    *,
    previous: Sequence[Times] | None = None,
) -> Stats:
    """Metrics over the incidents declared in [start, end). `previous`, the incidents of the period
    before, gives the MTTF trend."""
    inside = [t for t in incidents if start <= t.declared_at < end]
    by_sev: dict[str, SeverityStats] = {}
    for sev in SEVERITIES:
        group = [t for t in inside if t.severity == sev]
        goal = targets(book, sev)
        by_sev[sev] = SeverityStats(
            sev,
            len(group),
            [
                Measure("MTTD", mean(mttd(t) for t in group), goal["MTTD"]),
                Measure("MTTA", mean(mtta(t) for t in group), goal["MTTA"]),
                Measure("MTTR", mean(mttr(t) for t in group), goal["MTTR"]),
            ],
        )
    overall = [
        Measure("MTTD", mean(mttd(t) for t in inside), None),
        Measure("MTTA", mean(mtta(t) for t in inside), None),
        Measure("MTTR", mean(mttr(t) for t in inside), None),
    ]
    down = _downtime(inside, start, end)
    uptime = (end - start) - down
    escalated = sum(1 for t in inside if t.escalated)
    prev_mttf, prev_total = None, None
    if previous is not None:
        length = end - start
        p_start = start - length
        prev = [t for t in previous if p_start <= t.declared_at < start]
        prev_total = len(prev)
        prev_up = length - _downtime(prev, p_start, start)
        prev_mttf = prev_up / prev_total if prev_total else None
    return Stats(
        start=start,
        end=end,
        total=len(inside),
        open=sum(1 for t in inside if t.resolved_at is None),
        by_severity=by_sev,
        overall=overall,
        escalated=escalated,
        escalation_rate=escalated / len(inside) if inside else None,
        escalation_target=book.escalation_rate_target,
        downtime=down,
        uptime=uptime,
        mttf=_round(uptime / len(inside)) if inside else None,
        previous_mttf=_round(prev_mttf) if prev_mttf is not None else None,
        previous_total=prev_total,
    )


def _downtime(group: Sequence[Times], start: datetime, end: datetime) -> timedelta:
    spans = [(max(t.declared_at, start), min(t.resolved_at or end, end)) for t in group]
    return covered(spans)


def _round(td: timedelta) -> timedelta:
    return timedelta(seconds=round(td.total_seconds()))


def fmt_target(td: timedelta | None) -> str:
    return "—" if td is None else f"< {fmt_duration(td)}"


def fmt_rate(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f} %"
