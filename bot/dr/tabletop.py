"""The tabletop walk-through of dr-plan.md's recovery procedures: one step at a time, Done or Blocked,
each timed from its posting; the summary lists what blocked."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select

from bot.context import Services
from bot.dr.fault import DrillRefused
from bot.dr.plan import plan_hash, tabletop_steps
from bot.dr.report import TABLETOP
from bot.dr.times import iso, parse_time, secs
from bot.models import Drill
from bot.playbook import PlaybookError
from bot.slack_text import esc

TABLETOP_IDLE = timedelta(hours=24)  # an unanswered tabletop older than this is abandoned by the next start


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
        raise DrillRefused(f"Cannot run a tabletop: {esc(exc)}") from exc
    now = svc.clock.now()
    async with svc.db.session() as s:
        stmt = select(Drill).where(Drill.scenario == TABLETOP, Drill.finished_at.is_(None)).with_for_update()
        for open_one in (await s.execute(stmt)).scalars():
            if open_one.report.get("channel") != channel:
                continue
            if now - _last_activity(open_one) <= TABLETOP_IDLE:
                return _step_view(open_one, int(open_one.report.get("current", 0)), resumed=True)
            open_one.finished_at = now
            open_one.report = {**open_one.report, "state": "abandoned", "finished_at": iso(now)}
        drill = Drill(
            incident_id=None,
            scenario=TABLETOP,
            started_at=now,
            report={
                "kind": TABLETOP,
                "state": "running",
                "channel": channel,
                "started_by": user,
                "started_at": iso(now),
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
        step.setdefault("posted_at", iso(svc.clock.now()))
        step["ts"] = ts
        drill.report = report


async def tabletop_channel(svc: Services, drill_id: int) -> str:
    """The channel a tabletop runs in ('' when there is no such tabletop): its buttons are bound to it."""
    async with svc.db.session() as s:
        drill = await s.get(Drill, drill_id)
    return str((drill.report or {}).get("channel") or "") if drill is not None else ""


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
        step.update(outcome=outcome, by=user, answered_at=iso(now), seconds=secs(now - posted))
        summary: dict[str, Any] | None = None
        if index + 1 < len(steps):
            report["current"] = index + 1
        else:
            summary = tabletop_summary(report, now, drill.started_at)
            report.update(state="finished", finished_at=iso(now), summary=summary)
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
        "total_s": secs(now - started_at),
        "step_time_s": round(sum(timed), 3),
        "slowest": {
            "index": slowest["index"],
            "section": slowest["section"],
            "seconds": slowest.get("seconds"),
        }
        if slowest
        else None,
    }


# -- from Slack: one call per press, the adapter's messages as callbacks -------------------------------------

# Posts a step (the adapter's message) and returns its ts: a step's timing starts with its posting.
PostStep = Callable[[TabletopStep], Awaitable[str]]
# Shows an answer (the answered step edited, then the next step or the summary posted): the next step's ts.
ShowAnswer = Callable[[TabletopAnswer], Awaitable[str | None]]


async def run_tabletop(svc: Services, channel: str, user: str, post: PostStep) -> TabletopStep:
    """`/incident drill tabletop`: start (or resume) the tabletop here, post its current step, record the
    posting. A failed post (ChatError from `post`) records nothing: running it again resumes."""
    step = await start_tabletop(svc, channel, user)
    ts = await post(step)
    await tabletop_posted(svc, step.drill_id, step.index, ts)
    return step


async def answer_step(
    svc: Services, drill_id: int, index: int, outcome: str, user: str, show: ShowAnswer
) -> TabletopAnswer:
    """Done or Blocked pressed: record it, `show` it (a ChatError from `show` leaves the answer recorded),
    and record the posting of the next step."""
    ans = await answer_tabletop(svc, drill_id, index, outcome, user)
    if ans.state != "recorded":
        return ans
    ts = await show(ans)
    if ans.next is not None and ts:
        await tabletop_posted(svc, ans.next.drill_id, ans.next.index, ts)
    return ans
