"""One war room per incident when Slack did the create but the answer was lost (a 5xx, a timeout, a crash):
the retry meets `name_taken` and adopts the room this incident claimed, never a `-2` beside it. A name that
is someone else's (a person's channel, another incident's room) is still passed over for the next suffix."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.clock import ManualClock
from bot.config import Settings
from bot.models import Incident
from sandbox.servers import LoopServer
from sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from tests.support import BotHarness
from wiring.app import create_app

ROOM = "incident-20261123-120000"


def _created(slack: SlackStandin) -> list[str]:
    return [str(c.args["name"]) for c in slack.calls_to("conversations.create", ok=True)]


def _assert_one_ready_room(slack: SlackStandin, inc: Incident, name: str = ROOM) -> None:
    room = slack.channel_by_name(name)
    assert room is not None
    assert (inc.provision_state, inc.channel_id, inc.channel_name) == ("ready", room.id, name)
    template = slack.message(room.id, str(inc.template_ts))
    assert template is not None and template.pinned
    # The template was posted once, and only into the war room.
    posts = [
        c for c in slack.calls_to("chat.postMessage", ok=True) if c.response.get("ts") == inc.template_ts
    ]
    assert len(posts) == 1 and posts[0].response["channel"] == room.id
    assert {"UDECLARER", "U01PRIMARY"} <= set(room.members)
    assert room.topic.startswith("INC-20261123-120000 | P1")


async def test_create_done_but_answered_500_adopts_the_room(bot: BotHarness) -> None:
    # Slack creates the channel, a proxy answers 500; the SDK retries the call and hears name_taken.
    bot.slack.fail_next(
        "conversations.create", status=500, error="internal_error", retry_after=None, applied=True
    )
    _resp, url = await bot.command("declare P1 Orders failing")
    [inc] = await bot.incidents()
    assert _created(bot.slack) == [ROOM]
    assert bot.slack.channel_by_name(f"{ROOM}-2") is None
    _assert_one_ready_room(bot.slack, inc)
    assert f"<#{inc.channel_id}>" in bot.last_reply(url)
    texts = [e.text for e in await bot.events(inc.id)]
    assert f"Created war room #{ROOM}" in texts
    assert sum(t.startswith("Created war room") for t in texts) == 1


@pytest.fixture
async def slow_bot(db_url: str, slack: SlackStandin, clock: ManualClock) -> AsyncIterator[BotHarness]:
    """The bot with a 1 s Slack timeout, so a stand-in hang of 1.5 s is a client timeout."""
    settings: Settings = make_settings(db_url, slack, slack_timeout=1)
    app = create_app(settings, clock=clock)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=30) as http:
        yield BotHarness(server.url, app.state.svc, slack, http, app)


async def test_create_done_but_timed_out_adopts_the_room_on_retry(slow_bot: BotHarness) -> None:
    bot = slow_bot
    bot.slack.fail_next(
        "conversations.create", status=500, error="request_timeout", retry_after=None, applied=True, hang=1.5
    )
    await bot.command("declare P1 Orders failing", trigger_id="standin-timeout-1")
    [inc] = await bot.incidents()
    assert inc.provision_state == "failed" and "timeout" in (inc.provision_error or "")
    assert inc.channel_id is None and bot.slack.channel_by_name(ROOM) is not None  # Slack has it, we don't

    # Slack retries the command (same trigger): the setup resumes and finds the room it had made.
    await bot.command("declare P1 Orders failing", trigger_id="standin-timeout-1")
    [inc] = await bot.incidents()
    assert _created(bot.slack) == [ROOM]
    assert bot.slack.channel_by_name(f"{ROOM}-2") is None
    _assert_one_ready_room(bot.slack, inc)


async def test_a_name_someone_else_owns_gets_the_next_suffix(bot: BotHarness) -> None:
    # A person made a channel with the war room's name, without the bot: not ours, nothing posted there.
    theirs = bot.slack.add_channel(ROOM, members=["UOTHER"])
    await bot.command("declare P1 Orders failing")
    [inc] = await bot.incidents()
    _assert_one_ready_room(bot.slack, inc, f"{ROOM}-2")
    assert bot.slack.messages.get(theirs.id, []) == []


async def test_another_incidents_room_is_never_adopted(bot: BotHarness) -> None:
    """INC-X-2's first name is INC-X's second: INC-X, passed over `incident-X` (a person's), took
    `incident-X-2`; INC-X-2 then meets name_taken there and must not move into INC-X's room."""
    bot.slack.add_channel(ROOM, members=["UOTHER"])
    await bot.command("declare P1 Orders failing")
    await bot.command("declare P1 Payments failing")  # the same second: INC-20261123-120000-2
    first, second = await bot.incidents()
    assert (first.id, second.id) == ("INC-20261123-120000", "INC-20261123-120000-2")
    assert first.channel_name == f"{ROOM}-2"
    assert second.channel_name == f"{ROOM}-2-2"
    assert first.channel_id != second.channel_id
    _assert_one_ready_room(bot.slack, first, f"{ROOM}-2")
    room = bot.slack.channel_by_name(f"{ROOM}-2")
    assert room is not None
    # Nothing of the second incident's was posted into the first one's room.
    assert all("Payments" not in str(m.blocks) + m.text for m in bot.slack.messages.get(room.id, []))
