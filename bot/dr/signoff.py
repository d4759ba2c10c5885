"""Sign-off of the DR plan by product and operations, and `/incident dr status`: who signed which text of
dr-plan.md (its sha256) and when, the last drills against their objectives, and whether the review is due.

The review is due when nobody signed yet, when the newest sign-off (of either role) is older than dr.yaml's
`review.interval`, or when dr-plan.md changed since a role signed it (that sign-off is stale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select

from bot import incident_store as service
from bot.context import Services
from bot.dr.plan import load_dr, plan_hash
from bot.dr.report import drill_summary
from bot.errors import UserFacingError
from bot.models import Drill, Signoff
from bot.playbook import format_duration


class SignoffError(UserFacingError):
    """A sign-off refused (unknown role, not allowed); `message` says why."""


@dataclass(frozen=True)
class SignoffView:
    role: str
    title: str
    user_id: str | None = None
    at: datetime | None = None
    plan_hash: str | None = None
    current: bool = False  # signed the text dr-plan.md has now

    @property
    def signed(self) -> bool:
        return self.user_id is not None

    @property
    def stale(self) -> bool:
        return self.signed and not self.current


@dataclass(frozen=True)
class SignResult:
    state: Literal["recorded", "already"]
    signoff: SignoffView
    previous: SignoffView | None = None  # the role's sign-off before this one


async def _latest(s: Any, role: str) -> Signoff | None:
    stmt = select(Signoff).where(Signoff.role == role).order_by(Signoff.at.desc(), Signoff.id.desc()).limit(1)
    return (await s.execute(stmt)).scalars().first()


def _view(role: str, title: str, row: Signoff | None, current_hash: str) -> SignoffView:
    if row is None:
        return SignoffView(role, title)
    return SignoffView(role, title, row.user_id, row.at, row.plan_hash, row.plan_hash == current_hash)


async def sign(svc: Services, role: str, user: str, *, request_key: str | None = None) -> SignResult:
    """Record that `user` signs the current dr-plan.md for `role` (a key of dr.yaml signoff.roles)."""
    roles = load_dr().signoff_roles
    if role not in roles:
        raise SignoffError(f"Unknown sign-off role `{role[:20]}`: use one of {', '.join(roles)}.")
    digest, now = plan_hash(), svc.clock.now()
    async with svc.db.session() as s:
        latest = await _latest(s, role)
        before = _view(role, roles[role], latest, digest) if latest else None
        if request_key is not None and not await service.claim_request(s, request_key, now):
            return SignResult("already", before or SignoffView(role, roles[role]), before)  # a Slack retry
        if before is not None and before.current and before.user_id == user:
            return SignResult("already", before, before)
        row = Signoff(role=role, user_id=user, plan_hash=digest, at=now)
        s.add(row)
        await s.flush()
    return SignResult("recorded", _view(role, roles[role], row, digest), before)


@dataclass(frozen=True)
class ReviewState:
    due: bool
    reasons: list[str]
    interval: timedelta
    last_signed: datetime | None
    next_due: datetime | None


@dataclass(frozen=True)
class DrillLine:
    scenario: str
    every: timedelta
    last_at: datetime | None  # the last completed drill's end
    summary: str
    ok: bool | None  # met its objectives (None: nothing to judge)
    due: bool
    next_due: datetime | None
    running_since: datetime | None = None


@dataclass(frozen=True)
class DrStatus:
    now: datetime
    plan_hash: str
    signoffs: list[SignoffView]
    review: ReviewState
    drills: list[DrillLine] = field(default_factory=list)


def review_state(signoffs: list[SignoffView], interval: timedelta, now: datetime) -> ReviewState:
    signed = [x for x in signoffs if x.signed and x.at is not None]
    newest = max((x.at for x in signed if x.at is not None), default=None)
    reasons: list[str] = []
    if newest is None:
        reasons.append("nobody has signed the plan yet")
    elif now - newest >= interval:
        reasons.append(f"the newest sign-off ({newest:%Y-%m-%d}) is older than {format_duration(interval)}")
    for x in signed:
        if x.stale:
            reasons.append(f"dr-plan.md changed since {x.title} signed it ({x.at:%Y-%m-%d})")
    return ReviewState(bool(reasons), reasons, interval, newest, newest + interval if newest else None)


async def dr_status(svc: Services) -> DrStatus:
    dr, digest, now = load_dr(), plan_hash(), svc.clock.now()
    async with svc.db.session() as s:
        signoffs = [
            _view(role, title, await _latest(s, role), digest) for role, title in dr.signoff_roles.items()
        ]
        rows = list(
            (await s.execute(select(Drill).order_by(Drill.started_at.desc(), Drill.id.desc()))).scalars()
        )
    lines: list[DrillLine] = []
    for scenario, every in dr.drills.items():
        mine = [d for d in rows if d.scenario == scenario]
        running = next((d for d in mine if d.finished_at is None), None)
        done = next(
            (
                d
                for d in mine
                if d.finished_at is not None and d.report.get("state") not in ("aborted", "abandoned")
            ),
            None,
        )
        if done is None:
            lines.append(DrillLine(scenario, every, None, "never run", None, True, None, _since(running)))
            continue
        assert done.finished_at is not None
        summary, ok = drill_summary(done.report)
        next_due = done.finished_at + every
        lines.append(
            DrillLine(
                scenario, every, done.finished_at, summary, ok, now >= next_due, next_due, _since(running)
            )
        )
    return DrStatus(now, digest, signoffs, review_state(signoffs, dr.review_interval, now), lines)


def _since(drill: Drill | None) -> datetime | None:
    return drill.started_at if drill is not None else None
