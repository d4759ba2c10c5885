"""Schedules end to end: the bot over real HTTP, the Slack stand-in, the worker, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.models import OncallOverride, Timer
from bot.oncall.service import oncall_users
from bot.oncall.web import schedule_url
from bot.worker import Worker
from sandbox.servers import LoopServer
from sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from tests.escalation.test_ladder import dms_to, page_events
from tests.support import BotHarness
from wiring.app import create_app
from wiring.services import build_services

# The clock starts Monday 2026-11-23 12:00 UTC. L1 hands off at 12:30 each day, L2 at 12:05.
SCHEDULES = """
zone: UTC
schedules:
  primary:
    level: 1
    layers:
      - {name: primary daily, users: [U01PRIMARY, U08SRE], rotation: daily, start: "2026-11-22T12:30:00+00:00"}
  secondary:
    level: 2
    layers:
      - {name: secondary daily, users: [U02SECOND, U10BACK], rotation: daily, start: "2026-11-22T12:05:00+00:00"}
"""

# L1 only covers weekends: on a Monday nobody is on, pages fall through to L2.
WEEKEND_ONLY = """
schedules:
  primary:
    level: 1
    layers:
      - name: weekend
        users: [U01PRIMARY]
        restrictions: [{days: sat-sun, from: "00:00", to: "00:00"}]
