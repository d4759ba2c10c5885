"""The sandbox page in a real browser (headless Debian chromium via Playwright): declare, war room, page, ack.

Saves test-artifacts/sandbox.png (and sandbox-dm.png); with UPDATE_DOCS=1 also copies the war-room shot to
docs/sandbox.png for the README. Skips, saying why, when chromium or the playwright package is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.models import Incident
from wiring.sandbox import Sandbox, start_sandbox

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
L1 = "U01PRIMARY"

pytestmark = pytest.mark.browser


async def _open_dm(page: Any, user: str) -> None:
    """Open `user`'s DM, which makes you that person. Retried: the sidebar re-renders as new DMs arrive (the
    outbox delivers pages a moment after they fire), and a click that lands as the list shifts hits its
    neighbour instead (seen once under load in CI)."""
    from playwright.async_api import expect

    for _ in range(5):
        await page.locator(f'.channel[data-id="D{user}"]').click()
        try:
            await expect(page.locator("#viewer")).to_have_value(user, timeout=3_000)
            return
        except AssertionError:
            continue
    await expect(page.locator("#viewer")).to_have_value(user)


async def _as_in(page: Any, user: str, name: str, channel: str) -> None:
    """Become `user` (the "You are" menu) and open #`channel`. Retried like `_open_dm`: a click on the
    channel that lands as the sidebar shifts (a page DM arriving) opens a neighbouring DM instead, which
    makes you that DM's person (seen once under load in CI: the label never said `name`)."""
    from playwright.async_api import expect

    label = page.locator("#as")
    for _ in range(5):
        await page.locator("#viewer").select_option(user)
        await page.locator(".channel", has_text=channel).click()
        try:
            await expect(label).to_contain_text(name, timeout=3_000)
            await expect(label).to_contain_text(f"#{channel}", timeout=3_000)
            return
        except AssertionError:
            continue
    await expect(label).to_contain_text(f"{name} in #{channel}")


async def _hover_click(message: Any, button: str) -> None:
    """Click a message's hover-only button. Retried: the channel re-renders as the bot's lines arrive (the
    outbox posts them a moment later), and a re-rendered message loses the hover (seen under load in CI)."""
    for _ in range(5):
        await message.hover()
        try:
            await message.locator(button).click(timeout=3_000)
            return
        except Exception:  # playwright's TimeoutError: hover again on the re-rendered message
            continue
    await message.hover()
    await message.locator(button).click()


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (Debian's chromium; `make test` installs it with apt when it can)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture
async def browser_page(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, Any]]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    box = await start_sandbox(fast=True, db_url=f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}")
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                yield box, page
                assert not errors, f"JavaScript errors on the page: {errors}"
            finally:
                await browser.close()
    finally:
        await box.stop()


