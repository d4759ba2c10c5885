"""Fault tests: Slack rate-limiting, failing and hanging; the database going away; secrets in logs; abuse."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from bot.clock import ManualClock
from bot.outbox import pending_count
from bot.worker import Worker
from sandbox.servers import LoopServer
from tests.conftest import PG_URL, make_settings
from tests.support import BOT_TOKEN, SIGNING_SECRET, BotHarness
from wiring.app import create_app


def dms(bot: BotHarness, user: str) -> int:
    return len(
        [c for c in bot.slack.calls_to("chat.postMessage", ok=True) if c.args["channel"] == f"D{user}"]
    )


async def test_429_on_create_and_post_during_declare(bot: BotHarness) -> None:
    bot.slack.fail_next("conversations.create", status=429, retry_after=1)
    bot.slack.fail_next("chat.postMessage", status=429, retry_after=1)
    await bot.command("declare P1 Rate limited declare")
    [inc] = await bot.incidents()
    assert inc.provision_state == "ready"
    assert len(bot.slack.calls_to("conversations.create", ok=True)) == 1
    assert len(bot.slack.calls_to("conversations.create", ok=False)) == 1
    assert bot.slack.message(inc.channel_id, inc.template_ts).pinned


@pytest.fixture
def short_slack_timeout(db_url: str, slack) -> object:
    return make_settings(db_url, slack, slack_timeout=1)


async def _outage(bot: BotHarness, clock: ManualClock, break_slack) -> None:
    break_slack()
    _, url = await bot.command("declare P1 Slack is having a bad day")
    [inc] = await bot.incidents()
    # The incident exists and says what happened; nothing was lost.
    assert inc.provision_state == "failed" and inc.channel_id is None
    assert "failed" in bot.last_reply(url) or bot.replies(url) == []
    assert await pending_count(bot.svc) >= 1
    kinds = [e.kind for e in await bot.events(inc.id)]
    assert "declared" in kinds and "slack_failed" in kinds

    # Slack comes back; the worker drains the outbox and the timers.
    bot.slack.clear_faults()
    worker = Worker(bot.svc, worker_id="w", extra_ticks=None)
    for _ in range(12):
        clock.advance(minutes=1)
        await worker.tick()
    [inc] = await bot.incidents()
    assert inc.provision_state == "ready"
    assert await pending_count(bot.svc) == 0
    assert len(bot.slack.calls_to("conversations.create", ok=True)) == 1
    template_posts = [
        c
        for c in bot.slack.calls_to("chat.postMessage", ok=True)
        if "Incident ID" in str(c.args.get("blocks"))
    ]
    assert len(template_posts) == 1
    assert dms(bot, "U01PRIMARY") == 1  # L1's page went out once, after the outage
    assert dms(bot, "U02SECOND") == 1  # and L2 fell due meanwhile: once


async def test_slack_500_for_minutes_then_back(bot: BotHarness, clock: ManualClock) -> None:
    await _outage(bot, clock, lambda: bot.slack.fail_always(None, status=500, error="internal_error"))


async def test_slack_timing_out_then_back(db_url: str, slack, clock: ManualClock) -> None:
    settings = make_settings(db_url, slack, slack_timeout=1)
    app = create_app(settings, clock=clock)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=60) as http:
        bot = BotHarness(server.url, app.state.svc, slack, http)
        await _outage(bot, clock, lambda: slack.delay(None, 2.5))


async def test_per_user_declaration_limit(bot: BotHarness) -> None:
    for i in range(5):
        await bot.command(f"declare P3 Small thing {i}", wait=False)
    await bot.drain()
    _, url = await bot.command("declare P3 One too many")
    assert "Slow down" in bot.last_reply(url)
    assert len(await bot.incidents()) == 5
    _, url = await bot.command("declare P3 Someone else", user="UOTHER")
    assert len(await bot.incidents()) == 6


async def test_secrets_never_logged(
    db_url: str, slack, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(db_url, slack, log_level="DEBUG")
    caplog.set_level(logging.DEBUG)
    app = create_app(settings, clock=clock)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=60) as http:
        bot = BotHarness(server.url, app.state.svc, slack, http)
        slack.fail_next("pins.add", status=200, error="invalid_auth", retry_after=None)
        await bot.command("declare P1 Log hygiene")
        await http.post(
            f"{server.url}/slack/events", content=b"garbage", headers={"X-Slack-Signature": "v0=bad"}
        )
        logging.getLogger("incident_bot.test").error("token %s leaked?", BOT_TOKEN)
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "invalid_auth" in text  # the failure was logged...
    for secret in (BOT_TOKEN, SIGNING_SECRET, "0123456789abcdef0123456789abcdef", "test-server-secret"):
        assert secret not in text  # ...without any secret


async def test_database_unreachable_then_back(
    slack, clock: ManualClock, request: pytest.FixtureRequest
) -> None:
    """The app points at a TCP proxy in front of PostgreSQL; closing the proxy is the outage."""
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set: the database-outage test needs PostgreSQL")
    from sqlalchemy.engine import make_url

    from tests.tcp_proxy import TcpProxy

    real = make_url(request.getfixturevalue("pg_migrated"))
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    await proxy.start()
    url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = make_settings(url, slack)
    app = create_app(settings, clock=clock)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=60) as http:
        bot = BotHarness(server.url, app.state.svc, slack, http)
        assert (await http.get(f"{server.url}/readyz")).status_code == 200
        await proxy.stop()
        assert (await http.get(f"{server.url}/readyz")).status_code == 503
        resp, reply_url = await bot.command("declare P1 While the database is down")
        assert resp.status_code == 200
        assert "temporarily unavailable" in bot.last_reply(reply_url)
        await proxy.start()
        await asyncio.sleep(0.1)
        assert (await http.get(f"{server.url}/readyz")).status_code == 200
        _, reply_url = await bot.command("status MONITORING")  # any command: answered, not a stack trace
        assert "temporarily unavailable" not in bot.last_reply(reply_url)
    await proxy.stop()