"""


async def start_bot(
    tmp_path: Path, db_url: str, slack: SlackStandin, clock: ManualClock, text: str, **extra: object
) -> AsyncIterator[BotHarness]:
    path = tmp_path / "schedules.yaml"
    path.write_text(text)
    settings = make_settings(db_url, slack, schedules_file=path, oncall_admins="UADMIN", **extra)
    app = create_app(settings, clock=clock)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=30) as http:
        yield BotHarness(server.url, app.state.svc, slack, http, app)


@pytest.fixture
async def obot(
    tmp_path: Path, db_url: str, slack: SlackStandin, clock: ManualClock
) -> AsyncIterator[BotHarness]:
    async for b in start_bot(tmp_path, db_url, slack, clock, SCHEDULES):
        yield b


def worker(bot: BotHarness, name: str = "w1") -> Worker:
    return Worker(bot.svc, worker_id=name, extra_ticks=[])


async def test_pages_go_to_whoever_holds_the_shift_when_they_fire_and_overrides_start_and_end_mid_incident(
    obot: BotHarness, clock: ManualClock
) -> None:
    bot = obot
    await bot.command("declare P1 Factory orders failing")
    [inc] = await bot.incidents()
    assert len(dms_to(bot, "U01PRIMARY")) == 1
    [l1] = await page_events(bot, inc.id)
    assert l1["users"] == ["U01PRIMARY"] and l1["oncall"]["layer"] == "primary daily"
    assert l1["oncall"]["until"].startswith("2026-11-23T12:30")

    # Non-members cannot cover a level; L3's own member can.
    _, url = await bot.command("oncall override <@U09SEC> 3 2026-11-23T12:15Z 10m", user="UOUTSIDER")
    assert "Only the person on call" in bot.last_reply(url)
    _, url = await bot.command("oncall override <@U09SEC> 3 2026-11-23T12:15Z 10m", user="U03LEAD")
    assert "Override #" in bot.last_reply(url)
    # An admin covers L4 for a while that is over before L4 fires (12:50).
    _, url = await bot.command("oncall override <@U11FRONT> 4 2026-11-23T12:25 20m", user="UADMIN")
    assert "Override #" in bot.last_reply(url)
    async with bot.svc.db.session() as s:
        rows = list((await s.execute(select(OncallOverride).order_by(OncallOverride.id))).scalars())
    assert [(r.user_id, r.made_by) for r in rows] == [("U09SEC", "U03LEAD"), ("U11FRONT", "UADMIN")]

    # L2 was planned when U02SECOND held the shift; it fires at 12:10, after the 12:05 hand-off.
    w = worker(bot)
    clock.advance(minutes=10)
    await w.tick()
    assert dms_to(bot, "U02SECOND") == [] and len(dms_to(bot, "U10BACK")) == 1
    clock.advance(minutes=10)
    await w.tick()
    assert len(dms_to(bot, "U09SEC")) == 1 and dms_to(bot, "U03LEAD") == []  # override live at 12:20
    clock.advance(minutes=30)
    await w.tick()
    assert len(dms_to(bot, "U04VPENG")) == 1 and dms_to(bot, "U11FRONT") == []  # override over at 12:45
    events = await page_events(bot, inc.id)
    assert [(e["step"], e["users"]) for e in events] == [
        ("L1", ["U01PRIMARY"]),
        ("L2", ["U10BACK"]),
        ("L3", ["U09SEC"]),
        ("L4", ["U04VPENG"]),
    ]
    assert events[2]["oncall"]["layer"] == f"override #{rows[0].id}"
    texts = [e.text for e in await bot.events(inc.id) if e.kind == "page"]
    assert "on call via layer 'secondary daily'" in texts[1]
    assert f"override #{rows[0].id} by <@U03LEAD>" in texts[2]

    # `/incident oncall 1` now (12:50) shows U08SRE (hand-off at 12:30) and the next hand-off.
    _, url = await bot.command("oncall 1", user="UOTHER")
    reply = bot.last_reply(url)
    assert "<@U08SRE>" in reply and "until <!date^" in reply
    _, url = await bot.command("oncall overrides", user="UOTHER")
    assert "No current or upcoming overrides" in bot.last_reply(url)  # both are over


async def test_an_empty_level_falls_through_with_the_reason_on_the_timeline_and_gaps_are_warned_once(
    tmp_path: Path, db_url: str, slack: SlackStandin, clock: ManualClock
) -> None:
    channel = slack.add_channel("oncall", members=["UBOT"]).id
    async for bot in start_bot(tmp_path, db_url, slack, clock, WEEKEND_ONLY, oncall_channel=channel):
        from bot.oncall.worker import oncall_tick

        for _ in range(3):  # the gap running now (Mon–Fri) and next Monday's, each once
            bot.svc._oncall_tick_at = None  # type: ignore[attr-defined]
            await oncall_tick(bot.svc)
            clock.advance(minutes=2)
        warnings = [m.text for m in slack.messages[channel]]
        assert len(warnings) == 2 and all("L1 Primary on-call has nobody on call" in w for w in warnings)
        assert "to 2026-11-28 00:00 UTC" in warnings[0]
        _, url = await bot.command("oncall 1", user="UOTHER")
        assert "*nobody*" in bot.last_reply(url) and "Nobody on call from" in bot.last_reply(url)
        await bot.command("declare P1 Checkout slow")
        [inc] = await bot.incidents()
        assert dms_to(bot, "U01PRIMARY") == [] and len(dms_to(bot, "U02SECOND")) == 1
        [page] = [e for e in await bot.events(inc.id) if e.kind == "page"]
        assert page.data["users"] == ["U02SECOND"]
        assert "L1 has nobody on call (no layer has anyone on shift); fell through to L2" in page.text
        # Filling the gap is for members, the person on shift or admins: an outsider is refused.
        _, url = await bot.command("oncall override <@U07DEV> 1 now 1h", user="UOUTSIDER")
        assert "Only" in bot.last_reply(url)


async def test_handoff_notices_are_sent_once_across_worker_restarts(
    tmp_path: Path, db_url: str, slack: SlackStandin, clock: ManualClock
) -> None:
    channel = slack.add_channel("oncall", members=["UBOT"]).id
    async for bot in start_bot(tmp_path, db_url, slack, clock, SCHEDULES, oncall_channel=channel):
        svc = bot.svc
        from bot.oncall.worker import oncall_tick

        await oncall_tick(svc)  # plans the 12:05 (L2) and 12:30 (L1) hand-offs
        # A second process (a restarted worker) plans nothing new.
        other, _ = build_services(svc.settings, clock=clock)
        try:
            await oncall_tick(other)
            async with svc.db.session() as s:
                timers = list(
                    (await s.execute(select(Timer).where(Timer.kind == "oncall_handoff"))).scalars()
                )
            assert sorted(t.due_at.strftime("%H:%M") for t in timers) == ["12:05", "12:30"]
            clock.advance(minutes=31)
            await Worker(other, worker_id="restarted", extra_ticks=[]).tick()
            await Worker(svc, worker_id="w1", extra_ticks=[]).tick()
            other._oncall_tick_at = None  # type: ignore[attr-defined]
            await oncall_tick(other)
            await Worker(other, worker_id="again", extra_ticks=[]).tick()
        finally:
            await other.aclose()
        assert len(dms_to(bot, "U08SRE")) == 1 and "now on call for L1" in dms_to(bot, "U08SRE")[0]
        assert len(dms_to(bot, "U01PRIMARY")) == 1 and "has ended" in dms_to(bot, "U01PRIMARY")[0]
        assert len(dms_to(bot, "U10BACK")) == 1 and len(dms_to(bot, "U02SECOND")) == 1
        lines = [m.text for m in slack.messages[channel]]
        assert len(lines) == 2 and any("L1" in t and "<@U08SRE> on call" in t for t in lines)


async def test_ics_export_is_behind_a_signed_link(obot: BotHarness, clock: ManualClock) -> None:
    import icalendar

    url = schedule_url(obot.svc, "primary", clock.now()).replace("http://bot.test", obot.url)
    resp = await obot.http.get(url)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/calendar")
    cal = icalendar.Calendar.from_ical(resp.text)
    events = [c for c in cal.walk("VEVENT")]
    assert len(events) > 30  # daily shifts 7 days back and 35 ahead
    assert any("U08SRE" in str(e["DESCRIPTION"]) for e in events)
    token = url.split("token=")[1]
    for bad in (
        f"{obot.url}/schedules/primary.ics",
        f"{obot.url}/schedules/primary.ics?token=1.abc",
        f"{obot.url}/schedules/secondary.ics?token={token}",  # signed for another schedule
        f"{obot.url}/schedules/nope.ics?token={token}",
    ):
        assert (await obot.http.get(bad)).status_code == 403, bad


async def test_override_form_validates_in_the_modal_and_a_double_submit_overrides_once(
    obot: BotHarness, clock: ManualClock
) -> None:
    _, url = await obot.command("oncall override", user="U03LEAD", channel="CGENERAL")
    [opened] = obot.slack.calls_to("views.open", ok=True)
    assert opened.args["view"]["callback_id"] == "oncall_override"

    def values(start: str, end: str) -> dict[str, dict[str, object]]:
        return {
            "user": {"value": {"type": "users_select", "selected_user": "U09SEC"}},
            "schedule": {"value": {"type": "static_select", "selected_option": {"value": "level-3"}}},
            "start": {"value": {"type": "plain_text_input", "value": start}},
            "end": {"value": {"type": "plain_text_input", "value": end}},
        }

    resp = await obot.view_submission("oncall_override", values("tomorrow", "0h"), user="U03LEAD")
    body = resp.json()
    assert body["response_action"] == "errors" and set(body["errors"]) == {"start", "end"}
    for _ in range(2):
        await obot.view_submission(
            "oncall_override",
            values("now", "2h"),
            user="U03LEAD",
            view_id="VFORM1",
            private_metadata="CGENERAL",
        )
    async with obot.svc.db.session() as s:
        rows = list((await s.execute(select(OncallOverride))).scalars())
    assert [(r.user_id, r.schedule, r.made_by) for r in rows] == [("U09SEC", "level-3", "U03LEAD")]
    assert rows[0].end_at - rows[0].start_at == timedelta(hours=2)
    _, url = await obot.command("oncall 3", user="UOTHER")
    assert "<@U09SEC> via override" in obot.last_reply(url)
    # Remove: an outsider may not, the maker may.
    _, url = await obot.command(f"oncall remove {rows[0].id}", user="UOUTSIDER")
    assert "Only" in obot.last_reply(url)
    _, url = await obot.command(f"oncall remove {rows[0].id}", user="U03LEAD")
    assert "Removed override" in obot.last_reply(url)
    _, url = await obot.command("oncall 3", user="UOTHER")
    assert "<@U03LEAD> via layer 'roster'" in obot.last_reply(url)


async def test_take_give_and_swap_shifts(obot: BotHarness, clock: ManualClock) -> None:
    # 12:00: U01PRIMARY holds L1 until 12:30, then U08SRE until 12:30 tomorrow.
    _, url = await obot.command("oncall give <@U07DEV> 1", user="U01PRIMARY")
    assert "takes your L1" in obot.last_reply(url)
    assert (await oncall_users(obot.svc, 1, clock.now())).users == ("U07DEV",)
    assert (await oncall_users(obot.svc, 1, clock.now() + timedelta(minutes=30))).users == ("U08SRE",)
    _, url = await obot.command("oncall take 1", user="U08SRE")  # a member takes the running shift back
    assert "you cover L1" in obot.last_reply(url)
    assert (await oncall_users(obot.svc, 1, clock.now())).users == ("U08SRE",)
    _, url = await obot.command("oncall swap <@U02SECOND> 2", user="U10BACK")
    assert "Swapped" in obot.last_reply(url)
    # U02SECOND now covers U10BACK's 12:05 shift and the other way round.
    assert (await oncall_users(obot.svc, 2, clock.now())).users == ("U10BACK",)
    assert (await oncall_users(obot.svc, 2, clock.now() + timedelta(minutes=10))).users == ("U02SECOND",)
    _, url = await obot.command("oncall take 2", user="UOUTSIDER")
    assert "Only" in obot.last_reply(url)
    _, url = await obot.command("oncall overrides 1", user="UOTHER")
    assert obot.last_reply(url).count("#") == 2
    _, url = await obot.command("oncall", user="U08SRE")
    blocks = str(obot.replies(url)[-1].get("blocks"))
    assert "Your shifts in the next 14 days" in blocks


async def test_the_war_room_invites_who_is_on_call_now_for_l1_and_the_routed_team(
    tmp_path: Path, db_url: str, slack: SlackStandin, clock: ManualClock
) -> None:
    text = (
        SCHEDULES
        + """
  dba:
    team: dba
    layers:
      - {name: dba daily, users: [U06DBA, U11FRONT], rotation: daily, start: "2026-11-23T00:00:00+00:00"}
