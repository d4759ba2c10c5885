"""A claim's page timers fire together (bot.escalation.flows.fire_pages) and their outbox rows go out in
delivery rounds (bot.outbox.deliver): one statement per kind of row for the whole claim, a round's rows sent
concurrently and marked sent in one transaction. Benchmark 3's CPU per page came down from 19.9 to 3.2 ms
this way (docs/performance.md F8); these tests hold what the batching must not change: every step paged
once, in order within an incident, stale steps dropped, every effect recorded, and a failure of one row left
to that row."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select

from bot import outbox
from bot.clock import ManualClock
from bot.context import Services
from bot.models import Incident, OutboxMessage, Page, TimelineEvent, Timer
from bot.states import OutboxState, TimerState
from bot.worker import Worker
from sandbox.slack_standin import SlackStandin
from tests.support import live_incident

L2_DM = "DU02SECOND"  # the stand-in's DM channels of the L2 and L3 on-calls
L3_DM = "DU03LEAD"


def _incident(i: int, now: Any, channel: str | None, *, status: str = "NEW") -> Incident:
    return live_incident(
        f"INC-20261201-0000{i:02d}", now, summary=f"orders failing {i}", status=status, channel_id=channel
    )


def _timer(inc: str, step: str, due: Any) -> Timer:
    level = int(step.removeprefix("L"))
    return Timer(
        incident_id=inc,
        kind="page",
        step=step,
        due_at=due,
        plan_version=1,
        data={"level": level, "reason": "no ack", "mode": "dm"},
    )


async def _seed(svc: Services, slack: SlackStandin, n: int) -> list[str]:
    """`n` live incidents with a war room each and their L2 due now."""
    now = svc.clock.now()
    rooms = [slack.add_channel(f"incident-20261201-0000{i:02d}", members=["UBOT"]).id for i in range(n)]
    async with svc.db.session() as s:
        for i, room in enumerate(rooms):
            s.add(_incident(i, now, room))
        await s.flush()
        for i in range(n):
            s.add(_timer(f"INC-20261201-0000{i:02d}", "L2", now - timedelta(seconds=1)))
    return rooms


@contextmanager
def _statements(svc: Services) -> Iterator[Counter[str]]:
    """What the process sends to the database meanwhile, by the statement's first words."""
    seen: Counter[str] = Counter()

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen[" ".join(statement.split()[:3])] += 1

    target = svc.db.engine.sync_engine
    event.listen(target, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", count)


def _posts_to(slack: SlackStandin, channel: str) -> list[str]:
    return [
        str(c.args.get("text"))
        for c in slack.calls_to("chat.postMessage", ok=True)
        if c.args["channel"] == channel
    ]


async def test_a_burst_of_pages_is_one_write_per_kind_of_row_and_every_effect_once(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock
) -> None:
    a, _ = two
    rooms = await _seed(a, slack, 12)
    with _statements(a) as seen:
        fired = await Worker(a, worker_id="wa", extra_ticks=[]).tick()

    assert fired == 12
    assert len(_posts_to(slack, L2_DM)) == 12, "one DM per page"
    for room in rooms:
        [line] = _posts_to(slack, room)
        assert line.startswith("Paging L2"), line
        assert slack.channels[room].members >= {"U02SECOND"}, "the paged on-call is invited"
    # Batched, not per page: a page used to be ~17 statements of its own.
    assert seen["INSERT INTO pages"] == 1
    assert seen["INSERT INTO outbox"] == 1
    assert seen["INSERT INTO timeline_events"] == 1
    assert seen["UPDATE pages SET"] == 1, "where the DMs went, recorded at once"
    assert sum(seen.values()) < 30, f"{sum(seen.values())} statements for 12 pages: {dict(seen)}"
    async with a.db.session() as s:
        pages = list((await s.execute(select(Page))).scalars())
        rows = list((await s.execute(select(OutboxMessage))).scalars())
        events = list((await s.execute(select(TimelineEvent).where(TimelineEvent.kind == "page"))).scalars())
        states = Counter(t.state for t in (await s.execute(select(Timer))).scalars())
    assert len(pages) == 12 and all(p.dm["U02SECOND"]["channel"] == L2_DM for p in pages), "every DM recorded"
    assert {r.state for r in rows} == {OutboxState.SENT} and len(rows) == 36
    assert len(events) == 12
    assert states == {TimerState.DONE: 12}


async def test_steps_of_one_incident_due_together_page_in_order_and_stale_ones_are_dropped(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock
) -> None:
    a, _ = two
    now = clock.now()
    room = slack.add_channel("incident-20261201-000001", members=["UBOT"]).id
    gone = slack.add_channel("incident-20261201-000002", members=["UBOT"]).id
    async with a.db.session() as s:
        s.add(_incident(1, now, room))
        s.add(_incident(2, now, gone, status="RESOLVED"))
        await s.flush()
        # Claimed in due order: L2 first, then L3 (a worker that was down while both fell due).
        s.add(_timer("INC-20261201-000001", "L3", now - timedelta(seconds=1)))
        s.add(_timer("INC-20261201-000001", "L2", now - timedelta(seconds=2)))
        s.add(_timer("INC-20261201-000002", "L2", now - timedelta(seconds=3)))
        stale = _timer("INC-20261201-000001", "L4", now - timedelta(seconds=1))
        stale.plan_version = 0  # from a plan the incident has replaced
        s.add(stale)
    await Worker(a, worker_id="wa", extra_ticks=[]).tick()

    lines = _posts_to(slack, room)
    assert [line.split(" (")[0] for line in lines] == ["Paging L2", "Paging L3"], lines
    assert len(_posts_to(slack, L2_DM)) == 1 and len(_posts_to(slack, L3_DM)) == 1
    assert _posts_to(slack, gone) == [], "a resolved incident is not paged"
    async with a.db.session() as s:
        steps = sorted(p.step for p in (await s.execute(select(Page))).scalars())
        timers = {(t.incident_id, t.step): t for t in (await s.execute(select(Timer))).scalars()}
    assert steps == ["L2", "L3"]
    assert timers[("INC-20261201-000002", "L2")].state == TimerState.DROPPED
    assert timers[("INC-20261201-000001", "L4")].state == TimerState.DROPPED
    assert timers[("INC-20261201-000001", "L4")].last_error == "stale plan"
    assert timers[("INC-20261201-000001", "L3")].state == TimerState.DONE


async def test_a_row_slack_refuses_for_good_does_not_hold_back_the_rest_of_its_round(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock
) -> None:
    a, _ = two
    rooms = await _seed(a, slack, 4)
    slack.channels[rooms[1]].is_archived = True  # its war-room line and invite fail: is_archived
    await Worker(a, worker_id="wa", extra_ticks=[]).tick()

    assert len(_posts_to(slack, L2_DM)) == 4, "every DM went out"
    for room in (rooms[0], rooms[2], rooms[3]):
        assert len(_posts_to(slack, room)) == 1
    async with a.db.session() as s:
        rows = list((await s.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())
        failed = list(
            (await s.execute(select(TimelineEvent).where(TimelineEvent.kind == "slack_failed"))).scalars()
        )
    by_state = Counter((r.method, r.state) for r in rows)
    assert by_state[("page_dm", OutboxState.SENT)] == 4
    assert by_state[("post", OutboxState.FAILED)] == 1 and by_state[("post", OutboxState.SENT)] == 3
    assert {e.incident_id for e in failed} == {"INC-20261201-000001"}, (
        "the failure is on its incident's timeline"
    )
    assert await outbox.pending_count(a) == 0
