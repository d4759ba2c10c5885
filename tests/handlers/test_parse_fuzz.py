"""Property-based: arbitrary `/incident` text never breaks the parser, and over signed HTTP it gets a 200,
an ephemeral answer, and either a whole change (state + its timeline event) or no change at all."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.clock import ManualClock
from bot.config import Settings
from bot.models import Incident
from bot.playbook import AREAS, SEVERITIES, STATUSES
from handlers.app import BROKEN
from handlers.parse import _PARSERS, MAX_NOTE, MAX_SUMMARY, MAX_TEXT, Command, UsageError, parse
from sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from tests.support import BotHarness

MEMBER, OUTSIDER = "UDECLARER", "UOUTSIDER"
LIFECYCLE = ["status", "severity", "commander", "comms", "note", "resolve", "reopen", "timeline", "update"]
ODD = [
    *['"', "'", "“", "”", "`", "\\", "<@U01PRIMARY>", "<@U123|bob>", "<!channel>", "🍕", "👍🏽", "\u200b"],
    *["\x00", "\n", "\t", "--area", "--area=db", "P0", "P1", "MONITORING", "RESOLVED", "é", "מ", "𝒜"],
]

words = st.one_of(
    st.sampled_from(ODD), st.sampled_from([*SEVERITIES, *STATUSES, *AREAS]), st.text(max_size=12)
)
args = st.lists(words, max_size=6).map(" ".join)


VALID_ARGS: dict[str, st.SearchStrategy[str]] = {
    "status": st.sampled_from([x for x in STATUSES for x in (x, x.lower())]),
    "severity": st.sampled_from([*SEVERITIES, "p0"]),
    "commander": st.sampled_from(["<@UOTHER>", "<@U01PRIMARY|priya>", "<@UOUTSIDER>"]),
    "comms": st.sampled_from(["<@U02SECOND>", "<@UDECLARER>"]),
    "note": st.text(min_size=1, max_size=300),
    "declare": st.tuples(
        st.sampled_from(SEVERITIES), st.text(max_size=40), st.sampled_from(["", *AREAS])
    ).map(lambda t: f"{t[0]} {t[1]}" + (f" --area {t[2]}" if t[2] else "")),
}


def commands(subs: list[str]) -> st.SearchStrategy[str]:
    """Mostly near-misses (a real subcommand, valid or odd arguments, odd case), noise, huge text."""

    def near(name: str) -> st.SearchStrategy[str]:
        verb = st.sampled_from([name, name, name.upper(), name.title(), f"  {name}"])
        valid = VALID_ARGS.get(name, st.just(""))
        rest = st.one_of(valid, valid, valid, args)  # repeated branches weigh more
        return st.tuples(verb, rest).map(" ".join)

    near_miss = st.sampled_from(subs).flatmap(near)
    return st.one_of(
        near_miss,
        near_miss,
        near_miss,
        st.text(max_size=200),
        st.tuples(st.sampled_from(["note", "declare P1", "status", "x"]), st.integers(4000, 10_000)).map(
            lambda t: f"{t[0]} " + "🍕" * (t[1] // 2)
        ),
    )


# -- the parser alone ---------------------------------------------------------------------------------------


@hsettings(max_examples=300, deadline=None)
@given(text=st.one_of(commands([*_PARSERS, "frobnicate", ""]), st.text(max_size=10_000)))
def test_parser_returns_a_valid_command_or_a_usage_message(text: str) -> None:
    try:
        cmd = parse(text)
    except UsageError as exc:
        assert exc.message.strip() and len(exc.message) < 3000  # fits an ephemeral ack
        return
    assert isinstance(cmd, Command)
    a: dict[str, Any] = cmd.args
    if cmd.name == "declare":
        assert a["severity"] in SEVERITIES and a["area"] in (None, *AREAS)
        assert 0 < len(str(a["summary"])) <= MAX_SUMMARY and str(a["summary"]).strip() == a["summary"]
    elif cmd.name == "status":
        assert a["status"] in STATUSES and a["status"] != "RESOLVED"
    elif cmd.name == "severity":
        assert a["severity"] in SEVERITIES
    elif cmd.name in ("commander", "comms"):
        assert re.fullmatch(r"[UW][A-Z0-9]+", str(a["user"]))
    elif cmd.name == "note":
        assert 0 < len(str(a["text"])) <= MAX_NOTE
    elif cmd.name in ("resolve", "reopen", "timeline", "update", "declare_modal", "help"):
        assert a == {}
    assert len(text) <= MAX_TEXT or cmd.name == "help" or len(text.strip()) <= MAX_TEXT


def test_lifecycle_commands_are_served() -> None:
    from handlers import registry
    from handlers.app import _load_modules

    _load_modules()
    for name in [*LIFECYCLE, "declare", "declare_modal", "help"]:
        assert name in registry.COMMANDS, name


# -- over HTTP ----------------------------------------------------------------------------------------------


@pytest.fixture
def settings(db_url: str, slack: SlackStandin) -> Settings:
    # No rate limit: every valid declare must create exactly one incident.
    return make_settings(db_url, slack, declare_rate_limit=0)


async def _state(bot: BotHarness) -> tuple[list[tuple[Any, ...]], dict[str, list[str]]]:
    incs = await bot.incidents()
    rows = [(i.id, i.status, i.severity, i.commander, i.comms_lead, i.cycle, i.summary) for i in incs]
    return rows, {i.id: [e.kind for e in await bot.events(i.id)] for i in incs}


# A changed column must come with its timeline event, and an event with its change: never half of one.
PAIRED = {1: {"status", "resolved", "reopened"}, 2: {"severity"}, 3: {"role"}, 4: {"role"}, 5: {"reopened"}}


@hsettings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    text=commands([*LIFECYCLE, "declare", "help", "frobnicate"]),
    where=st.sampled_from(["room", "room", "room", "room", "room (outsider)", "general"]),
    minutes=st.sampled_from([0, 0, 0, 31]),
)
async def test_any_command_text_over_http_is_200_and_all_or_nothing(
    bot: BotHarness, clock: ManualClock, text: str, where: str, minutes: int
) -> None:
    in_room = where != "general"
    if not await bot.incidents():
        await bot.command("declare P2 Fuzzing target", user=MEMBER)
    room: Incident = (await bot.incidents())[0]
    clock.advance(minutes=minutes)
    user = OUTSIDER if where == "room (outsider)" else MEMBER
    # The outsider may have been made commander by an earlier example, which invites them: ask Slack.
    member = user in bot.slack.channels[room.channel_id or ""].members
    before_rows, before_events = await _state(bot)
    try:
        cmd: Command | None = parse(text)
    except UsageError:
        cmd = None
    event(f"{cmd.name if cmd else 'usage error'}{'' if in_room and member else ' (refused)'}")

    resp, url = await bot.command(text, user=user, channel=(room.channel_id or "") if in_room else "CGENERAL")

    assert resp.status_code == 200
    if cmd is None:
        body = resp.json()
        assert body["response_type"] == "ephemeral" and body["text"]
    assert not any(BROKEN in str(r.get("text")) for r in bot.replies(url))  # no handler crashed
    rows, events = await _state(bot)
    created = len(rows) - len(before_rows)
    assert created == (1 if cmd is not None and cmd.name == "declare" else 0)
    old = {r[0]: r for r in before_rows}
    for row in rows:
        if row[0] not in old:
            continue
        new_kinds = set(events[row[0]][len(before_events[row[0]]) :])
        assert events[row[0]][: len(before_events[row[0]])] == before_events[row[0]]
        if cmd is None or not (in_room and member and row[0] == room.id):
            # Reading the timeline needs no membership (it is recorded); nothing else may leave a trace.
            viewed = {"command"} if cmd is not None and cmd.name == "timeline" and in_room else set()
            background = {"page", "slack", "war_room_ready", *viewed}
            assert row == old[row[0]] and not new_kinds - background, (text, new_kinds)
            continue
        for column, kinds in PAIRED.items():
            if row[column] != old[row[0]][column]:
                assert new_kinds & kinds, (text, column, new_kinds)
        if "status" in new_kinds or "resolved" in new_kinds:
            assert row[1] != old[row[0]][1], text
        if "severity" in new_kinds:
            assert row[2] != old[row[0]][2], text