async def test_declare_page_and_acknowledge_in_the_browser(browser_page: tuple[Sandbox, Any]) -> None:
    from playwright.async_api import expect

    box, page = browser_page
    page.set_default_timeout(20_000)
    expect.set_options(timeout=20_000)  # a loaded CI machine is slow; the default is 5 s
    await page.goto(f"{box.url}/")
    await expect(page.locator("#channel-header")).to_contain_text("general")
    await expect(page.locator("#conn")).to_contain_text("live")  # server-sent events connected

    # Type the slash command as "You": the page signs it and POSTs it to the bot like Slack.
    await page.fill("#composer", "/incident declare P1 Orders failing")
    await page.press("#composer", "Enter")
    # The ack ("Declaring…"), then the bot's answer to the response_url, only visible to the declarer.
    await expect(page.locator(".message.ephemeral")).to_contain_text("declared")

    # The war room appears in the sidebar without a reload; it holds the pinned template.
    await page.locator(".channel.incident").first.click()
    await expect(page.locator("#channel-header")).to_contain_text("# incident-")
    template = page.locator(".message.pinned")
    await expect(template).to_have_count(1)
    await expect(template.locator(".bk-header")).to_contain_text("Orders failing")
    await expect(template.locator(".pin-label")).to_contain_text("Pinned")
    await expect(template.locator(".bk-fields")).to_contain_text("P1")

    # The L1 on-call's DM: opening it makes you that person; the page has an Acknowledge button.
    await _open_dm(page, L1)
    ack = page.get_by_role("button", name="Acknowledge")
    await expect(ack).to_be_visible()
    await ack.click()
    await expect(page.locator("#messages")).to_contain_text("Acknowledged by @Priya Primary")
    await expect(page.locator(".message.ephemeral")).to_contain_text("Acknowledged INC-")
    async with box.svc.db.session() as s:
        inc = (await s.execute(select(Incident))).scalar_one()
    assert inc.acknowledged_at is not None

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "sandbox-dm.png"))
    # Back in the war room: the template shows the acknowledgement; views.open renders as a form.
    await page.locator(".channel.incident").first.click()
    await expect(page.locator(".message.pinned")).to_contain_text("Acknowledged by")
    await page.fill("#composer", "/incident update")
    await page.press("#composer", "Enter")
    form = page.locator("#modal")
    await expect(form).to_contain_text("Summary")
    await form.locator("#f-impact").fill("Every checkout fails; the Factory answers 500")
    await form.get_by_role("button", name="Save").click()
    await expect(form).to_have_count(0)
    await expect(page.locator(".message.pinned")).to_contain_text("Every checkout fails")

    # Slack mrkdwn, as the page renders it.
    html = await page.evaluate(
        "(s) => mrkdwn(s)", "*b* _i_ `c` <@U01PRIMARY> <https://x.io/?a=1&amp;b=2|docs> <script>"
    )
    assert "<b>b</b>" in html and "<i>i</i>" in html and "<code>c</code>" in html
    assert "@Priya Primary" in html and 'href="https://x.io/?a=1&amp;b=2"' in html
    assert "<script>" not in html

    # The README shot: the war room after the acknowledgement.
    shot = ARTIFACTS / "sandbox.png"
    await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_DOCS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "sandbox.png")


async def test_shortcuts_and_app_home_in_the_browser(browser_page: tuple[Sandbox, Any]) -> None:
    """Clicks only: declare from the ⚡ shortcut menu, put a message on the timeline from its actions menu,
    then see the incident and the primary's waiting page on the Home tab."""
    from playwright.async_api import expect

    box, page = browser_page
    page.set_default_timeout(20_000)
    expect.set_options(timeout=20_000)
    await page.goto(f"{box.url}/")
    await expect(page.locator("#conn")).to_contain_text("live")

    await page.locator("#shortcuts").click()
    await page.locator('#shortcut-menu [data-shortcut="declare_incident"]').click()
    form = page.locator("#modal")
    await expect(form).to_contain_text("Declare an incident")
    await form.locator("#f-severity").select_option(value="P1")
    await form.locator("#f-summary").fill("Checkout spins forever")
    await form.get_by_role("button", name="Declare").click()
    await expect(form).to_have_count(0)
    await page.locator(".channel.incident").first.click()
    await expect(page.locator(".message.pinned")).to_contain_text("Checkout spins forever")

    await page.fill("#composer", "Oven 3 reports 900 degrees")
    await page.press("#composer", "Enter")
    said = page.locator(".message", has_text="Oven 3 reports 900 degrees")
    await _hover_click(said, '[data-shortcut="add_to_timeline"]')
    await expect(page.locator(".message.ephemeral")).to_contain_text("Added to the INC-")
    async with box.svc.db.session() as s:
        inc = (await s.execute(select(Incident))).scalar_one()
        from bot.models import TimelineEvent

        pinned = (
            (await s.execute(select(TimelineEvent.text).where(TimelineEvent.kind == "pinned")))
            .scalars()
            .all()
        )
    assert list(pinned) == ["Oven 3 reports 900 degrees"]

    await _open_dm(page, L1)  # become the primary on-call
    await page.locator(".channel.home").click()
    home = page.locator(".home-view")
    await expect(home).to_contain_text(inc.id)
    await expect(home).to_contain_text("Waiting for you (1)")
    await expect(home).to_contain_text("On call now")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "sandbox-home.png"))


