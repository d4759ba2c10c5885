"""One escaping boundary: every text field set to Slack control sequences and HTML, through the slash
command, the forms, a note, an action item and 📌 pins. Then every call the Slack stand-in recorded (texts,
blocks, topics, attachments, response_url posts) holds no live control sequence from it, the bot's own
mentions are still live, and the PIR (Markdown and HTML, fetched over HTTP) shows the text verbatim."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import Settings
from bot.models import Incident
from bot.slack_text import esc, esc_clip, from_slack
from sandbox.slack_standin import Channel, SlackStandin
from tests.conftest import make_settings
from tests.support import BotHarness, form_values

INJ = "<!channel> <@U0CEO> <#C123> <https://evil.example|click> & <script>"
LIVE = ("<!channel", "<@U0CEO", "<#C123", "<https://evil", "<script", "<!here", "<!everyone")
# Element keys Slack never renders as mrkdwn (button values, ids, form prefill shown as typed).
NOT_RENDERED = {"value", "action_id", "block_id", "callback_id", "private_metadata", "initial_value", "url"}
MEMBER = "UDECLARER"


@pytest.fixture
def announce(slack: SlackStandin) -> Channel:
    return slack.add_channel("incident-announcements", members=["UBOT"])


@pytest.fixture
def settings(db_url: str, slack: SlackStandin, announce: Channel) -> Settings:
    return make_settings(db_url, slack, announce_channel=announce.id)


def rendered_strings(obj: Any, key: str = "") -> list[tuple[str, str]]:
    """(where, text) of every string Slack would read as markup. plain_text objects are not parsed."""
    if isinstance(obj, str):
        if obj[:1] in "[{":
            try:
                return rendered_strings(json.loads(obj), key)
            except ValueError:
                pass
        return [(key, obj)]
    if isinstance(obj, dict):
        if obj.get("type") == "plain_text":
            return []
        return [x for k, v in obj.items() if k not in NOT_RENDERED for x in rendered_strings(v, k)]
    if isinstance(obj, list):
        return [x for v in obj for x in rendered_strings(v, key)]
    return []


def live_sequences(bot: BotHarness) -> list[tuple[str, str, str]]:
    found = []
    sources: list[tuple[str, Any]] = [(c.method, c.args) for c in bot.slack.calls]
    sources += [("response_url", p) for posts in bot.slack.responses.values() for p in posts]
    for method, args in sources:
        for where, text in rendered_strings(args):
            if any(seq in text for seq in LIVE):
                i = min(text.find(s) for s in LIVE if s in text)
                found.append((method, where, text[max(i - 120, 0) : i + 80]))
    return found


def pushpin(channel: str, ts: str, user: str) -> dict[str, Any]:
    return {"type": "reaction_added", "user": user, "reaction": "pushpin", "item_user": user,
            "item": {"type": "message", "channel": channel, "ts": ts}, "event_ts": ts}  # fmt: skip


async def row(bot: BotHarness, incident_id: str) -> Incident:
    [inc] = [i for i in await bot.incidents() if i.id == incident_id]
    return inc


async def test_hostile_text_is_inert_on_every_slack_surface_and_verbatim_in_the_pir(
    bot: BotHarness, announce: Channel
) -> None:
    # Slash: declare (summary), note, action item.
    await bot.command(f"declare P1 {INJ}", user=MEMBER)
    [inc] = await bot.incidents()
    assert inc.summary == INJ  # stored as typed
    room = inc.channel_id or ""
    await bot.command(f"note {INJ}", user=MEMBER, channel=room)
    await bot.command(f'action add "{INJ}" <@UOTHER> 2026-12-24', user=MEMBER, channel=room)
    # The form: every template field; the severity change is announced to stakeholders.
    await bot.command("update", user=MEMBER, channel=room)
    [view] = [v["view"] for v in bot.slack.views.values() if v["view"]["callback_id"] == "incident_update"]
    fields = {k: INJ for k in ("summary", "impact", "root_cause", "next_steps")}
    values = form_values(view, prefilled=False, **fields, severity="P0", status="IDENTIFIED")
    await bot.view_submission("incident_update", values, user=MEMBER, private_metadata=inc.id)
    inc = await row(bot, inc.id)
    assert (inc.impact, inc.root_cause, inc.next_steps, inc.severity) == (INJ, INJ, INJ, "P0")
    # The declare form, in another channel.
    await bot.command("declare", user="UOTHER", channel="CGENERAL")
    [dview] = [v["view"] for v in bot.slack.views.values() if v["view"]["callback_id"] == "incident_declare"]
    await bot.view_submission(
        "incident_declare", form_values(dview, prefilled=False, severity="P1", summary=INJ, impact=INJ), user="UOTHER",
        private_metadata="CGENERAL",
    )  # fmt: skip
    # 📌 pins: one typed literally (Slack sends it encoded), one with real @channel and a real mention.
    typed = bot.slack.add_message(room, MEMBER, esc(INJ))
    live = bot.slack.add_message(room, MEMBER, "<!channel> look at <@U0CEO> <https://evil.example|this>")
    for msg in (typed, live):
        await bot.event(pushpin(room, msg.ts, MEMBER))
    # Every surface that shows the text again: timeline, PIR summary, action list, resolve announcement.
    await bot.command("timeline", user=MEMBER, channel=room)
    await bot.command("actions", user=MEMBER, channel=room)
    _, pir_url = await bot.command("pir", user=MEMBER, channel=room)
    await bot.command("resolve", user=MEMBER, channel=room)
    await bot.action("resolve_anyway", inc.id, user=MEMBER, channel=room)
    await bot.drain()

    assert live_sequences(bot) == []
    # Nothing was stripped: Slack shows the characters as typed, escaped once (`&amp;`, never `&amp;amp;`).
    topic = bot.slack.channels[room].topic
    assert esc(INJ)[:100] in topic or topic.endswith("…")
    template = bot.slack.message(room, inc.template_ts or "")
    assert template is not None and str(template.blocks).count(esc(INJ)) >= 4
    announced = [m.text for m in bot.slack.messages.get(announce.id, [])]
    assert announced and all(esc(INJ) in t for t in announced if "declared" in t or "resolved" in t)
    assert not any("&amp;amp;" in t for _, t in rendered_strings([c.args for c in bot.slack.calls]))
    # The bot's own mentions stay live.
    assert any(f"<@{MEMBER}>" in m.text for m in bot.slack.messages[room])
    dms = [m for ch, ms in bot.slack.messages.items() if ch.startswith("D") for m in ms]
    assert any(esc(INJ) in str(m.blocks) for m in dms)  # the page DM, escaped

    # The PIR: verbatim, escaped for its format, over the signed link.
    link = re.search(r"<(http://bot\.test/[^|>]+pir\.md\?token=[^|>]+)\|", str(bot.replies(pir_url)))
    posted = [m for m in bot.slack.messages[room] if "pir.md?token=" in str(m.blocks)]
    link = link or re.search(r"<(http://bot\.test/[^|>]+pir\.md\?token=[^|>]+)\|", str(posted[-1].blocks))
    assert link
    md_url = link.group(1).replace("http://bot.test", bot.url)
    md = (await bot.http.get(md_url)).text
    assert "<script>" not in md and "&lt;script>" in md
    assert md.replace("&lt;", "<").count(INJ) >= 3  # summary, impact, root cause (the table escapes `|`)
    web = re.search(r"<(http://bot\.test/[^|>]+)\|🌐", str(bot.replies(pir_url)) + str(posted[-1].blocks))
    assert web
    page = (await bot.http.get(web.group(1).replace("http://bot.test", bot.url))).text
    assert "<script>" not in page and "&lt;script&gt;" in page
    text_of_page = html.unescape(page)
    assert text_of_page.count(INJ) >= 5  # summary, impact, root cause, the note, the typed pin
    assert "@channel look at" in text_of_page  # the real broadcast reads as text, never re-fired


def test_escaping_helpers() -> None:
    assert esc(INJ) == (
        "&lt;!channel&gt; &lt;@U0CEO&gt; &lt;#C123&gt; &lt;https://evil.example|click&gt; &amp; &lt;script&gt;"
    )
    assert from_slack(esc(INJ)) == INJ and from_slack("a &amp;lt; b") == "a &lt; b"
    for n in range(1, 40):
        clipped = esc_clip("&&&&&&&&<<<<>>>>", n)
        assert len(clipped) <= n and not re.search(r"&(?!amp;|lt;|gt;)", clipped.rstrip("…"))


@given(
    st.text(alphabet=st.sampled_from("<>&|!@#;:/ altgmp") | st.characters(), max_size=60), st.integers(1, 80)
)
def test_escaped_text_never_opens_markup_and_round_trips(text: str, limit: int) -> None:
    out = esc(text)
    assert "<" not in out and ">" not in out
    assert not re.search(r"&(?!amp;|lt;|gt;)", out)  # every & starts one of the three entities
    assert from_slack(out) == text  # escaped once: Slack shows exactly what was typed
    clipped = esc_clip(text, limit)
    assert len(clipped) <= limit and "<" not in clipped and ">" not in clipped
    assert not re.search(r"&(?!amp;|lt;|gt;)", clipped.removesuffix("…"))
