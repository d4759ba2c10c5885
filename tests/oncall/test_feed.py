"""An external iCal feed as a layer, served over loopback HTTP: refreshed on the worker's pass, and the last
good copy kept when the feed fails (HTTP 500, garbage, unreachable)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response

from bot.clock import ManualClock
from bot.models import OncallFeed
from bot.oncall.service import oncall_users
from bot.oncall.worker import oncall_tick
from sandbox.servers import LoopServer
from sandbox.slack_standin import SlackStandin
from tests.oncall.test_oncall_e2e import start_bot

FEED = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//feed//EN
BEGIN:VEVENT
UID:weekly-dev@test
DTSTAMP:20261101T000000Z
DTSTART:20261102T080000Z
DTEND:20261102T200000Z
RRULE:FREQ=DAILY
SUMMARY:U07DEV
END:VEVENT
BEGIN:VEVENT
UID:night@test
DTSTAMP:20261101T000000Z
DTSTART:20261123T200000Z
DTEND:20261124T080000Z
SUMMARY:Alice (night)
ATTENDEE:mailto:alice@example.com
END:VEVENT
END:VCALENDAR
"""


def feed_app(state: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.get("/team.ics")
    async def ics() -> Response:
        state["hits"] += 1
        return Response(state["body"], status_code=state["status"], media_type="text/calendar")

    return app


async def test_feed_layer_refreshes_and_keeps_the_last_good_copy(
    tmp_path: Path, db_url: str, slack: SlackStandin, clock: ManualClock
) -> None:
    state: dict[str, Any] = {"body": FEED, "status": 200, "hits": 0}
    async with LoopServer(feed_app(state)) as feed:
        text = f"""
schedules:
  primary:
    level: 1
    layers:
      - name: team calendar
        ical: {feed.url}/team.ics
        refresh: 10m
        map: {{"alice@example.com": U09SEC}}
      - {{name: backstop, users: [U03LEAD]}}
"""
        async for bot in start_bot(tmp_path, db_url, slack, clock, text, oncall_check_interval=0):
            svc = bot.svc
            # Before any fetch the feed layer is empty: the backstop answers.
            assert (await oncall_users(svc, 1, clock.now())).users == ("U03LEAD",)
            await oncall_tick(svc)
            assert state["hits"] == 1
            now = await oncall_users(svc, 1, clock.now())  # Monday 12:00 UTC: the daily 08–20 event
            assert now.users == ("U07DEV",) and now.layer == "team calendar"
            assert now.until is not None and now.until.hour == 20
            night = await oncall_users(svc, 1, clock.now() + timedelta(hours=9))
            assert night.users == ("U09SEC",)  # matched through the ATTENDEE map

            # Not due yet: no refetch.
            clock.advance(minutes=5)
            await oncall_tick(svc)
            assert state["hits"] == 1
            for status, body in (
                (500, "oops"),
                (200, "BEGIN:VCALENDAR\nthis is not ical"),
                (200, ""),
                (200, "X" * 2_100_000),  # larger than a feed may be
            ):
                state["status"], state["body"] = status, body
                clock.advance(minutes=11)
                await oncall_tick(svc)
                async with svc.db.session() as s:
                    row = await s.get(OncallFeed, "primary/team calendar")
                assert row is not None and row.last_error, (status, body)
                assert row.body == FEED  # the last good copy
                assert (await oncall_users(svc, 1, clock.now())).users == ("U07DEV",)
            hits = state["hits"]
        # The feed's server is gone: unreachable is a failure too, the copy stays.
    async for bot in start_bot(tmp_path, db_url, slack, clock, text, oncall_check_interval=0):
        clock.advance(minutes=11)
        await oncall_tick(bot.svc)
        async with bot.svc.db.session() as s:
            row = await s.get(OncallFeed, "primary/team calendar")
        assert row is not None and "Connect" in (row.last_error or "") and row.body == FEED
        assert (await oncall_users(bot.svc, 1, clock.now())).users == ("U07DEV",)
    assert hits == 5
