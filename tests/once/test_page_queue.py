"""Page DMs wait in the outbox like every other effect (bot/escalation/page_dm.py): what happens to one that
is still queued when the incident moves on, and to one sent before the war room existed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot import outbox
from bot.clock import ManualClock
from bot.context import Services
from bot.escalation.flows import acknowledge, queue_war_room_ready
from bot.models import Incident, OutboxMessage, Page, TimelineEvent
from bot.worker import Worker
from sandbox.slack_standin import SlackStandin
from tests.once.test_page_lease import DM, _dms, _seed

INC = "INC-20261201-000001"


async def _rows(svc: Services, method: str) -> list[OutboxMessage]:
    async with svc.db.session() as s:
        stmt = select(OutboxMessage).where(OutboxMessage.method == method).order_by(OutboxMessage.id)
        return list((await s.execute(stmt)).scalars())


async def _page(svc: Services) -> Page:
    async with svc.db.session() as s:
        return (await s.execute(select(Page))).scalar_one()


def _edits(slack: SlackStandin) -> list[Any]:
    return [c for c in slack.calls_to("chat.update", ok=True) if c.args.get("channel") == DM]


async def test_a_page_dm_still_queued_at_the_ack_is_never_sent(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock
) -> None:
    a, _ = two
    await _seed(a)
    slack.fail_always("chat.postMessage", status=500)  # Slack is down as the L2 page fires
    await Worker(a, worker_id="wa", extra_ticks=[]).tick()
    [row] = await _rows(a, "page_dm")
    assert row.state == "pending" and row.attempts == 1, "the DM waits in the outbox for its retry"

    result = await acknowledge(a, INC, "U01PRIMARY", "test")
    assert result.state == "acked"
    slack.clear_faults()
    clock.advance(minutes=5)
    await outbox.deliver(a)

    assert _dms(slack) == 0, "a page answered while its DM waited must not reach anyone"
    [row] = await _rows(a, "page_dm")
    assert (row.state, row.result) == ("sent", {"skipped": "acknowledged"})
    [edit] = await _rows(a, "page_edit")
    assert (edit.state, edit.result) == ("sent", {"skipped": "no DM"}), "nothing to edit"
    assert _edits(slack) == []
    assert (await _page(a)).dm["U02SECOND"] == {"skipped": "acknowledged"}


async def test_a_dm_sent_before_the_war_room_existed_is_edited_once_to_name_it(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock
) -> None:
    a, _ = two
    await _seed(a)
    await Worker(a, worker_id="wa", extra_ticks=[]).tick()
    assert _dms(slack) == 1
    dm = (await _page(a)).dm["U02SECOND"]
    assert dm["room"] is False, "sent without a war room to name"

    room = slack.add_channel("incident-20261201-000001", members=["UBOT"]).id
    for _ in range(2):  # provisioning may be resumed: the second pass edits nothing
        async with a.db.session() as s:
            inc = await s.get(Incident, INC)
            assert inc is not None
            inc.channel_id = room
            assert await queue_war_room_ready(a, s, inc, clock.now()) == (1 if _ == 0 else 0)
        await outbox.deliver(a)

    [edit] = _edits(slack)
    assert edit.args["ts"] == dm["ts"] and room in str(edit.args.get("blocks"))
    assert (await _page(a)).dm["U02SECOND"]["room"] is True
    invites = [c for c in slack.calls_to("conversations.invite") if c.args.get("channel") == room]
    assert invites and all(c.args["users"] == "U02SECOND" for c in invites), "the paged person is invited"


async def test_a_page_dm_slack_refuses_for_good_is_told_on_the_timeline_and_to_the_commander(
    two: tuple[Services, Services], slack: SlackStandin, clock: ManualClock
) -> None:
    a, _ = two
    await _seed(a)
    async with a.db.session() as s:
        inc = await s.get(Incident, INC)
        assert inc is not None
        inc.commander = "U01PRIMARY"
    slack.fail_next("conversations.open", status=200, error="user_not_found", retry_after=None)  # the L2's
    await Worker(a, worker_id="wa", extra_ticks=[]).tick()

    [row] = await _rows(a, "page_dm")
    assert row.state == "failed" and row.last_error == "user_not_found"
    async with a.db.session() as s:
        [event] = (
            await s.execute(select(TimelineEvent).where(TimelineEvent.kind == "slack_failed"))
        ).scalars()
    assert event.text == "Could not send the page DM to @U02SECOND in Slack: user_not_found"
    told = [c for c in slack.calls_to("chat.postMessage", ok=True) if c.args.get("channel") == "DU01PRIMARY"]
    assert [c.args["text"] for c in told] == [
        f"⚠️ {INC}: could not send the page DM to <@U02SECOND> in Slack (user_not_found)."
    ]
