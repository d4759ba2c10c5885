"""A page whose Slack send is slower than the timer lease is still sent once (chaos seed 838607683 sent one L2
DM twice: the 30 s lease ran out while the first worker's chat.postMessage hung, a second worker re-claimed
the timer and, with no DM recorded yet, sent it again).

The holder renews its claim while the handler runs (bot.dispatch), and the claim fences the page: a worker
whose claim was taken stops before its next DM and leaves the page to the new holder. A worker that really
dies stops renewing, and its page is taken over after the lease (the in-flight DM, of unknown fate, is sent
again: a page is never lost)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot import dispatch
from bot.clock import ManualClock
from bot.context import Services
from bot.models import Incident, Page, Timer
from bot.states import PageState, TimerState
from bot.worker import Worker
from sandbox.slack_standin import SlackStandin
from tests.support import HeldPosts

DM = "DU02SECOND"  # the stand-in's DM channel of U02SECOND, the L2 on-call


async def _seed(svc: Services) -> int:
    now = svc.clock.now()
    async with svc.db.session() as s:
        s.add(
            Incident(
                id="INC-20261201-000001",
                severity="P1",
                status="NEW",
                summary="orders failing",
                impact="",
                root_cause="",
                next_steps="",
                declared_by="UDECLARER",
                declared_at=now - timedelta(minutes=10),
                updated_at=now,
                plan_version=1,
                cycle=1,
                provision_state="ready",
            )
        )
        timer = Timer(
            incident_id="INC-20261201-000001",
            kind="page",
            step="L2",
            due_at=now,
            plan_version=1,
            data={"level": 2, "reason": "no ack", "mode": "dm"},
        )
        s.add(timer)
        await s.flush()
        return timer.id


def _dms(slack: SlackStandin) -> int:
    return len([c for c in slack.calls_to("chat.postMessage", ok=True) if c.args.get("channel") == DM])


async def _state(svc: Services, timer_id: int) -> tuple[str, str | None, dict[str, Any], str | None]:
    async with svc.db.session() as s:
        t = await s.get(Timer, timer_id)
        page = (await s.execute(select(Page))).scalar_one_or_none()
        assert t is not None
        return t.state, page.state if page else None, dict(page.dm) if page else {}, t.claimed_by


async def _claim_renewed_since(svc: Services, timer_id: int, since: Any) -> bool:
    """Give a live holder time to renew (its renewal runs every RENEW_EVERY real seconds)."""
    for _ in range(200):
        async with svc.db.session() as s:
            t = await s.get(Timer, timer_id)
            if t is not None and t.claimed_at is not None and t.claimed_at >= since:
                return True
        await asyncio.sleep(0.01)
    return False


async def test_page_send_slower_than_the_lease_is_sent_once(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "RENEW_EVERY", 0.02, raising=False)
    a, b = two
    slow = HeldPosts(a.chat, dms_only=True)
    a.chat = slow
    timer_id = await _seed(a)
    wa = Worker(a, worker_id="wa", extra_ticks=[])
    wb = Worker(b, worker_id="wb", extra_ticks=[])

    first = asyncio.create_task(wa.tick())
    await asyncio.wait_for(slow.entered.wait(), 10)  # wa holds the page, its DM is stuck in Slack
    clock.advance(seconds=45)  # longer than the 30 s lease
    renewed = await _claim_renewed_since(a, timer_id, clock.now())  # wa is alive: it renews
    await wb.tick()  # recover_stale + run_due: the page is wa's, wb must not take it
    slow.release.set()
    await asyncio.wait_for(first, 10)
    await wb.tick()

    assert _dms(slack) == 1, "the L2 page DM was sent twice"
    assert renewed, "the holder renews its claim while it sends"
    t_state, p_state, dm, _ = await _state(a, timer_id)
    assert (t_state, p_state) == (TimerState.DONE, PageState.SENT)
    assert set(dm) >= {"U02SECOND"}


async def test_a_worker_whose_claim_was_taken_stops_and_leaves_the_page_to_the_holder(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wa stalls without renewing (say its database connection hung): its lease runs out and wb takes the page.
    wa's DM was already on its way (it is sent; that one cannot be called back) — but wa does not finish the
    page over wb's claim, and what it delivered is recorded, so nobody sends it a third time."""
    monkeypatch.setattr(dispatch, "RENEW_EVERY", 3600.0, raising=False)  # the stalled holder never renews
    a, b = two
    slow = HeldPosts(a.chat, dms_only=True)
    a.chat = slow
    timer_id = await _seed(a)
    wa = Worker(a, worker_id="wa", extra_ticks=[])
    wb = Worker(b, worker_id="wb", extra_ticks=[])

    first = asyncio.create_task(wa.tick())
    await asyncio.wait_for(slow.entered.wait(), 10)
    clock.advance(seconds=45)
    b.chat = HeldPosts(b.chat, dms_only=True)  # wb's DM is slow too: it holds the claim while wa wakes up
    second = asyncio.create_task(wb.tick())
    await asyncio.wait_for(b.chat.entered.wait(), 10)
    assert (await _state(b, timer_id))[3] == "wb"
    slow.release.set()
    await asyncio.wait_for(first, 10)
    t_state, p_state, dm, holder = await _state(a, timer_id)
    assert (t_state, holder) == (TimerState.CLAIMED, "wb"), "wa must not finish a page wb holds"
    assert "U02SECOND" in dm, "wa's delivered DM is recorded"
    b.chat.release.set()
    await asyncio.wait_for(second, 10)
    t_state, p_state, dm, _ = await _state(a, timer_id)
    assert (t_state, p_state) == (TimerState.DONE, PageState.SENT)


async def test_a_worker_that_dies_mid_send_is_taken_over_after_the_lease(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "RENEW_EVERY", 0.02, raising=False)
    a, b = two
    slow = HeldPosts(a.chat, dms_only=True)
    a.chat = slow
    timer_id = await _seed(a)
    wa = Worker(a, worker_id="wa", extra_ticks=[])
    wb = Worker(b, worker_id="wb", extra_ticks=[])

    first = asyncio.create_task(wa.tick())
    await asyncio.wait_for(slow.entered.wait(), 10)
    first.cancel()  # wa dies mid-send (its renewals stop with it); its DM never reached Slack
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.sleep(0.1)
    await wb.tick()
    assert _dms(slack) == 0 and (await _state(b, timer_id))[3] == "wa", "not before the lease runs out"
    clock.advance(seconds=45)
    await wb.tick()  # recover_stale puts it back
    await wb.tick()
    assert _dms(slack) == 1, "the page is not lost"
    t_state, p_state, _, _ = await _state(b, timer_id)
    assert (t_state, p_state) == (TimerState.DONE, PageState.SENT)
