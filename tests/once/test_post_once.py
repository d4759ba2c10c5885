"""A post Slack carried out whose answer never reached us is not posted twice.

chat.postMessage takes no idempotency key. Chaos seed 7357843 sent one L1 page DM twice: the worker holding
the DM row was SIGKILLed after Slack took the post and before the row was marked sent; the lease ran out and
another worker sent it again. The same happens when the answer is lost to a 5xx or a timeout. Every outbox
post now carries its row's mark in the message metadata (bot.ports.Mark), and a row that may have been posted
already is looked for in the channel's history (conversations.history, include_all_metadata) first."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from bot import outbox
from bot.clock import ManualClock
from bot.context import Services
from bot.escalation.flows import acknowledge
from bot.models import OutboxMessage, Page
from bot.ports import ChatError
from bot.states import OutboxState
from bot.worker import Worker
from sandbox.slack_standin import SlackStandin
from tests.once.test_page_lease import DM, _dm_row, _dms, _seed


class PostedThenDied:
    """The real ChatPort, but a DM post that Slack has carried out never comes back to its caller (the process
    dies, or hangs, between Slack's answer and the outbox's record)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.posted = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def post(self, channel: str, text: str, blocks: Any = None, **kw: Any) -> Any:
        ts = await self.inner.post(channel, text, blocks, **kw)
        if channel.startswith("D"):
            self.posted.set()
            await asyncio.Event().wait()  # never answers
        return ts


async def _page(svc: Services) -> Page:
    async with svc.db.session() as s:
        return (await s.execute(select(Page))).scalar_one()


def _dm_ts(slack: SlackStandin) -> list[str]:
    return [m.ts for m in slack.messages.get(DM, [])]


async def test_a_holder_killed_after_slack_took_the_dm_does_not_get_it_sent_twice(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "RENEW_EVERY", 3600.0, raising=False)  # a dead process renews nothing
    a, b = two
    a.chat = dying = PostedThenDied(a.chat)
    await _seed(a)
    first = asyncio.create_task(Worker(a, worker_id="wa", extra_ticks=[]).tick())
    await asyncio.wait_for(dying.posted.wait(), 10)  # Slack has the DM; wa never records it
    clock.advance(seconds=90)  # the row's lease runs out: wa looks dead
    await Worker(b, worker_id="wb", extra_ticks=[outbox.outbox_tick]).tick()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first

    assert _dms(slack) == 1, "the DM Slack took was sent a second time"
    assert len(_dm_ts(slack)) == 1
    row = await _dm_row(b)
    assert (row.state, row.attempts) == (OutboxState.SENT, 2), "wb took the row over and finished it"
    dm = (await _page(b)).dm["U02SECOND"]
    assert dm["ts"] == _dm_ts(slack)[0] and dm["channel"] == DM, "the DM found again is the one recorded"
    assert dm.get("found") is True
    looked = slack.calls_to("conversations.history", ok=True)
    assert [c.args.get("channel") for c in looked] == [DM], "wb looked in the DM before sending"


async def test_a_holder_stopped_after_slack_took_the_dm_hands_it_back_as_maybe_done(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock
) -> None:
    """A graceful stop (SIGTERM) mid-send hands the row back at once; the DM it was sending may have reached
    Slack, so the row keeps its claim count and the next holder looks before it posts."""
    a, b = two
    a.chat = dying = PostedThenDied(a.chat)
    await _seed(a)
    first = asyncio.create_task(Worker(a, worker_id="wa", extra_ticks=[]).tick())
    await asyncio.wait_for(dying.posted.wait(), 10)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    row = await _dm_row(b)
    assert (row.state, row.attempts) == (OutboxState.PENDING, 1), "handed back, its try still counted"
    clock.advance(seconds=10)  # past the worker's grace
    await Worker(b, worker_id="wb", extra_ticks=[outbox.outbox_tick]).tick()

    assert _dms(slack) == 1
    assert (await _dm_row(b)).state == OutboxState.SENT
    assert (await _page(b)).dm["U02SECOND"]["ts"] == _dm_ts(slack)[0]