async def test_a_responders_whole_path_with_clicks_only(browser_page: tuple[Sandbox, Any]) -> None:
    """Chaos on, declare from the ⚡ menu, a stakeholder joins from the announcement, the primary
    acknowledges in the page DM (which keeps the incident's context and loses its button), takes command,
    runs the check from the template, runs the recovery (whose button then goes away) and resolves; the
    template keeps only Reopen and PIR done, the page DM shows the final state with the PIR link, the PIR
    opens from the war room's bookmark, and PIR done archives the channel."""
    from playwright.async_api import expect

    box, page = browser_page
    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    await page.goto(f"{box.url}/")
    await expect(page.locator("#conn")).to_contain_text("live")
    await page.locator('#factory button[data-mode="fail"]').click()
    await expect(page.locator("#factory-mode")).to_have_text("fail")

    await page.locator("#shortcuts").click()
    await page.locator('#shortcut-menu [data-shortcut="declare_incident"]').click()
    form = page.locator("#modal")
    await form.locator("#f-severity").select_option(value="P1")
    await form.locator("#f-summary").fill("Orders fail at the Factory")
    await form.get_by_role("button", name="Declare").click()
    await expect(form).to_have_count(0)
    await expect(page.locator(".channel.incident")).to_have_count(1)

    # A stakeholder (the CEO is never paged for a P1) joins from the announcement.
    await _as_in(page, "U05CEO", "Cass CEO", "announcements")  # the page acts as the CEO now
    join = page.get_by_role("button", name="Join war room").last
    await join.click()
    await expect(page.locator(".message.ephemeral")).to_contain_text("You are in")
    async with box.svc.db.session() as s:
        inc = (await s.execute(select(Incident))).scalar_one()
    assert inc.channel_id and "U05CEO" in box.standin.channels[inc.channel_id].members

    # The primary acknowledges in the page DM: the DM keeps summary, severity and war room, loses the button.
    await _open_dm(page, L1)
    await page.get_by_role("button", name="Acknowledge").click()
    dm = page.locator("#messages")
    await expect(dm).to_contain_text("Acknowledged by @Priya Primary")
    await expect(dm).to_contain_text("Orders fail at the Factory")
    await expect(dm).to_contain_text("P1")
    await expect(dm.get_by_role("link", name="#incident-")).to_have_count(1)
    await expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)

    # In the war room the primary takes command from the template (the declarer had it).
    await page.locator(".channel.incident").first.click()
    template = page.locator(".message.pinned")
    await expect(template).to_contain_text("Acknowledged by")
    await template.get_by_role("button", name="Take over command").click()
    await expect(template).to_contain_text("Commander@Priya Primary")
    # Run check from the template, then the recovery it offers.
    await template.get_by_role("button", name="Run check").click()
    recover = page.get_by_role("button", name="Run recovery: end chaos")
    await expect(recover).to_have_count(1)
    await recover.click()
    await expect(page.locator("#messages")).to_contain_text("chaos ended")
    await expect(page.locator("#factory-mode")).to_have_text("healthy")
    await expect(recover).to_have_count(0)  # the pressed report lost it; the after-recovery report has none

    # The commander resolves from the template, past the unmet criteria.
    await page.locator(".message.pinned").get_by_role("button", name="Resolve").click()
    await page.get_by_role("button", name="Resolve anyway").last.click()
    pinned = page.locator(".message.pinned")
    await expect(pinned).to_contain_text("RESOLVED")
    await expect(pinned.get_by_role("button")).to_have_count(2)
    await expect(pinned.get_by_role("button", name="Reopen")).to_be_visible()

    # The primary's page DM shows the final state and keeps the context.
    await _open_dm(page, L1)
    dm = page.locator("#messages")
    await expect(dm).to_contain_text("Resolved at")
    await expect(dm).to_contain_text("Orders fail at the Factory")
    await expect(dm.get_by_role("link", name="Post-incident review")).to_be_visible()

    # The PIR from the war room's bookmark (a new tab, as in Slack).
    await page.locator(".channel.incident").first.click()
    async with page.context.expect_page() as opened:
        await page.locator(".bookmark", has_text="Timeline & PIR").click()
    pir = await opened.value
    await pir.wait_for_load_state()
    await expect(pir.locator("body")).to_contain_text(inc.id)
    await expect(pir.locator("body")).to_contain_text("Orders fail at the Factory")
    await pir.close()

    # Review done: the template's button closes the war room (summary with the PIR link, then archived).
    await page.locator(".message.pinned").get_by_role("button", name="PIR done: close the war room").click()
    await expect(page.locator("#channel-header")).to_contain_text("archived")
    await expect(page.locator("#messages")).to_contain_text("Closing this war room")
    assert box.standin.channels[inc.channel_id].is_archived
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "sandbox-path.png"
    await page.screenshot(path=str(shot))
    if os.environ.get("UPDATE_DOCS") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "sandbox-path.png")
