"""The ladder end to end: signed Slack requests in, the worker firing durable timers, DMs in the stand-in."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot import incident_store as service
from bot.clock import ManualClock
from bot.escalation.flows import replan
from bot.models import Page, Timer
from bot.timers import claim
from bot.worker import Worker
from tests.support import BotHarness


def dms_to(bot: BotHarness, user: str) -> list[str]:
    """Texts of the page DMs a user received (the stand-in's IM channel for a user is D<user>)."""
    return [
        c.args.get("text", "")
        for c in bot.slack.calls_to("chat.postMessage", ok=True)
        if c.args.get("channel") == f"D{user}"
    ]


def worker(bot: BotHarness, name: str = "w1") -> Worker:
    return Worker(bot.svc, worker_id=name, extra_ticks=[])


async def page_events(bot: BotHarness, incident_id: str) -> list[dict]:
    return [e.data for e in await bot.events(incident_id) if e.kind == "page"]


async def resolve(bot: BotHarness, incident_id: str) -> None:
    async with bot.svc.db.session() as s:
        inc = await service.get(s, incident_id)
        assert inc is not None
        inc.status, inc.resolved_at = "RESOLVED", bot.svc.clock.now()
        await replan(bot.svc, s, inc, reason="resolved")


async def test_p1_ladder_ack_stops_ack_steps_l4_still_fires_resolve_cancels(
    bot: BotHarness, clock: ManualClock
) -> None:
    await bot.command("declare P1 Factory orders failing")
    [inc] = await bot.incidents()
    w = worker(bot)

    # L1 at declare: a DM with an Acknowledge button, and a line in the war room.
    assert len(dms_to(bot, "U01PRIMARY")) == 1
    dm = bot.slack.messages["DU01PRIMARY"][-1]
    assert any(b.get("type") == "actions" for b in dm.blocks)
    assert "Paging L1 (Primary on-call) <@U01PRIMARY>" in bot.slack.messages[inc.channel_id][-1].text

    clock.advance(minutes=9)
    assert await w.tick() == 0
    clock.advance(minutes=1)
    await w.tick()
    assert len(dms_to(bot, "U02SECOND")) == 1
    room = [m.text for m in bot.slack.messages[inc.channel_id]]
    assert any(
        "Paging L2 (Secondary on-call) <@U02SECOND>: not acknowledged 10 min after L1" in t for t in room
    )

    clock.advance(minutes=10)
    await w.tick()
    assert len(dms_to(bot, "U03LEAD")) == 1

    # The lead presses Acknowledge in the DM.
    resp = await bot.action("ack_incident", inc.id, user="U03LEAD", channel="DU03LEAD")
    assert resp.status_code == 200
    [inc] = await bot.incidents()
    assert inc.acknowledged_by == "U03LEAD" and inc.acknowledged_at == clock.now()
    updated = [c for c in bot.slack.calls_to("chat.update", ok=True) if c.args["channel"].startswith("D")]
    assert {c.args["channel"] for c in updated} == {"DU01PRIMARY", "DU02SECOND", "DU03LEAD"}
    assert all("Acknowledged by <@U03LEAD>" in str(c.args["blocks"]) for c in updated)

    # L4 is an "unresolved" step: 30 min after L3 it still fires.
    clock.advance(minutes=29)
    assert await w.tick() == 0
    clock.advance(minutes=1)
    await w.tick()
    assert len(dms_to(bot, "U04VPENG")) == 1

    await resolve(bot, inc.id)
    clock.advance(hours=5)
    await w.tick()
    assert [p["step"] for p in await page_events(bot, inc.id)] == ["L1", "L2", "L3", "L4"]
    for user in ("U01PRIMARY", "U02SECOND", "U03LEAD", "U04VPENG"):
        assert len(dms_to(bot, user)) == 1, user
    assert dms_to(bot, "U05CEO") == []  # P1 never reaches the CEO


async def test_ack_before_l2_means_no_l2(bot: BotHarness, clock: ManualClock) -> None:
    await bot.command("declare P1 Checkout slow")
    [inc] = await bot.incidents()
    clock.advance(minutes=2)
    await bot.command("ack", user="U01PRIMARY", channel=inc.channel_id)
    clock.advance(minutes=25)
    await worker(bot).tick()
    assert dms_to(bot, "U02SECOND") == []
    async with bot.svc.db.session() as s:
        states = {
            t.step: t.state for t in (await s.execute(select(Timer).where(Timer.kind == "page"))).scalars()
        }
    assert states["L2"] == "dropped"


async def test_worker_down_catches_up_once_in_order(bot: BotHarness, clock: ManualClock) -> None:
    await bot.command("declare P0 Everything is down")
    [inc] = await bot.incidents()
    clock.advance(minutes=75)  # the worker was down for L3, L4 and L5
    await worker(bot, "fresh").tick()
    await worker(bot, "another").tick()
    events = await page_events(bot, inc.id)
    assert [e["step"] for e in events] == ["L1", "L2", "L3", "L4", "L5"]
    late = {e["step"]: e["lateness_s"] for e in events}
    assert late["L3"] == 65 * 60 and late["L5"] == 15 * 60
    assert len(dms_to(bot, "U05CEO")) == 1


async def test_claim_then_crash_is_recovered_and_sent_once(bot: BotHarness, clock: ManualClock) -> None:
    await bot.command("declare P1 Orders failing")
    [_inc] = await bot.incidents()
    clock.advance(minutes=10)
    dead = await claim(bot.svc.db, "dead-worker", clock.now())  # claims L2, then "dies"
    assert [t.step for t in dead] == ["L2"]
    w = Worker(bot.svc, worker_id="w2", lease=timedelta(seconds=30), extra_ticks=[])
    await w.tick()
    assert dms_to(bot, "U02SECOND") == []  # still leased to the dead worker
    clock.advance(seconds=31)
    await w.tick()
    await w.tick()
    assert len(dms_to(bot, "U02SECOND")) == 1


async def test_resumed_page_skips_users_already_reached(bot: BotHarness, clock: ManualClock) -> None:
    """A page row in 'sending' with one DM recorded (a crash mid-send) completes without repeating it."""
    await bot.command("declare P0 Payments down")
    [_inc] = await bot.incidents()
    async with bot.svc.db.session() as s:
        page = (await s.execute(select(Page).where(Page.step == "L1"))).scalar_one()
        assert page.state == "sent" and "U01PRIMARY" in page.dm
    assert len(dms_to(bot, "U01PRIMARY")) == 1


async def test_severity_change_replans(bot: BotHarness, clock: ManualClock) -> None:
    await bot.command("declare P1 Orders slow")
    [inc] = await bot.incidents()

    async def pending() -> set[str]:
        async with bot.svc.db.session() as s:
            rows = (
                await s.execute(select(Timer).where(Timer.state == "pending", Timer.kind == "page"))
            ).scalars()
            return {t.step for t in rows}

    assert await pending() == {"L2", "L3", "L4"}
    async with bot.svc.db.session() as s:
        row = await service.get(s, inc.id)
        assert row is not None
        row.severity = "P0"
        await replan(bot.svc, s, row, reason="severity P0")
    assert await pending() == {"L2", "L3", "L4", "L5"}  # L2 due now (P0 pages all on-call)
    async with bot.svc.db.session() as s:
        row = await service.get(s, inc.id)
        assert row is not None
        row.severity = "P3"
        await replan(bot.svc, s, row, reason="severity P3")
    assert await pending() == set()


async def test_escalate_pages_next_level_now(bot: BotHarness, clock: ManualClock) -> None:
    await bot.command("declare P2 Menu images missing")
    [inc] = await bot.incidents()
    assert dms_to(bot, "U01PRIMARY") == []  # P2: on-call is told in the channel, no DM
    assert any("<@U01PRIMARY>" in m.text for m in bot.slack.messages[inc.channel_id])
    _, url = await bot.command("escalate", channel=inc.channel_id)
    assert "Paged L2" in bot.last_reply(url)
    assert [e["step"] for e in await page_events(bot, inc.id)] == ["L1", "L2"]


async def test_update_reminder_mentions_commander(bot: BotHarness, clock: ManualClock) -> None:
    await bot.command("declare P1 Orders failing")
    [inc] = await bot.incidents()
    await bot.command("ack", user="U01PRIMARY", channel=inc.channel_id)
    clock.advance(minutes=30)
    await worker(bot).tick()
    reminders = [m.text for m in bot.slack.messages[inc.channel_id] if "Update due" in m.text]
    assert reminders and "<@UDECLARER>" in reminders[0]
    clock.advance(minutes=30)
    await worker(bot).tick()
    # The second reminder edits the first (one live "Update due" message, tests/escalation/
    # test_reminders_coalesced.py).
    [live] = [m for m in bot.slack.messages[inc.channel_id] if "Update due" in m.text]
    assert "no update for 60 min" in live.text and "<@UDECLARER>" in live.text


async def test_page_survives_429_with_retry_after(bot: BotHarness, clock: ManualClock) -> None:
    bot.slack.fail_next("conversations.open", status=429, retry_after=1)
    await bot.command("declare P1 Rate limited page")
    assert len(dms_to(bot, "U01PRIMARY")) == 1
    assert len(bot.slack.calls_to("conversations.open", ok=False)) == 1


async def test_p3_records_a_ticket_and_pages_nobody(bot: BotHarness) -> None:
    await bot.command("declare P3 Typo on the menu")
    [inc] = await bot.incidents()
    kinds = [e.kind for e in await bot.events(inc.id)]
    assert "ticket" in kinds and "page" not in kinds
    assert bot.slack.calls_to("conversations.open") == []
