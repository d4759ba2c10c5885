"""The escalation ladder as data, and the pure planning function: incident state in, due steps out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from bot.playbook import PlaybookError, parse_duration
from bot.timefmt import fmt_elapsed

Mode = Literal["dm", "channel", "none"]


@dataclass(frozen=True)
class LadderLevel:
    level: int
    name: str
    base: str  # "declare" or "L<n>"
    after: timedelta
    until: Literal["acknowledged", "resolved"]
    severities: tuple[str, ...] | None = None

    @property
    def step(self) -> str:
        return f"L{self.level}"


@dataclass(frozen=True)
class SeverityPaging:
    mode: Mode
    initial_levels: tuple[int, ...]
    escalate: bool
    notify_war_room: bool = False


@dataclass(frozen=True)
class Policy:
    levels: tuple[LadderLevel, ...]
    paging: dict[str, SeverityPaging] = field(default_factory=dict)

    def level(self, n: int) -> LadderLevel | None:
        return next((lv for lv in self.levels if lv.level == n), None)


def load_policy(data: dict[str, Any], scale: float = 1.0) -> Policy:
    """Build the policy from escalation.yaml; `scale` shrinks every duration (sandbox --fast, tests)."""
    levels = []
    for raw in data.get("levels") or []:
        after = parse_duration(raw.get("after", "0m"))
        if after is None:
            raise PlaybookError("escalation level needs 'after'")
        until = raw.get("until", "acknowledged")
        if until not in ("acknowledged", "resolved"):
            raise PlaybookError(f"level {raw.get('level')}: until must be acknowledged or resolved")
        sevs = raw.get("severities")
        levels.append(
            LadderLevel(
                level=int(raw["level"]),
                name=str(raw.get("name", f"Level {raw['level']}")),
                base=str(raw.get("from", "declare")),
                after=after * scale,
                until=until,
                severities=tuple(sevs) if sevs else None,
            )
        )
    paging = {
        str(sev): SeverityPaging(
            mode=raw.get("mode", "dm"),
            initial_levels=tuple(int(x) for x in raw.get("initial_levels") or []),
            escalate=bool(raw.get("escalate", True)),
            notify_war_room=bool(raw.get("notify_war_room", False)),
        )
        for sev, raw in (data.get("severity") or {}).items()
    }
    for lv in levels:
        if lv.base != "declare" and not any(f"L{o.level}" == lv.base for o in levels):
            raise PlaybookError(f"level {lv.level}: 'from: {lv.base}' names no level")
    return Policy(tuple(sorted(levels, key=lambda lv: lv.level)), paging)


@dataclass(frozen=True)
class PlannedStep:
    step: str
    level: int
    due_at: datetime
    reason: str
    mode: Mode


@dataclass(frozen=True)
class LadderState:
    severity: str
    declared_at: datetime
    acknowledged: bool
    resolved: bool
    sent: dict[str, datetime]  # step -> when it was sent (this cycle)
    cycle_start: datetime | None = None  # reopen restarts the clock
    forced: tuple[str, ...] = ()  # steps to page now (/incident escalate)
    now: datetime | None = None
    initial_reason: str | None = None  # why the initial levels are paged, when it is not the declaration


def _initial_reason(st: LadderState) -> str:
    """A page says what actually triggered it: the declaration, a reopen, or a severity change."""
    if st.initial_reason:
        return f"{st.initial_reason} ({st.severity})"
    if st.cycle_start is not None and st.cycle_start > st.declared_at:
        return f"paged at reopen ({st.severity})"
    return f"paged at declare ({st.severity})"


def plan(policy: Policy, st: LadderState) -> list[PlannedStep]:
    """Every step still to send, with its due time. Steps already sent, or made moot by ack/resolve, are left
    out. Due times of later levels count from when the earlier level was actually sent, or would be due."""
    if st.resolved:
        return []
    paging = policy.paging.get(st.severity, SeverityPaging("dm", (1,), True))
    start = st.cycle_start or st.declared_at
    due: dict[str, datetime] = {}
    out: list[PlannedStep] = []
    for lv in policy.levels:
        if lv.severities and st.severity not in lv.severities:
            continue
        initial = lv.level in paging.initial_levels
        forced = lv.step in st.forced
        if paging.mode == "none" and not forced:
            continue
        if not initial and not paging.escalate and not forced:
            continue
        if initial:
            when, reason = start, _initial_reason(st)
        else:
            base = start if lv.base == "declare" else st.sent.get(lv.base) or due.get(lv.base)
            if base is None:
                continue
            when = base + lv.after
            cond = "not acknowledged" if lv.until == "acknowledged" else "still unresolved"
            anchor = "declare" if lv.base == "declare" else lv.base
            reason = f"{cond} {fmt_elapsed(lv.after)} after {anchor}"
        if forced and st.now is not None:
            when, reason = st.now, "escalated by hand"
        due[lv.step] = st.sent.get(lv.step, when)
        if lv.step in st.sent:
            continue
        if st.acknowledged and lv.until == "acknowledged" and not forced:
            continue
        mode: Mode = "dm" if paging.mode == "none" else paging.mode
        out.append(PlannedStep(lv.step, lv.level, when, reason, mode))
    return out
