"""End to end with real parts only: Prometheus scrapes the simulated JWT Pizza service's /metrics, a rule
over its order-failure counter (jwtFactory.md "Alert rules") fires through a real Alertmanager into the bot,
and resolves when the Factory is healthy again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.models import Alert
from sandbox.factory_sim import DINER_EMAIL, DINER_PASSWORD
from sandbox.servers import LoopServer
from sandbox.slack_standin import SlackStandin
from tests.alerts.payloads import AM_PASSWORD, AM_USER
from tests.alerts.realprom import alertmanager, prometheus, wait_for
from tests.conftest import MakeServers
from tests.support import BotHarness
from wiring.app import create_app

RULES = {
    "groups": [
        {
            "name": "jwt-pizza",
            "rules": [
                {
                    "alert": "FactoryOrderErrorRateCritical",
                    "expr": "sum(rate(jwt_pizza_order_failures_total[5s]))"
                    " / sum(rate(jwt_pizza_orders_total[5s])) > 0.10",
                    "labels": {"service": "jwt-pizza-factory", "severity": "critical"},
                    "annotations": {"summary": "Order error rate {{ $value | humanizePercentage }} (> 10 %)"},
                }
            ],
        }
    ]
}


@pytest.fixture
async def live_bot(settings: Settings, slack: SlackStandin) -> AsyncIterator[BotHarness]:
    app = create_app(settings)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=30) as http:
        yield BotHarness(server.url, app.state.svc, slack, http, app)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_prometheus_rule_fires_through_alertmanager_into_the_bot(
    live_bot: BotHarness, make_servers: MakeServers, tmp_path: Path
) -> None:
    bot = live_bot
    servers = make_servers(report_url_mode="self")
    am = alertmanager(tmp_path, f"{bot.url}/alerts/alertmanager", AM_USER, AM_PASSWORD)
    target = servers.service_url.split("//", 1)[1].rstrip("/")
    prom = prometheus(tmp_path, target, am.url, RULES)
    stop = asyncio.Event()

    async def traffic() -> None:  # a diner logs in, then keeps ordering through the service
        async with httpx.AsyncClient(timeout=10) as http:
            login = await http.put(
                f"{servers.service_url}/api/auth", json={"email": DINER_EMAIL, "password": DINER_PASSWORD}
            )
            token = login.json()["token"]
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    await http.post(
                        f"{servers.service_url}/api/order",
                        json={"items": [{"menuId": 1, "description": "Veggie", "price": 0.05}]},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                await asyncio.sleep(0.1)

    task = asyncio.create_task(traffic())
    try:
        await asyncio.to_thread(servers.set_mode, "fail")

        async def alerts() -> list[Any]:
            async with bot.svc.db.session() as s:
                return list((await s.execute(select(Alert))).scalars())

        [alert] = await wait_for(alerts, "the Prometheus alert in the bot", timeout=120)
        [inc] = await bot.incidents()
        assert (inc.severity, inc.source, inc.problem_key) == ("P0", "alertmanager", "factory-health")
        assert alert.name == "FactoryOrderErrorRateCritical" and alert.incident_id == inc.id
        assert alert.links["generator"].startswith(prom.url)  # back to the rule's graph

        await asyncio.to_thread(servers.set_mode, "healthy")

        async def resolved() -> bool:
            got = await alerts()
            return got[0].status == "resolved"

        await wait_for(resolved, "the resolved notification", timeout=120)
    finally:
        stop.set()
        await task
        prom.stop()
        am.stop()
    await bot.drain()
    [inc] = await bot.incidents()  # read again: the first read may predate its war room
    texts = [m.text for m in bot.slack.messages.get(str(inc.channel_id), [])]
    assert sum("FactoryOrderErrorRateCritical" in t for t in texts if t.startswith("🚨")) >= 1
    assert any("All alerts resolved" in t for t in texts)
