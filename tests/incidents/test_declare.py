"""`/incident declare` end to end: signed HTTP in, war room in the stand-in, rows in SQL."""

from __future__ import annotations

from tests.support import BotHarness


async def test_declare_opens_war_room(bot: BotHarness) -> None:
    resp, url = await bot.command("declare P1 Factory orders failing")
    assert resp.status_code == 200
    assert "Declaring P1" in resp.text

    [inc] = await bot.incidents()
    assert inc.id == "INC-20261123-120000"
    assert (inc.severity, inc.status, inc.summary) == ("P1", "NEW", "Factory orders failing")
    assert inc.provision_state == "ready"

    channel = bot.slack.channel_by_name("incident-20261123-120000")
    assert channel is not None and inc.channel_id == channel.id
    assert {"UDECLARER", "U01PRIMARY"} <= set(channel.members)
    assert channel.topic.startswith("INC-20261123-120000 | P1 (HIGH) | NEW")

    template = bot.slack.message(channel.id, inc.template_ts)
    assert template is not None and template.pinned
    flat = str(template.blocks)
    for label in (
        "Incident ID",
        "Severity",
        "P1 (HIGH)",
        "Status",
        "NEW",
        "Summary",
        "Impact",
        "Root Cause",
        "Next Steps",
        "Commander",
    ):
        assert label in flat, label

    kinds = [e.kind for e in await bot.events(inc.id)]
    assert kinds[0] == "declared"
    assert kinds.count("slack") == 7  # name claimed, channel, invite, topic, template, pin, bookmarks
    assert "war_room_ready" in kinds and "page" in kinds  # L1 paged at declare

    assert f"<#{channel.id}>" in bot.last_reply(url)


async def test_same_trigger_twice_creates_one_incident(bot: BotHarness) -> None:
    await bot.command("declare P2 Slow checkout", trigger_id="standin-dup-1")
    await bot.command("declare P2 Slow checkout", trigger_id="standin-dup-1")
    assert len(await bot.incidents()) == 1
    assert len(bot.slack.calls_to("conversations.create", ok=True)) == 1


async def test_name_taken_uses_suffix(bot: BotHarness) -> None:
    bot.slack.fail_next("conversations.create", status=200, error="name_taken", retry_after=None)
    await bot.command("declare P3 Typo on the menu")
    [inc] = await bot.incidents()
    assert inc.channel_name == "incident-20261123-120000-2"
    assert bot.slack.channel_by_name("incident-20261123-120000-2") is not None


async def test_slack_failure_midway_keeps_incident_and_retry_resumes(bot: BotHarness) -> None:
    bot.slack.fail_next("pins.add", status=200, error="channel_not_found", retry_after=None)
    _resp, url = await bot.command("declare P1 Orders failing", trigger_id="standin-retry-1")
    [inc] = await bot.incidents()
    assert inc.provision_state == "failed" and "pins.add" in (inc.provision_error or "")
    assert "failed" in bot.last_reply(url)
    kinds = [e.kind for e in await bot.events(inc.id)]
    assert "slack_failed" in kinds

    # Slack retries the same command (same trigger): the war room is finished, not duplicated.
    await bot.command("declare P1 Orders failing", trigger_id="standin-retry-1")
    [inc] = await bot.incidents()
    assert inc.provision_state == "ready"
    assert len(bot.slack.calls_to("conversations.create", ok=True)) == 1
    assert len(bot.slack.calls_to("chat.postMessage", ok=True)) >= 1
    assert bot.slack.message(inc.channel_id, inc.template_ts).pinned


async def test_bad_input_answers_usage_and_creates_nothing(bot: BotHarness) -> None:
    for text in (
        "declare",
        "declare P7 broken",
        "declare P1",
        "declare P1    ",
        "frobnicate",
        "declare --area x P1 y",
    ):
        resp, _ = await bot.command(text)
        assert resp.status_code == 200
        if text == "declare":
            continue  # opens the declare form instead
        body = resp.json()
        assert body["response_type"] == "ephemeral"
        assert "Usage" in body["text"] or "Unknown" in body["text"]
    assert await bot.incidents() == []
    assert bot.slack.calls_to("conversations.create") == []


async def test_help_answers_in_the_ack(bot: BotHarness) -> None:
    resp, _ = await bot.command("help")
    assert "/incident declare" in resp.json()["text"]
