"""Nasty input through every user input path (slash, modal, 📌) on SQLite and PostgreSQL: each gets an answer
(a usage message, a form error, or the work done), never "Something went wrong"; NUL bytes and lone
surrogates are removed before storage (PostgreSQL refuses both), everything else is stored as typed."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from handlers.app import BROKEN
from tests.incidents.test_lifecycle import opened_view
from tests.support import BotHarness, form_values

MEMBER = "UDECLARER"

# (name, text as typed, whether it can travel in a URL-encoded form: a lone surrogate has no UTF-8)
NASTY: list[tuple[str, str, bool]] = [
    ("NUL bytes", "Orders\x00 failing\x00 now", True),
    ("lone surrogates", "Orders \ud800failing\udfff now", False),
    ("escape and bell", "Orders \x1b[31mfailing\x07 now", True),
    ("zero-width and RTL", "Orders \u200bfailing\u202e now", True),
    ("emoji and CJK", "Orders 🍕 failing 注文 now", True),
]
IDS = [n[0] for n in NASTY]


def _no_unsafe(text: str) -> None:
    assert "\x00" not in text
    assert not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text), ascii(text)


def _nothing_broke(bot: BotHarness) -> None:
    texts = [str(r.get("text")) for rs in bot.slack.responses.values() for r in rs]
    texts += [str(c.args.get("text")) for c in bot.slack.calls]
    assert not any(BROKEN in t for t in texts), [t for t in texts if BROKEN in t]


async def _room(bot: BotHarness) -> Any:
    await bot.command("declare P2 Nasty input target", user=MEMBER)
    [inc] = await bot.incidents()
    return inc


@pytest.mark.parametrize("name, text, formable", NASTY, ids=IDS)
async def test_slash_declare_and_note(bot: BotHarness, name: str, text: str, formable: bool) -> None:
    if not formable:
        pytest.skip("a lone surrogate cannot be URL-encoded as UTF-8 (see the invalid UTF-8 test)")
    resp, url = await bot.command(f"declare P2 {text}", user=MEMBER)
    assert resp.status_code == 200
    [inc] = await bot.incidents()
    _no_unsafe(inc.summary)
    assert inc.summary.startswith("Orders") and inc.summary.endswith("now")
    _, url = await bot.command(f"note {text}", user=MEMBER, channel=inc.channel_id or "")
    notes = [e for e in await bot.events(inc.id) if e.kind == "note"]
    assert len(notes) == 1, bot.replies(url)
    _no_unsafe(notes[0].text)
    _nothing_broke(bot)


async def test_slash_invalid_utf8_is_400(bot: BotHarness) -> None:
    body = (
        "command=%2Fincident&user_id=UDECLARER&channel_id=CGENERAL&text=declare+P2+"
        + quote("\ud800".encode("utf-8", "surrogatepass"))
    ).encode()
    resp = await bot.post_signed(body, "application/x-www-form-urlencoded")
    assert resp.status_code == 400
    assert await bot.incidents() == []


@pytest.mark.parametrize("name, text, formable", NASTY, ids=IDS)
async def test_modal_declare_and_update(bot: BotHarness, name: str, text: str, formable: bool) -> None:
    await bot.command("declare", user=MEMBER, channel="CGENERAL")
    view = opened_view(bot, "incident_declare")
    values = form_values(view, severity="P2", summary=text, impact=text, area=None)
    resp = await bot.view_submission("incident_declare", values, user=MEMBER, private_metadata="CGENERAL")
    assert resp.status_code == 200
    [inc] = await bot.incidents()
    for field in (inc.summary, inc.impact):
        _no_unsafe(field)
        assert field.startswith("Orders") and field.endswith("now")
    await bot.command("update", user=MEMBER, channel=inc.channel_id or "")
    update = opened_view(bot, "incident_update")
    values = form_values(update, root_cause=text, next_steps=text)
    resp = await bot.view_submission("incident_update", values, user=MEMBER, private_metadata=inc.id)
    assert resp.status_code == 200
    [inc] = await bot.incidents()
    _no_unsafe(inc.root_cause)
    _no_unsafe(inc.next_steps)
    assert inc.root_cause.startswith("Orders")
    _nothing_broke(bot)


@pytest.mark.parametrize("name, text, formable", NASTY, ids=IDS)
async def test_pin_of_a_nasty_message_is_captured(
    bot: BotHarness, name: str, text: str, formable: bool
) -> None:
    if not formable:
        pytest.skip("Slack's JSON is UTF-8: it cannot carry a lone surrogate to conversations.history")
    inc = await _room(bot)
    channel = inc.channel_id or ""
    msg = bot.slack.add_message(channel, MEMBER, text)
    event = {
        "type": "reaction_added",
        "user": MEMBER,
        "reaction": "pushpin",
        "item": {"type": "message", "channel": channel, "ts": msg.ts},
        "event_ts": msg.ts,
    }
    assert (await bot.event(event)).status_code == 200
    pinned = [e for e in await bot.events(inc.id) if e.kind == "pinned"]
    assert len(pinned) == 1, "the 📌 was lost"
    _no_unsafe(pinned[0].text)
    assert pinned[0].text.startswith("Orders") and pinned[0].text.endswith("now")


async def test_pin_event_with_lone_surrogates_in_the_payload(bot: BotHarness) -> None:
    """JSON escapes (`\\ud800`) can carry lone surrogates in an event's own fields: cleaned at the door."""
    inc = await _room(bot)
    channel = inc.channel_id or ""
    msg = bot.slack.add_message(channel, MEMBER, "Orders failing now")
    event = {
        "type": "reaction_added",
        "user": MEMBER,
        "reaction": "pushpin",
        "item": {"type": "message", "channel": channel, "ts": msg.ts},
        "event_ts": msg.ts,
        "junk": "\ud800\x00",
    }
    assert (await bot.event(event, event_id="Ev\ud800\x00x")).status_code == 200
    assert len([e for e in await bot.events(inc.id) if e.kind == "pinned"]) == 1


