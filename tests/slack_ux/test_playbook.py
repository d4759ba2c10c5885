"""`/incident playbook` in Slack: a section menu, then native Block Kit (no raw tables, no hard wraps)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.health.playbook_doc import sections
from handlers.markdown_blocks import markdown_blocks, to_mrkdwn
from tests.support import BotHarness


async def test_playbook_menu_then_a_section(bot: BotHarness) -> None:
    _resp, url = await bot.command("playbook")
    menu = bot.replies(url)[-1]
    buttons = [e for b in menu["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == [t for t, _ in sections()]
    assert len(str(menu)) < 6000  # a menu, not the whole 2,480 px document

    roles = next(b for b in buttons if b["text"]["text"] == "Roles and responsibilities")
    await bot.action(roles["action_id"], roles["value"], user="UOTHER", channel="CGENERAL")
    got = next(r for rs in bot.slack.responses.values() for r in rs if "Roles and" in str(r.get("text")))
    flat = "\n".join(b["text"]["text"] for b in got["blocks"] if b["type"] == "section")
    assert "|------|" not in flat and "| Role |" not in flat  # tables become lists
    assert "• *Incident commander* — Who: whoever declares" in flat


async def test_playbook_section_by_name_is_unwrapped(bot: BotHarness) -> None:
    _resp, url = await bot.command("playbook objective")
    got = bot.replies(url)[-1]
    flat = "\n".join(b["text"]["text"] for b in got["blocks"] if b["type"] == "section")
    # In the source this sentence is hard-wrapped after "JWT verification".
    assert "JWT verification (`POST /api/order/verify`)" in flat
    _resp, url = await bot.command("playbook nonsense")
    assert "No section matches `nonsense`" in bot.last_reply(url)


async def test_stale_playbook_button_answers(bot: BotHarness) -> None:
    await bot.action("playbook_section_0", "999", user="UOTHER", channel="CGENERAL")
    answers = [str(r.get("text")) for rs in bot.slack.responses.values() for r in rs]
    assert any("out of date" in a for a in answers)


def test_every_section_fits_slack_limits() -> None:
    for _title, body in sections():
        blocks = markdown_blocks(body)
        assert 0 < len(blocks) <= 48
        assert all(len(b["text"]["text"]) <= 3000 for b in blocks)


def test_people_text_in_markdown_is_escaped_and_links_kept() -> None:
    [out] = to_mrkdwn("See [the runbook](https://example.com/r) <!channel> & **now**")
    assert out == "See <https://example.com/r|the runbook> &lt;!channel&gt; &amp; *now*"


@given(st.text(max_size=8000))
def test_any_markdown_stays_within_limits(md: str) -> None:
    blocks = markdown_blocks(md)
    assert len(blocks) <= 50
    assert all(0 < len(b["text"]["text"]) <= 3000 for b in blocks)
