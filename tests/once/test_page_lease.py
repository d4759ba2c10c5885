"""A page whose Slack send is slower than a lease is still sent once (chaos seed 838607683 sent one L2 DM
twice: the 30 s timer lease ran out while the first worker's chat.postMessage hung, a second worker re-claimed
the timer and, with no DM recorded yet, sent it again).

A page DM is an outbox row now (bot.escalation.page_dm), written with the page in the timer's transaction:
the timer is done before anything is sent, and the DM row's claim is what fences the send. Its holder renews
the row's lease while the DM is in flight (bot.outbox), and records the DM only while the claim is still its
own. A worker stopped mid-send hands the row back; one that stalls without renewing loses it to another
process (the in-flight DM, of unknown fate, is sent again: a page is never lost)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from bot import outbox
from bot.clock import ManualClock
from bot.context import Services
from bot.models import OutboxMessage, Page, Timer
from bot.states import OutboxState, PageState, TimerState
from bot.worker import Worker
from sandbox.slack_standin import SlackStandin
from tests.support import HeldPosts, live_incident

DM = "DU02SECOND"  # the stand-in's DM channel of U02SECOND, the L2 on-call


async def _seed(svc: Services) -> int:
    now = svc.clock.now()
    async with svc.db.session() as s:
        s.add(live_incident("INC-20261201-000001", now))
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


async def _dm_row(svc: Services) -> OutboxMessage:
    async with svc.db.session() as s:
        stmt = select(OutboxMessage).where(OutboxMessage.method == "page_dm")
        return (await s.execute(stmt)).scalar_one()


async def _lease_renewed_past(svc: Services, moment: Any) -> bool:
    """Give a live holder time to renew (its renewal runs every RENEW_EVERY real seconds)."""
    for _ in range(300):
        if (await _dm_row(svc)).next_attempt_at > moment:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_page_send_slower_than_the_lease_is_sent_once(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "RENEW_EVERY", 0.02, raising=False)
    a, b = two
    slow = HeldPosts(a.chat, dms_only=True)
    a.chat = slow
    timer_id = await _seed(a)
    wa = Worker(a, worker_id="wa", extra_ticks=[outbox.outbox_tick])
    wb = Worker(b, worker_id="wb", extra_ticks=[outbox.outbox_tick])

    first = asyncio.create_task(wa.tick())
    await asyncio.wait_for(slow.entered.wait(), 10)  # wa holds the DM row, its post is stuck in Slack
    assert (await _state(a, timer_id))[0] == TimerState.DONE, "the timer's work is done: the DM is queued"
    clock.advance(seconds=90)  # longer than the outbox's 60 s lease
    renewed = await _lease_renewed_past(a, clock.now())  # wa is alive: it renews
    await wb.tick()  # recover_stale + run_due + the outbox: the DM row is wa's, wb must not take it
    slow.release.set()
    await asyncio.wait_for(first, 10)
    await wb.tick()

    assert _dms(slack) == 1, "the L2 page DM was sent twice"
    assert renewed, "the holder renews the DM row's lease while it sends"
    t_state, p_state, dm, _ = await _state(a, timer_id)
    assert (t_state, p_state) == (TimerState.DONE, PageState.SENT)
    assert dm["U02SECOND"]["channel"] == DM and dm["U02SECOND"]["ts"], "where the DM went is recorded"
    assert (await _dm_row(a)).state == OutboxState.SENT


async def test_a_worker_whose_claim_was_taken_does_not_record_over_the_new_holder(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wa stalls without renewing (say its database connection hung): the DM row's lease runs out and wb takes
    it. wa's DM was already on its way (it is sent; that one cannot be called back) — but wa does not mark or
    record the row over wb's claim; wb's DM is the one recorded, and nobody sends a third."""
    monkeypatch.setattr(outbox, "RENEW_EVERY", 3600.0, raising=False)  # the stalled holder never renews
    a, b = two
    slow = HeldPosts(a.chat, dms_only=True)
    a.chat = slow
    timer_id = await _seed(a)
    wa = Worker(a, worker_id="wa", extra_ticks=[outbox.outbox_tick])
    wb = Worker(b, worker_id="wb", extra_ticks=[outbox.outbox_tick])

    first = asyncio.create_task(wa.tick())
    await asyncio.wait_for(slow.entered.wait(), 10)
    clock.advance(seconds=90)
    b.chat = HeldPosts(b.chat, dms_only=True)  # wb's DM is slow too: it holds the row while wa wakes up
    second = asyncio.create_task(wb.tick())
    await asyncio.wait_for(b.chat.entered.wait(), 10)
    assert (await _dm_row(b)).attempts == 2, "wb took the row over"
    slow.release.set()
    await asyncio.wait_for(first, 10)
    row = await _dm_row(a)
    assert (row.state, row.attempts) == (OutboxState.SENDING, 2), "wa must not mark a row wb holds"
    assert "ts" not in (await _state(a, timer_id))[2]["U02SECOND"], "wa records nothing over wb's claim"
    b.chat.release.set()
    await asyncio.wait_for(second, 10)
    await wb.tick()
    await wa.tick()
    assert _dms(slack) == 2, "wa's stalled DM and wb's; never a third"
    t_state, p_state, dm, _ = await _state(a, timer_id)
    assert (t_state, p_state) == (TimerState.DONE, PageState.SENT)
    wb_ts = [c for c in slack.calls_to("chat.postMessage", ok=True) if c.args.get("channel") == DM][-1]
    assert dm["U02SECOND"]["ts"] == wb_ts.response["ts"], "the DM recorded is wb's"
    assert (await _dm_row(a)).state == OutboxState.SENT


async def test_a_worker_stopped_mid_send_hands_the_dm_back(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "RENEW_EVERY", 0.02, raising=False)
    a, b = two
    slow = HeldPosts(a.chat, dms_only=True)
    a.chat = slow
    timer_id = await _seed(a)
    wa = Worker(a, worker_id="wa", extra_ticks=[outbox.outbox_tick])
    wb = Worker(b, worker_id="wb", extra_ticks=[outbox.outbox_tick])

    first = asyncio.create_task(wa.tick())
    await asyncio.wait_for(slow.entered.wait(), 10)
    first.cancel()  # wa is stopped mid-send; its DM never reached Slack
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (await _dm_row(b)).state == OutboxState.PENDING, "handed back at once, not held for a lease"
    clock.advance(seconds=10)  # past the worker's grace for rows another process may still be delivering
    await wb.tick()
    assert _dms(slack) == 1, "the page is not lost"
    t_state, p_state, dm, _ = await _state(b, timer_id)
    assert (t_state, p_state) == (TimerState.DONE, PageState.SENT) and dm["U02SECOND"]["ts"]
