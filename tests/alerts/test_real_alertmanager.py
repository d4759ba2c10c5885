"""A real Alertmanager (Debian's package) sends to the bot: alerts posted to its /api/v2/alerts fire,
repeat every repeat_interval, then resolve by endsAt. The bot is served by uvicorn with the real clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.models import Alert, AlertNotification, Incident
from bot.pir.flows import pir_url
from sandbox.servers import LoopServer
from sandbox.slack_standin import SlackStandin
from tests.alerts.payloads import AM_PASSWORD, AM_USER, iso
from tests.alerts.realprom import Process, alertmanager, wait_for
from tests.support import BotHarness
from wiring.app import create_app


@pytest.fixture
async def live_bot(settings: Settings, slack: SlackStandin) -> AsyncIterator[BotHarness]:
    """The bot on the system clock: Alertmanager's times are real."""
    app = create_app(settings)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=30) as http:
        yield BotHarness(server.url, app.state.svc, slack, http, app)


@pytest.fixture
def am(live_bot: BotHarness, tmp_path: Path) -> Any:
    proc = alertmanager(tmp_path, f"{live_bot.url}/alerts/alertmanager", AM_USER, AM_PASSWORD)
    yield proc
    proc.stop()


async def rows(bot: BotHarness, model: Any) -> list[Any]:
    async with bot.svc.db.session() as s:
        return list((await s.execute(select(model).order_by(model.id))).scalars())


def alert_body(starts: datetime, ends: datetime | None = None) -> list[dict[str, Any]]:
    a: dict[str, Any] = {
        "labels": {"alertname": "FactoryErrorRate", "service": "jwt-pizza-factory", "severity": "critical"},
        "annotations": {
            "summary": "Factory order error rate above 5% <!channel>",
            "runbook_url": "https://example.com/runbooks/factory",
        },
        "startsAt": iso(starts),
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=factory_errors",
    }
    if ends is not None:
        a["endsAt"] = iso(ends)
    return [a]


async def test_real_alertmanager_fire_repeat_resolve(live_bot: BotHarness, am: Process) -> None:
    bot = live_bot
    started = datetime.now(UTC) - timedelta(seconds=30)
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(f"{am.url}/api/v2/alerts", json=alert_body(started))
        assert resp.status_code == 200, resp.text

        async def declared() -> list[Incident]:
            return await bot.incidents()

        [inc] = await wait_for(declared, "the incident")
        assert (inc.severity, inc.source, inc.problem_key) == ("P0", "alertmanager", "factory-health")
        assert inc.detected_at is not None and abs((inc.detected_at - started).total_seconds()) < 1

        async def repeated() -> bool:
            alerts = await rows(bot, Alert)
            return bool(alerts) and alerts[0].repeats >= 2

        await wait_for(repeated, "two repeats (repeat_interval 3s)")
        # Resolve: the same alert with endsAt now, as Prometheus does when the rule stops firing.
        now = datetime.now(UTC)
        resp = await http.post(f"{am.url}/api/v2/alerts", json=alert_body(started, now))
        assert resp.status_code == 200

        async def resolved() -> bool:
            alerts = await rows(bot, Alert)
            return alerts[0].status == "resolved"

        await wait_for(resolved, "the resolved notification")
    am.stop()
    await bot.drain()

    [inc] = await bot.incidents()  # read again: the first read may predate its war room
    [alert] = await rows(bot, Alert)
    assert alert.incident_id == inc.id and alert.fingerprint and alert.links["runbook"].startswith("https://")
    notifications = await rows(bot, AlertNotification)
    assert all(n.state == "done" and n.source == "alertmanager" for n in notifications)
    assert len(notifications) >= 4  # first, two repeats, resolved
    channel = str(inc.channel_id)
    texts = [m.text for m in bot.slack.messages.get(channel, [])]
    alert_posts = [t for t in texts if t.startswith("🚨")]
    assert len(alert_posts) == 2, alert_posts  # the firing alert once, the resolve once: repeats post nothing
    assert "FactoryErrorRate" in alert_posts[0] and "&lt;!channel&gt;" in alert_posts[0]
    assert "<!channel>" not in "\n".join(texts)
    assert "All alerts resolved" in alert_posts[1]
    timeline = [e for e in await bot.events(inc.id) if e.kind == "alert"]
    assert len(timeline) == len(notifications)  # every notification, once
    url = pir_url(bot.svc, inc.id).replace("http://bot.test", bot.url)
    md = (await bot.http.get(url)).text
    assert (
        "## Alerts" in md
        and "FactoryErrorRate" in md
        and "[runbook](https://example.com/runbooks/factory)" in md
    )
