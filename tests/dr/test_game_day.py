"""Drills against a real-style Factory (chaos only scheduled for tomorrow, not cancellable): a game day that is
measured from the first failing sample after injection, or reported honestly when chaos never started."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.dr.drill import start_drill
from bot.health.monitor import DRILL_PROBLEM, alert_state, monitor_once
from bot.models import Drill
from sandbox.factory_sim import FactoryServers, FactorySim
from sandbox.servers import LoopServer
from sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from tests.support import BotHarness
from wiring.app import create_app


@pytest.fixture
async def game(
    db_url: str, slack: SlackStandin, clock: ManualClock
) -> AsyncIterator[tuple[BotHarness, FactorySim]]:
    sim = FactorySim(throttle_delay=0.3, report_url_mode="self", chaos_start_delay=None)  # starts tomorrow
    with FactoryServers(sim) as servers:
        settings = make_settings(
            db_url,
            slack,
            factory_url=servers.factory_url,
            pizza_service_url=servers.service_url,
            factory_api_key=sim.api_key,
        )
        app = create_app(settings, clock=clock)
        async with LoopServer(app) as server, httpx.AsyncClient(timeout=60) as http:
            yield BotHarness(server.url, app.state.svc, slack, http), sim


async def _drill(bot: BotHarness) -> Drill:
    async with bot.svc.db.session() as s:
        return (await s.execute(select(Drill).order_by(Drill.id.desc()))).scalars().first()  # type: ignore[return-value]


async def test_game_day_measures_from_the_first_failing_sample(
    game: tuple[BotHarness, FactorySim], clock: ManualClock
) -> None:
    bot, sim = game
    started = await start_drill(bot.svc, "fail", "UDECLARER", target="factory", allow_real_factory=True)
    assert started.report.starts_later and sim.state()["chaos"]["type"] == "fail" and sim.mode == "healthy"
    for _ in range(2):  # chaos scheduled, not running: nothing fails, nothing is "back to normal"
        clock.advance(seconds=60)
        assert await monitor_once(bot.svc) == "open"  # the drill incident is open; its alert stays inactive
        alert = await alert_state(bot.svc, DRILL_PROBLEM)
        assert alert is not None and alert.state == "inactive"
    assert (await _drill(bot)).finished_at is None
    assert all(i.status != "MONITORING" for i in await bot.incidents())

    sim.start_now()  # the Factory's chaos begins (at its own time, not the one read at injection)
    clock.advance(seconds=60)
    first_failing = clock.now()
    assert await monitor_once(bot.svc) == "open"  # the drill's alert; the real one ignores the injected fault
    alert = await alert_state(bot.svc, DRILL_PROBLEM)
    assert alert is not None and alert.state == "pending" and alert.pending_since == first_failing
    clock.advance(seconds=60)
    assert await monitor_once(bot.svc) == "open"
    inc_id = started.incident_id
    bot.slack.channels[started.channel_id or ""].members.add("UDECLARER")
    clock.advance(seconds=120)
    await bot.action("run_recovery", inc_id, user="UDECLARER", channel=started.channel_id or "")
    assert sim.mode == "healthy"
    d = await _drill(bot)
    r = d.report
    assert d.finished_at is not None and r["state"] == "finished"
    assert r["ttd_s"] == 0.0 and r["ttr_s"] == (clock.now() - first_failing).total_seconds() == 180.0
    assert r["recovery_outcome"] == "chaos ended" and r["warning"] is None
    assert len(await bot.incidents()) == 1  # no real incident for the drill's own fault


async def test_chaos_that_never_starts_is_reported_as_still_scheduled(
    game: tuple[BotHarness, FactorySim], clock: ManualClock
) -> None:
    bot, sim = game
    started = await start_drill(bot.svc, "throttle", "UDECLARER", target="factory", allow_real_factory=True)
    room = started.channel_id or ""
    bot.slack.channels[room].members.add("UDECLARER")
    clock.advance(seconds=600)
    assert await monitor_once(bot.svc) == "open"
    # Resolving the drill incident finishes the drill: it must not stay "running".
    await bot.action("resolve_anyway", started.incident_id, user="UDECLARER", channel=room)
    d = await _drill(bot)
    r = d.report
    assert d.finished_at is not None and r["state"] == "ended" and r["ttd_s"] is None
    assert "still has it scheduled" in r["warning"] and "cannot be cancelled" in r["warning"]
    assert r["chaos_start"] and r["chaos_start"] in r["warning"]
    report = next(m for m in bot.slack.messages[room] if "Drill report" in str(m.blocks))
    assert "still has it scheduled" in str(report.blocks)
    assert sim.state()["chaos"]["type"] == "throttle"  # indeed still scheduled