async def test_a_dm_whose_answer_is_lost_to_a_5xx_is_found_not_resent(
    two: tuple[Services, Services], slack: SlackStandin
) -> None:
    """Slack posts the DM and the answer is a 500: the client's own retry looks for the mark first."""
    a, _ = two
    await _seed(a)
    slack.fail_next("chat.postMessage", status=500, error="internal_error", applied=True)
    await Worker(a, worker_id="wa", extra_ticks=[]).tick()

    assert len(_dm_ts(slack)) == 1, "the client retried a post Slack had carried out"
    row = await _dm_row(a)
    assert row.state == OutboxState.SENT and row.attempts == 1
    assert (await _page(a)).dm["U02SECOND"]["ts"] == _dm_ts(slack)[0]


class TimesOutAfterPosting:
    """The real ChatPort, but the first post Slack carries out is answered by a client timeout."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.timed_out = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def post(self, channel: str, text: str, blocks: Any = None, **kw: Any) -> Any:
        ts = await self.inner.post(channel, text, blocks, **kw)
        if not self.timed_out:
            self.timed_out = True
            raise ChatError("chat.postMessage", "timeout")
        return ts


async def test_a_war_room_line_whose_answer_timed_out_is_found_on_the_next_try(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock
) -> None:
    """A timeout is not retried inside the client (its outcome is unknown): the outbox tries the row again
    later, and the generic `post` effect looks for its mark first."""
    a, _ = two
    room = slack.add_channel("incident-room", members={slack.bot_user_id}).id
    slack.add_message(room, "U01PRIMARY", "looking")  # people talk in the room meanwhile
    a.chat = TimesOutAfterPosting(a.chat)
    async with a.db.session() as s:
        await outbox.enqueue(s, "post", channel=room, at=clock.now(), payload={"text": "Paging L2"})
    await outbox.deliver(a)
    async with a.db.session() as s:
        row = (await s.execute(select(OutboxMessage).where(OutboxMessage.method == "post"))).scalar_one()
    assert (row.state, row.last_error) == (OutboxState.PENDING, "timeout"), "to be tried again"
    slack.add_message(room, "U01PRIMARY", "still looking")
    clock.advance(minutes=1)
    await outbox.deliver(a)

    posted = [m for m in slack.messages[room] if m.text == "Paging L2"]
    assert len(posted) == 1, "the line Slack had taken was posted again"
    async with a.db.session() as s:
        row = (await s.execute(select(OutboxMessage).where(OutboxMessage.method == "post"))).scalar_one()
    assert row.state == OutboxState.SENT and row.result["ts"] == posted[0].ts


async def test_a_dm_posted_with_its_answer_lost_before_the_ack_is_edited_by_the_ack(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock
) -> None:
    """The DM reached the person but its answer timed out; the page is answered before the retry. The retry
    must find and record that DM (so the ack's edit updates it), not skip it as 'acknowledged' and leave a
    live page with an Acknowledge button in the person's DMs (chaos seed 7357843, L3 of -184035-36)."""
    a, _ = two
    await _seed(a)
    a.chat = TimesOutAfterPosting(a.chat)
    await Worker(a, worker_id="wa", extra_ticks=[]).tick()
    assert (await _dm_row(a)).last_error == "timeout" and len(_dm_ts(slack)) == 1
    assert (await acknowledge(a, "INC-20261201-000001", "U01PRIMARY", "test")).state == "acked"
    clock.advance(minutes=1)
    await outbox.deliver(a)

    assert len(_dm_ts(slack)) == 1
    dm = (await _page(a)).dm["U02SECOND"]
    assert dm.get("ts") == _dm_ts(slack)[0] and "skipped" not in dm, dm
    edits = [c for c in slack.calls_to("chat.update", ok=True) if c.args.get("channel") == DM]
    assert [c.args["ts"] for c in edits] == [dm["ts"]], "the ack's edit reached the DM"
    assert "acknowledged" in str(slack.messages[DM][0].blocks or slack.messages[DM][0].text).lower()