"""
    )
    async for bot in start_bot(tmp_path, db_url, slack, clock, text):
        clock.advance(minutes=45)  # 12:45: L1 is U08SRE since 12:30
        await bot.command("declare P1 Orders table locked --area db")
        assert len(await bot.incidents()) == 1
        invited = {
            u for c in slack.calls_to("conversations.invite", ok=True) for u in c.args["users"].split(",")
        }
        assert invited == {"UDECLARER", "U08SRE", "U06DBA"}


async def test_a_re_page_after_a_relapse_goes_to_the_new_shift(obot: BotHarness, clock: ManualClock) -> None:
    from tests.escalation.test_ladder import resolve

    await obot.command("declare P1 Factory orders failing")
    [inc] = await obot.incidents()
    await obot.command("ack", user="U01PRIMARY", channel=inc.channel_id)
    await resolve(obot, inc.id)
    clock.advance(minutes=40)  # 12:40: the 12:30 hand-off made U08SRE primary
    await obot.command("reopen", user="UDECLARER", channel=inc.channel_id)
    await worker(obot).tick()
    assert len(dms_to(obot, "U01PRIMARY")) == 1 and len(dms_to(obot, "U08SRE")) == 1
    steps = [(e["step"], e["users"]) for e in await page_events(obot, inc.id)]
    assert steps == [("L1", ["U01PRIMARY"]), ("L1", ["U08SRE"])]


async def test_a_handoff_notice_claimed_by_a_worker_that_died_is_sent_once_by_another(
    obot: BotHarness, clock: ManualClock
) -> None:
    from bot.oncall.worker import oncall_tick
    from bot.timers import claim

    await oncall_tick(obot.svc)
    clock.advance(minutes=6)  # the 12:05 L2 hand-off is due
    [t] = await claim(obot.svc.db, "dead-worker", clock.now())
    assert t.kind == "oncall_handoff"
    clock.advance(seconds=31)  # past the lease: the next worker takes it back and fires it
    await Worker(obot.svc, worker_id="w2", extra_ticks=[], lease=timedelta(seconds=30)).tick()
    await Worker(obot.svc, worker_id="w3", extra_ticks=[], lease=timedelta(seconds=30)).tick()
    assert len(dms_to(obot, "U10BACK")) == 1 and len(dms_to(obot, "U02SECOND")) == 1
