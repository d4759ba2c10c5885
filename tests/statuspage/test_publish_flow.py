"""Publishing on purpose, end to end from Slack: signed slash command, the compose modal, the preview, the
Publish button with permission checks, then the public page, the timeline, the war room and the PIR."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.config import Settings
from bot.models import StatusUpdate, Timer
from bot.pir.data import load_for
from bot.pir.render import render_markdown
from sandbox.slack_standin import SlackStandin, view_problems
from tests.conftest import make_settings
from tests.statuspage.support import (
    COMMANDER,
    MEMBER,
    buttons,
    compose_and_preview,
    declare,
    last_response_text,
    opened_views,
    room,
)
from tests.support import BotHarness, form_values


async def page(bot: BotHarness) -> str:
    resp = await bot.http.get(f"{bot.url}/status")
    assert resp.status_code == 200
    return resp.text


async def test_compose_preview_publish_from_slack(bot: BotHarness, clock: ManualClock) -> None:
    inc = await declare(bot)
    await bot.command(f"invite <@{MEMBER}>", user=COMMANDER, channel=inc.channel_id or "")  # harmless noise
    # P1: the commander is prompted in the war room, with a button, to publish within the response target.
    prompt = [m for m in room(bot, inc) if "statuspage_open" in buttons(m)]
    assert len(prompt) == 1 and "within 15 min" in prompt[0].text

    preview = await compose_and_preview(bot, inc)
    view = opened_views(bot, "statuspage_compose")[-1]
    assert not view_problems(view)
    assert "Factory orders failing" not in str(view["blocks"])  # the internal summary is not copied in
    flat = str(preview.blocks)
    assert "Some pizza orders are failing" in flat and "Orders may fail at checkout" in flat
    assert "Degraded performance" in flat or "degraded performance" in flat
    ids = buttons(preview)
    assert set(ids) == {"statuspage_publish", "statuspage_discard"}

    # Not public yet: the page is unchanged; the unlisted preview shows the page as it will look.
    assert "Some pizza orders" not in await page(bot)
    [row] = await _updates(bot)
    prev = await bot.http.get(f"{bot.url}/status/preview/{row.preview_token}")
    assert prev.status_code == 200 and "Some pizza orders are failing" in prev.text and "Preview" in prev.text
    assert prev.headers["cache-control"] == "no-store"

    # A war-room member who is neither commander nor comms lead cannot publish.
    await bot.action(
        "statuspage_publish", ids["statuspage_publish"], user=MEMBER, channel=inc.channel_id or ""
    )
    assert "Only <@UDECLARER>" in last_response_text(bot)
    assert "Some pizza orders" not in await page(bot)

    clock.advance(minutes=3)
    await bot.action(
        "statuspage_publish", ids["statuspage_publish"], user=COMMANDER, channel=inc.channel_id or ""
    )
    assert "Published" in last_response_text(bot)
    html = await page(bot)
    assert "Some pizza orders are failing" in html and "Orders may fail at checkout" in html
    assert "Degraded performance" in html
    # Double click: nothing twice.
    await bot.action(
        "statuspage_publish", ids["statuspage_publish"], user=COMMANDER, channel=inc.channel_id or ""
    )
    assert "already published" in last_response_text(bot)
    events = [e for e in await bot.events(inc.id) if e.kind == "public_update"]
    assert len(events) == 1 and events[0].at == clock.now() and events[0].actor == COMMANDER
    assert sum("Public update published" in m.text for m in room(bot, inc)) == 1
    # The preview link dies with the draft.
    assert (await bot.http.get(f"{bot.url}/status/preview/{row.preview_token}")).status_code == 404

    # The next public update is due after the P1 cadence (30 min), as a timer the ladder's re-plans keep.
    async with bot.svc.db.session() as s:
        due = [
            t.due_at
            for t in (await s.execute(select(Timer).where(Timer.kind == "status_reminder"))).scalars()
        ]
    assert clock.now() + __import__("datetime").timedelta(minutes=30) in due

    # Resolve offers the "resolved" public update; its button opens the modal preset to resolved.
    await bot.command("status MONITORING", user=COMMANDER, channel=inc.channel_id or "")
    clock.advance(minutes=31)
    await bot.command("resolve", user=COMMANDER, channel=inc.channel_id or "")
    offers = [m for m in room(bot, inc) if buttons(m).get("statuspage_open", "").endswith("|resolved")]
    assert len(offers) == 1
    await bot.action("statuspage_open", f"{inc.id}|resolved", user=COMMANDER, channel=inc.channel_id or "")
    resolved_view = opened_views(bot, "statuspage_compose")[-1]
    assert "'value': 'resolved'" in str([b for b in resolved_view["blocks"] if b.get("block_id") == "status"])
    await bot.view_submission(
        "statuspage_compose",
        form_values(resolved_view, {"message": "Orders work again. Sorry for the trouble."}),
        user=COMMANDER,
        private_metadata=inc.id,
    )
    last = [m for m in room(bot, inc) if m.ephemeral_to == COMMANDER][-1]
    await bot.action(
        "statuspage_publish",
        buttons(last)["statuspage_publish"],
        user=COMMANDER,
        channel=inc.channel_id or "",
    )
    html = await page(bot)
    assert "All systems operational" in html and "Orders work again" in html

    # The PIR has the customer communication, with times.
    pir = await load_for(bot.svc, inc.id)
    assert pir is not None
    md = render_markdown(pir, bot.svc.playbook.severities)
    comms = md.split("## Customer communication", 1)[1].split("\n## ", 1)[0]
    assert "Investigating · Some pizza orders are failing" in comms and "Resolved · " in comms
    assert "UTC" in comms


async def _updates(bot: BotHarness) -> list[StatusUpdate]:
    async with bot.svc.db.session() as s:
        return list((await s.execute(select(StatusUpdate).order_by(StatusUpdate.id))).scalars())


async def test_modal_errors_come_back_inside_the_modal(bot: BotHarness) -> None:
    inc = await declare(bot)
    await bot.command("statuspage", user=COMMANDER, channel=inc.channel_id or "")
    view = opened_views(bot, "statuspage_compose")[-1]
    bad = form_values(view, {"title": "   ", "message": "x" * 2001, "c:ordering": "exploded"})
    resp = await bot.view_submission("statuspage_compose", bad, user=COMMANDER, private_metadata=inc.id)
    body = resp.json()
    assert body["response_action"] == "errors" and set(body["errors"]) == {"title", "message", "c:ordering"}
    assert await _updates(bot) == []


async def test_only_commander_comms_or_admins_may_open_the_form(bot: BotHarness) -> None:
    inc = await declare(bot)
    resp, url = await bot.command("statuspage", user=MEMBER, channel=inc.channel_id or "")
    assert resp.status_code == 200 and "Only <@UDECLARER>" in bot.last_reply(url)
    assert opened_views(bot, "statuspage_compose") == []
    # A forged submission from someone not allowed stores nothing either.
    await bot.command("statuspage", user=COMMANDER, channel=inc.channel_id or "")
    view = opened_views(bot, "statuspage_compose")[-1]
    values = form_values(view, {"title": "t", "message": "m"})
    await bot.view_submission("statuspage_compose", values, user=MEMBER, private_metadata=inc.id)
    assert await _updates(bot) == []
    # Made comms lead, they may.
    await bot.command(f"comms <@{MEMBER}>", user=COMMANDER, channel=inc.channel_id or "")
    await compose_and_preview(bot, inc, user=MEMBER)
    assert [u.author for u in await _updates(bot)] == [MEMBER]


async def test_outside_a_war_room_and_bad_arguments_get_usage(bot: BotHarness) -> None:
    resp, url = await bot.command("statuspage", user=COMMANDER, channel="CGENERAL")
    assert resp.status_code == 200 and "war room" in bot.last_reply(url)
    resp, _ = await bot.command("statuspage now please", user=COMMANDER, channel="CGENERAL")
    assert "Usage: `/incident statuspage`" in resp.json()["text"]


@pytest.fixture
def approval_settings(db_url: str, slack: SlackStandin) -> Settings:
    return make_settings(db_url, slack, statuspage_p0_approval=True, statuspage_admins="U01PRIMARY")


@pytest.fixture
async def abot(approval_settings: Settings, slack: SlackStandin, clock: ManualClock):  # type: ignore[no-untyped-def]
    import httpx

    from sandbox.servers import LoopServer
    from wiring.app import create_app

    app = create_app(approval_settings, clock=clock)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=30) as http:
        yield BotHarness(server.url, app.state.svc, slack, http, app)


async def test_p0_needs_a_second_person_when_configured(abot: BotHarness) -> None:
    bot = abot
    inc = await declare(bot, "declare P0 Everything is down")
    preview = await compose_and_preview(bot, inc)
    uid = buttons(preview)["statuspage_publish"]
    await bot.action("statuspage_publish", uid, user=COMMANDER, channel=inc.channel_id or "")
    assert "second person" in last_response_text(bot)
    assert "Some pizza orders" not in await page(bot)
    ask = [m for m in room(bot, inc) if "Approve and publish" in str(m.blocks)]
    assert len(ask) == 1
    # The author cannot approve their own update; a war-room member without the role cannot either.
    await bot.action("statuspage_publish", uid, user=COMMANDER, channel=inc.channel_id or "")
    assert "someone other than the author" in last_response_text(bot)
    await bot.action("statuspage_publish", uid, user=MEMBER, channel=inc.channel_id or "")
    assert "Some pizza orders" not in await page(bot)
    # An admin (setting) approves: published, with the approver on the timeline.
    await bot.action("statuspage_publish", uid, user="U01PRIMARY", channel=inc.channel_id or "")
    assert "Some pizza orders are failing" in await page(bot)
    [ev] = [e for e in await bot.events(inc.id) if e.kind == "public_update"]
    assert ev.data["approved_by"] == "U01PRIMARY"


async def test_drills_never_reach_the_public_page(bot: BotHarness) -> None:
    from bot.models import Incident

    inc = await declare(bot)
    async with bot.svc.db.session() as s:
        row = await s.get(Incident, inc.id)
        assert row is not None
        row.is_drill = True
    _resp, url = await bot.command("statuspage", user=COMMANDER, channel=inc.channel_id or "")
    assert "drills never reach the public status page" in bot.last_reply(url)
    assert opened_views(bot, "statuspage_compose") == []
