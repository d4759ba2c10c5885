"""The read-only web view over real HTTP: signed links (valid, tampered, expired, other incident), the access
token, the list, the HTML page, and the Prometheus scrape."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot.clock import ManualClock
from bot.config import Settings
from bot.pir import links
from sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from tests.pir.test_render import INC, seed_scripted
from tests.support import BotHarness

ACCESS = "web-access-token-0123456789"


@pytest.fixture
def settings(db_url: str, slack: SlackStandin) -> Settings:
    return make_settings(db_url, slack, web_access_token=ACCESS, display_tz="America/Denver")


def token_for(bot: BotHarness, scope: str, ttl: timedelta = timedelta(days=7)) -> str:
    return links.sign(scope, bot.svc.clock.now() + ttl, bot.svc.settings.link_secret())


@pytest.fixture
async def seeded(bot: BotHarness) -> BotHarness:
    await seed_scripted(bot.svc.db)
    return bot


async def test_signed_link_serves_the_markdown(seeded: BotHarness) -> None:
    bot = seeded
    url = f"{bot.url}/incidents/{INC}/pir.md?token={token_for(bot, INC)}"
    resp = await bot.http.get(url)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/markdown; charset=utf-8"
    assert resp.headers["referrer-policy"] == "no-referrer" and "no-store" in resp.headers["cache-control"]
    assert resp.text.startswith(f"# Post-Incident Review: {INC}")
    assert "2026-11-23 05:00:00 MST" in resp.text  # DISPLAY_TZ
    kolkata = await bot.http.get(url + "&tz=Asia/Kolkata")
    assert "2026-11-23 17:30:00 IST" in kolkata.text
    assert (await bot.http.get(url + "&tz=Nowhere/Land")).status_code == 400


async def test_tampered_expired_and_misplaced_tokens_get_403(seeded: BotHarness, clock: ManualClock) -> None:
    bot = seeded
    token = token_for(bot, INC)
    exp, sig = token.split(".")
    base = f"{bot.url}/incidents/{INC}/pir.md"
    tampered = [
        f"{exp}.{sig[:-1]}{'B' if sig[-1] == 'A' else 'A'}",
        f"{int(exp) + 3600}.{sig}",
        token_for(bot, "INC-20261123-120001"),  # signed, for another incident
        "",
    ]
    for bad in tampered:
        resp = await bot.http.get(f"{base}?token={bad}")
        assert resp.status_code == 403, bad
        assert "invalid or has expired" in resp.text
    assert (await bot.http.get(base)).status_code == 403
    assert (await bot.http.get(f"{bot.url}/incidents?token={token}")).status_code == 403  # not a list token

    assert (await bot.http.get(f"{base}?token={token}")).status_code == 200
    clock.advance(days=7, seconds=1)
    assert (await bot.http.get(f"{base}?token={token}")).status_code == 403
    assert (await bot.http.get(f"{bot.url}/incidents/{INC}?token={token}")).status_code == 403


async def test_access_token_opens_the_list_and_its_links_work(seeded: BotHarness) -> None:
    bot = seeded
    assert (await bot.http.get(f"{bot.url}/incidents")).status_code == 403
    wrong = await bot.http.get(f"{bot.url}/incidents", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    resp = await bot.http.get(f"{bot.url}/incidents", headers={"Authorization": f"Bearer {ACCESS}"})
    assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
    assert "script-src" not in resp.headers["content-security-policy"]  # default-src 'none': no JS at all
    assert "Factory orders failing" in resp.text
    hrefs = re.findall(r'href="(/incidents/[^"]+)"', resp.text)
    assert len(hrefs) == 1 and hrefs[0].startswith(f"/incidents/{INC}?token=")
    page = await bot.http.get(bot.url + hrefs[0].replace("&amp;", "&"))  # a freshly signed link: no header
    assert page.status_code == 200
    assert (await bot.http.get(f"{bot.url}/incidents?access_token={ACCESS}")).status_code == 200
    missing = await bot.http.get(f"{bot.url}/incidents/INC-20000101-000000?access_token={ACCESS}")
    assert missing.status_code == 404


async def test_html_page_shows_timeline_pir_and_diagram(seeded: BotHarness) -> None:
    bot = seeded
    resp = await bot.http.get(f"{bot.url}/incidents/{INC}?token={token_for(bot, INC)}")
    assert resp.status_code == 200
    html = resp.text
    assert "<svg" in html and '<pre class="mermaid">gantt' in html
    assert ">Timeline</h2>" in html and "Rollback candidate: v2.2" in html
    assert "<script" not in html.lower()
    assert "All incidents" not in html  # an incident's token opens that incident, not the list
    md_link = re.search(r'href="(/incidents/[^"]+/pir\.md\?token=[^"]+)"', html)
    assert md_link and (await bot.http.get(bot.url + md_link.group(1))).status_code == 200
    with_list = await bot.http.get(f"{bot.url}/incidents/{INC}?token={token_for(bot, links.ALL)}")
    assert with_list.status_code == 200 and "All incidents" in with_list.text


async def test_metrics_scrape_after_a_declare(bot: BotHarness) -> None:
    # An error Slack answers and the bot shrugs off (already invited) still counts as a Slack API error.
    bot.slack.fail_next("conversations.invite", status=200, error="already_in_channel", retry_after=None)
    await bot.command("declare P1 Factory orders failing")
    resp = await bot.http.get(f"{bot.url}/metrics")
    assert resp.status_code == 200
    text = resp.text

    def value(sample: str) -> float:
        m = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
        assert m, f"{sample} not in /metrics"
        return float(m.group(1))

    assert value('incident_bot_open_incidents{severity="P1"}') == 1.0
    assert value('incident_bot_open_incidents{severity="P0"}') == 0.0
    assert value('incident_bot_pages_sent_total{level="1"}') == 1.0
    assert value("incident_bot_timer_lateness_seconds_count") >= 1.0
    assert value('incident_bot_commands_total{sub="declare"}') == 1.0
    labels = 'error="already_in_channel",method="conversations.invite"'
    # Every refusal counts: the injected one, and any the one-by-one retry meets (a user the page invited first).
    refused = bot.slack.calls_to("conversations.invite", ok=False)
    assert len(refused) >= 1
    assert value(f"incident_bot_slack_api_errors_total{{{labels}}}") == float(len(refused))
    # No probe has run: the family still announces itself, so dashboards and alerts can be built first.
    assert re.search(r"^# TYPE incident_bot_check_latency_seconds histogram$", text, re.M)