BOUNDED = [
    "action done 99999999999999999999999",
    "action done 0",
    "action done -1",
    "action done 1e9",
    "action done ١٢",  # Arabic-Indic digits: str.isdigit() says yes, int() agrees, the database may not
    "stats 99999999999d",
    "stats 9999d",
    'action add "x" <@UDECLARER> 99999-01-01',
    f"note {'x' * 5000}",
    f"declare P2 {'y' * 5000}",
    "severity " + "P" * 10_000,
    "commander <@U" + "A" * 5000 + ">",
]


@pytest.mark.parametrize("text", BOUNDED, ids=[t[:40] for t in BOUNDED])
async def test_bounded_parsers_answer(bot: BotHarness, text: str) -> None:
    inc = await _room(bot)
    resp, url = await bot.command(text, user=MEMBER, channel=inc.channel_id or "")
    assert resp.status_code == 200
    answers = [str(resp.json().get("text"))] if resp.content.strip() else []
    answers += [str(r.get("text")) for r in bot.replies(url)]
    assert answers, "no answer at all"
    assert not any(BROKEN in a for a in answers), answers
    _nothing_broke(bot)


def test_payload_json_escape_round_trip() -> None:
    """What the modal test sends really is a lone surrogate after JSON decoding (as Slack's JSON would be)."""
    assert json.loads(json.dumps({"s": "\ud800"}))["s"] == "\ud800"


async def test_a_pin_lost_to_a_database_outage_tells_the_user(
    slack: Any, clock: Any, request: pytest.FixtureRequest
) -> None:
    """The 📌 was acked (Slack will not retry) and then the database went away: the person is told to pin
    again, instead of the entry silently missing from the timeline."""
    import httpx

    from sandbox.servers import LoopServer
    from tests.conftest import PG_URL, make_settings
    from tests.tcp_proxy import TcpProxy
    from wiring.app import create_app

    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set: the outage needs PostgreSQL behind a TCP proxy")
    from sqlalchemy.engine import make_url

    from tests.conftest import _truncate

    real = make_url(request.getfixturevalue("pg_migrated"))
    await _truncate(real.render_as_string(hide_password=False))
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    await proxy.start()
    url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    app = create_app(make_settings(url, slack), clock=clock)
    try:
        async with LoopServer(app) as server, httpx.AsyncClient(timeout=60) as http:
            bot = BotHarness(server.url, app.state.svc, slack, http)
            await bot.command("declare P2 Outage pin target", user=MEMBER)
            [inc] = await bot.incidents()
            channel = inc.channel_id or ""
            msg = slack.add_message(channel, MEMBER, "the Factory answers 503")
            await proxy.stop()
            event = {
                "type": "reaction_added",
                "user": MEMBER,
                "reaction": "pushpin",
                "item": {"type": "message", "channel": channel, "ts": msg.ts},
                "event_ts": msg.ts,
            }
            assert (await bot.event(event)).status_code == 200
            told = [c for c in slack.calls_to("chat.postEphemeral", ok=True) if c.args.get("user") == MEMBER]
            assert any("could not be put on the incident timeline" in str(c.args.get("text")) for c in told)
    finally:
        await proxy.stop()
