"""The status page in headless Debian chromium (Playwright), JavaScript disabled, at phone and desktop
widths: readable, nothing overflows, bars and states labelled for assistive technology.

Saves test-artifacts/status-desktop.png and status-phone.png; with UPDATE_DOCS=1 also docs/status-page.png
for the README. Skips, saying why, when chromium or the playwright package is missing."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.clock import ManualClock
from bot.statuspage import publish as sp
from bot.statuspage.model import Draft
from bot.statuspage.store import schedule_maintenance, set_automated_state
from bot.statuspage.web import page_config
from sandbox.servers import LoopServer
from sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from tests.sandbox.test_browser import ARGS, ARTIFACTS, CHROMIUM, ROOT, _missing
from tests.statuspage.support import COMMANDER, declare
from tests.support import BotHarness
from wiring.app import create_app

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


async def _publish(bot: BotHarness, incident_id: str, draft: Draft) -> None:
    made = await sp.create_draft(bot.svc, incident_id, COMMANDER, draft)
    assert made.update_id is not None
    assert (await sp.publish(bot.svc, made.update_id, COMMANDER)).state == "published"


async def seed(bot: BotHarness, clock: ManualClock) -> None:
    """A resolved incident a week ago, one open now, an automated state and maintenance tomorrow."""
    old = await declare(bot, "declare P1 JWT verification failing")
    jwt = "Pizza delivery JWTs could not be verified"
    await _publish(
        bot,
        old.id,
        Draft(jwt, "investigating", "Deliveries are delayed while we look into it.", {"jwt": "major_outage"}),
    )
    clock.advance(minutes=50)
    await _publish(
        bot, old.id, Draft(jwt, "monitoring", "A fix is in place; we are watching it.", {"jwt": "degraded"})
    )
    clock.advance(minutes=40)
    await _publish(
        bot,
        old.id,
        Draft(jwt, "resolved", "Deliveries are back to normal. Sorry for the wait.", {"jwt": "operational"}),
    )
    clock.set(datetime(2026, 12, 1, 14, 30, tzinfo=UTC))
    now = await declare(bot, "declare P1 Orders slow")
    await _publish(
        bot,
        now.id,
        Draft(
            "Some pizza orders are slow to confirm",
            "identified",
            "Orders go through but confirmation can take a few minutes. "
            "We found the cause and are rolling out a fix.",
            {"ordering": "partial_outage", "website": "degraded"},
        ),
    )
    async with bot.svc.db.session() as s:
        await set_automated_state(s, "jwt", "degraded", "monitor: verify p99 1.4 s", clock.now())
        start = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
        await schedule_maintenance(
            s,
            page_config(bot.svc),
            title="Database upgrade",
            message="Ordering may pause for up to 5 minutes.",
            starts_at=start,
            ends_at=start + timedelta(hours=1),
            components=["ordering"],
            by=COMMANDER,
            at=clock.now(),
        )
    clock.advance(minutes=40)


@pytest.fixture
async def served(sqlite_url: str, slack: SlackStandin, clock: ManualClock) -> AsyncIterator[BotHarness]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    app = create_app(make_settings(sqlite_url, slack), clock=clock)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=30) as http:
        bot = BotHarness(server.url, app.state.svc, slack, http, app)
        await seed(bot, clock)
        yield bot


async def _open(browser: Any, url: str, viewport: dict[str, int]) -> Any:
    ctx = await browser.new_context(viewport=viewport, java_script_enabled=False)
    page = await ctx.new_page()
    await page.goto(url)
    return page


async def test_status_page_at_phone_and_desktop_widths_without_javascript(served: BotHarness) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=20_000)
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            for name, viewport, bars in (("desktop", DESKTOP, 90), ("phone", PHONE, 30)):
                page = await _open(browser, f"{served.url}/status", viewport)
                await expect(page.get_by_role("heading", level=1)).to_have_text("JWT Pizza status")
                await expect(page.get_by_role("status")).to_have_text("Partial outage")
                current = page.locator("section", has=page.get_by_role("heading", name="Current incidents"))
                await expect(current).to_contain_text("Some pizza orders are slow to confirm")
                await expect(current).to_contain_text("Identified")
                past = page.locator(
                    "section", has=page.get_by_role("heading", name=re.compile("Past incidents"))
                )
                await expect(past).to_contain_text("Pizza delivery JWTs could not be verified")
                await expect(page.locator("#component-jwt .auto")).to_have_text("automated")
                await expect(page.locator("#component-ordering .state")).to_have_text("Partial outage")
                await expect(page.get_by_role("heading", name="Scheduled maintenance")).to_be_visible()
                # Every bar row is one labelled image; the phone shows the last 30 days, the desktop 90.
                jwt_bars = page.get_by_role(
                    "img", name=re.compile(r"Pizza delivery JWTs: \d+\.\d\d % available")
                )
                await expect(jwt_bars).to_be_visible()
                assert await page.locator("#component-ordering .bar:visible").count() == bars
                # Nothing wider than the screen.
                for card in await page.locator(".card, .banner, header.top").all():
                    box = await card.bounding_box()
                    assert (
                        box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 1
                    )
                await page.screenshot(path=str(ARTIFACTS / f"status-{name}.png"), full_page=True)
                await page.context.close()
        finally:
            await browser.close()
    shot = ARTIFACTS / "status-desktop.png"
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_DOCS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "status-page.png")
