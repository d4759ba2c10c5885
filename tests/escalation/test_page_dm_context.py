"""A page DM keeps what the responder needs after Acknowledge (summary, severity, war room) and shows the
final state after resolve (when, by whom, the PIR link). Asserted on the chat.update calls the Slack
stand-in recorded for the DMs, reached through signed HTTP requests."""

from __future__ import annotations

import json

from bot.clock import ManualClock
from tests.support import BotHarness

SUMMARY = "Factory orders failing"


def _dm_updates(bot: BotHarness, user: str) -> list[dict]:
    return [c.args for c in bot.slack.calls_to("chat.update", ok=True) if c.args.get("channel") == f"D{user}"]


def _blocks(args: dict) -> str:
    blocks = args.get("blocks")
    return blocks if isinstance(blocks, str) else json.dumps(blocks or [])


def _buttons(args: dict) -> list[str]:
    blocks = args.get("blocks")
    parsed = json.loads(blocks) if isinstance(blocks, str) else (blocks or [])
    return [e.get("action_id") for b in parsed if b.get("type") == "actions" for e in b.get("elements", [])]


async def test_acknowledged_page_dm_keeps_summary_severity_and_war_room(
    bot: BotHarness, clock: ManualClock
) -> None:
    await bot.command(f"declare P1 {SUMMARY}")
    [inc] = await bot.incidents()
    room = f"<#{inc.channel_id}>"
    clock.advance(minutes=3)
    resp = await bot.action("ack_incident", inc.id, user="U01PRIMARY", channel="DU01PRIMARY")
    assert resp.status_code == 200

    [acked] = _dm_updates(bot, "U01PRIMARY")
    text, blocks = str(acked["text"]), _blocks(acked)
    for part in (SUMMARY, "P1 (HIGH)", room):
        assert part in text, (part, text)
        assert part in blocks, (part, blocks)
    assert "Acknowledged by <@U01PRIMARY>" in blocks
    assert "ack_incident" not in _buttons(acked)  # the moment of Acknowledge has passed

    # Resolve: the DM shows the final state, still with its context, and the PIR link.
    clock.advance(minutes=20)
    await bot.action("resolve_anyway", inc.id, user="UDECLARER", channel=inc.channel_id or "")
    updates = _dm_updates(bot, "U01PRIMARY")
    assert len(updates) == 2, updates
    final = updates[-1]
    text, blocks = str(final["text"]), _blocks(final)
    for part in (SUMMARY, "P1 (HIGH)", room, "Resolved at", "http://bot.test/"):
        assert part in text or part in blocks, (part, text, blocks)
    assert SUMMARY in text and "resolved by <@UDECLARER>" in text
    assert "Acknowledged by <@U01PRIMARY>" in blocks  # who answered the page stays on record
    assert "<@UDECLARER>" in blocks
    assert _buttons(final) == []
    # The stand-in recorded every edit as the DM's current message: the resolved one is what people see.
    [msg] = [m for m in bot.slack.messages["DU01PRIMARY"] if m.ts == final["ts"]]
    assert "Resolved at" in json.dumps(msg.blocks)


async def test_unacknowledged_page_dm_after_resolve_keeps_context(
    bot: BotHarness, clock: ManualClock
) -> None:
    await bot.command("declare P0 Nobody can order pizza")
    [inc] = await bot.incidents()
    await bot.action("resolve_anyway", inc.id, user="UDECLARER", channel=inc.channel_id or "")
    for user in ("U01PRIMARY", "U02SECOND"):
        [final] = _dm_updates(bot, user)
        blocks = _blocks(final)
        for part in ("Nobody can order pizza", "P0 (CRITICAL)", f"<#{inc.channel_id}>", "Resolved at"):
            assert part in blocks, (part, blocks)
        assert "resolved by <@UDECLARER> — nothing to do" in str(final["text"])
        assert _buttons(final) == []


async def test_page_dm_edits_stay_within_slacks_limits_with_the_longest_summary(
    bot: BotHarness, clock: ManualClock
) -> None:
    """500 characters of markup-heavy summary: the stand-in checks every Block Kit limit, so a refused edit
    would be a recorded failed chat.update. The summary's `<`, `&` are escaped, never a mention or link."""
    summary = ("<!channel> & <@U1> *x* " * 30)[:500].strip()
    await bot.command(f"declare P0 {summary}")
    [inc] = await bot.incidents()
    await bot.action("ack_incident", inc.id, user="U01PRIMARY", channel="DU01PRIMARY")
    await bot.action("resolve_anyway", inc.id, user="UDECLARER", channel=inc.channel_id or "")
    assert bot.slack.calls_to("chat.update", ok=False) == []
    edits = _dm_updates(bot, "U01PRIMARY") + _dm_updates(bot, "U02SECOND")
    assert len(edits) == 4  # ack + resolve, for each of the two paged
    for args in edits:
        body = _blocks(args) + str(args["text"])
        assert "<!channel>" not in body and "<@U1>" not in body
        assert "&lt;!channel&gt;" in body
