"""An outbox effect slower than the row's 60 s lease is still sent once: its holder renews the lease while the
effect runs, and marks the row only while the claim is still its own (the claim's `attempts` is the fencing
token). Before, the lease was fixed: a post held up past it (the rate gate's Retry-After waits, a slow Slack)
was claimed by a second process and sent again."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot import outbox
from bot.clock import ManualClock
from bot.context import Services
from bot.models import OutboxMessage
from bot.states import OutboxState
from sandbox.slack_standin import SlackStandin
from tests.support import HeldPosts


async def _queue(svc: Services, channel: str) -> None:
    async with svc.db.session() as s:
        await outbox.enqueue(s, "post", channel=channel, at=svc.clock.now(), payload={"text": "one line"})


async def _row(svc: Services) -> OutboxMessage:
    async with svc.db.session() as s:
        return (await s.execute(select(OutboxMessage))).scalar_one()


def _posts(slack: SlackStandin, channel: str) -> int:
    return len([c for c in slack.calls_to("chat.postMessage", ok=True) if c.args.get("channel") == channel])


async def test_a_post_slower_than_the_lease_is_sent_once(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "RENEW_EVERY", 0.02, raising=False)
    a, b = two
    room = slack.add_channel("room-lease", members=["UBOT"]).id
    slow = HeldPosts(a.chat)
    a.chat = slow  # type: ignore[assignment]
    await _queue(a, room)
    first = asyncio.create_task(outbox.deliver(a))
    await asyncio.wait_for(slow.entered.wait(), 10)
    clock.advance(seconds=90)  # past the 60 s lease
    for _ in range(300):  # the holder is alive: it renews
        if (await _row(a)).next_attempt_at > clock.now():
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the holder did not renew its lease")
    assert await outbox.deliver(b) == 0  # the row is a's, b must not take it
    slow.release.set()
    assert await asyncio.wait_for(first, 10) == 1
    assert _posts(slack, room) == 1
    row = await _row(a)
    assert row.state == OutboxState.SENT and row.attempts == 1


async def test_a_stalled_holder_does_not_mark_a_row_taken_over(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a stalls without renewing (its database hung, say): after the lease b takes the row over and sends it.
    a's post was already on its way (it cannot be called back), but a does not mark b's row."""
    monkeypatch.setattr(outbox, "RENEW_EVERY", 3600.0, raising=False)
    a, b = two
    room = slack.add_channel("room-stall", members=["UBOT"]).id
    slow = HeldPosts(a.chat)
    a.chat = slow  # type: ignore[assignment]
    await _queue(a, room)
    first = asyncio.create_task(outbox.deliver(a))
    await asyncio.wait_for(slow.entered.wait(), 10)
    clock.advance(seconds=90)
    b_slow = HeldPosts(b.chat)
    b.chat = b_slow  # type: ignore[assignment]
    second = asyncio.create_task(outbox.deliver(b))
    await asyncio.wait_for(b_slow.entered.wait(), 10)  # b holds the row now (attempts 2)
    slow.release.set()
    assert await asyncio.wait_for(first, 10) == 0  # a's send is not counted: the row is b's
    row = await _row(a)
    assert (row.state, row.attempts) == (OutboxState.SENDING, 2), "a must not finish b's claim"
    b_slow.release.set()
    assert await asyncio.wait_for(second, 10) == 1
    row = await _row(a)
    assert row.state == OutboxState.SENT and row.attempts == 2
