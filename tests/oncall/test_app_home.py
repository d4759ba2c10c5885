"""App Home's "On call now" and "Your shifts" come from the schedules (with overrides), not the fixed roster:
an `app_home_opened` event signed and posted to the bot, then the `views.publish` call the stand-in recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.clock import ManualClock
from sandbox.slack_standin import SlackStandin
from tests.oncall.test_oncall_e2e import start_bot
from tests.support import BotHarness

# The clock starts Monday 2026-11-23 12:00 UTC. The roster's L1 is U01PRIMARY; the schedule puts U08SRE on
# L1 until 12:30 UTC today (05:30 in America/Denver, every roster user's zone in the stand-in), then
# U01PRIMARY for a day, then U08SRE again from Tuesday 12:30 UTC, and so on.
SCHEDULES = """
zone: UTC
schedules:
  primary:
    level: 1
    layers:
      - {name: primary daily, users: [U08SRE, U01PRIMARY], rotation: daily, start: "2026-11-22T12:30:00+00:00"}
  secondary:
    level: 2
    layers:
      - {name: secondary weekly, users: [U10BACK], rotation: weekly, start: "2026-11-16T09:00:00+00:00"}
"""


@pytest.fixture
async def hbot(
    tmp_path: Path, db_url: str, slack: SlackStandin, clock: ManualClock
) -> AsyncIterator[BotHarness]:
    async for b in start_bot(tmp_path, db_url, slack, clock, SCHEDULES):
        yield b


async def _home(bot: BotHarness, user: str) -> dict[str, str]:
    """Open the Home tab as `user`; the published view's sections by their bold first line."""
    before = len(bot.slack.calls_to("views.publish", ok=True))
    resp = await bot.event({"type": "app_home_opened", "user": user, "tab": "home", "channel": "D" + user})
    assert resp.status_code == 200
    calls = bot.slack.calls_to("views.publish", ok=True)
    assert len(calls) == before + 1, "the bot published no Home view"
    call = calls[-1]
    assert call.args["user_id"] == user
    view: dict[str, Any] = call.args["view"]
    assert view["type"] == "home"
    out: dict[str, str] = {}
    for b in view["blocks"]:
        text = (b.get("text") or {}).get("text", "") if b["type"] == "section" else ""
        if text.startswith("*"):
            out[text.split("*")[1]] = text
    return out


async def test_app_home_shows_who_the_schedule_puts_on_call_and_the_viewers_shifts(hbot: BotHarness) -> None:
    home = await _home(hbot, "U08SRE")
    now = home["On call now"]
    l1 = next(line for line in now.splitlines() if line.startswith("*L1"))
    assert "<@U08SRE>" in l1 and "<@U01PRIMARY>" not in l1  # the schedule, not the roster's fixed L1
    assert "until Mon 23 Nov 05:30" in l1  # in the viewer's zone (America/Denver)
    l2 = next(line for line in now.splitlines() if line.startswith("*L2"))
    assert "<@U10BACK>" in l2 and "<@U02SECOND>" not in l2
    assert "America/Denver" in now

    mine = home["Your shifts in the next 7 days"]
    lines = [line for line in mine.splitlines() if line.startswith("•")]
    assert lines == [
        "• L1 Primary on-call: now → Mon 23 Nov 05:30",
        "• sre: now → beyond the next 35 days",  # a roster team: all its members, always
        "• L1 Primary on-call: Tue 24 Nov 05:30 → Wed 25 Nov 05:30",
        "• L1 Primary on-call: Thu 26 Nov 05:30 → Fri 27 Nov 05:30",
        "• L1 Primary on-call: Sat 28 Nov 05:30 → Sun 29 Nov 05:30",
    ]  # Monday 30 Nov 12:30 UTC starts after the next 7 days
    assert "America/Denver" in mine

    # Someone with no shifts is told so (in their own zone); the roster's L1 person sees the next shift.
    outsider = (await _home(hbot, "UOUTSIDER"))["Your shifts in the next 7 days"]
    assert "No shifts for you" in outsider and "Europe/Paris" in outsider
    primary = (await _home(hbot, "U01PRIMARY"))["Your shifts in the next 7 days"]
    assert "• L1 Primary on-call: Mon 23 Nov 05:30 → Tue 24 Nov 05:30" in primary


async def test_an_override_changes_what_app_home_says(hbot: BotHarness, clock: ManualClock) -> None:
    _, url = await hbot.command("oncall override <@U11FRONT> 1 now 1h", user="UADMIN")
    assert "Override #" in hbot.last_reply(url)

    home = await _home(hbot, "U08SRE")
    l1 = next(line for line in home["On call now"].splitlines() if line.startswith("*L1"))
    assert "<@U11FRONT>" in l1 and "<@U08SRE>" not in l1 and "override #" in l1
    assert "until Mon 23 Nov 06:00" in l1
    mine = home["Your shifts in the next 7 days"]
    assert "L1 Primary on-call: now" not in mine  # the override covers the rest of U08SRE's running shift
    assert "• L1 Primary on-call: Tue 24 Nov 05:30 → Wed 25 Nov 05:30" in mine

    covering = (await _home(hbot, "U11FRONT"))["Your shifts in the next 7 days"]
    assert "• L1 Primary on-call: now → Mon 23 Nov 06:00 (override #" in covering


async def test_without_the_viewers_time_zone_app_home_says_utc(hbot: BotHarness) -> None:
    hbot.slack.fail_next("users.info", status=200, error="user_not_found", retry_after=None)
    home = await _home(hbot, "U08SRE")
    assert "until Mon 23 Nov 12:30" in home["On call now"]
    assert "Times in UTC (Slack gave no time zone for you)" in home["On call now"]
    assert "• L1 Primary on-call: now → Mon 23 Nov 12:30" in home["Your shifts in the next 7 days"]
