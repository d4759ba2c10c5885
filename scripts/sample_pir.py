"""Generate docs/sample-pir.md: a scripted, monitor-detected Factory incident run through the real bot over
HTTP (Slack stand-in, simulated Factory, SQLite), then rendered by `incident-bot pir`. Run: make sample-pir."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.clock import ManualClock  # noqa: E402
from bot.config import CONTENT_DIR  # noqa: E402
from bot.health.monitor import monitor_once  # noqa: E402
from bot.migrate import upgrade  # noqa: E402
from bot.pir.data import load_for  # noqa: E402
from bot.pir.render import render_markdown  # noqa: E402
from bot.playbook import load_roster  # noqa: E402
from sandbox.factory_sim import FactoryServers, FactorySim  # noqa: E402
from sandbox.servers import LoopServer, ServerThread  # noqa: E402
from sandbox.slack_standin import SlackStandin  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.support import BOT_TOKEN, BotHarness  # noqa: E402
from wiring.app import create_app  # noqa: E402


async def main() -> tuple[str, str]:
    standin = SlackStandin(token=BOT_TOKEN)
    slack_server = ServerThread(standin.app)
    standin.base_url = slack_server.start()
    roster = load_roster(CONTENT_DIR / "oncall.example.yaml")
    for uid in [*roster.all_users(), "UDECLARER"]:
        standin.add_user(uid, roster.names.get(uid, uid).split()[0].lower(), tz="America/Denver")
    factory = FactoryServers(FactorySim(throttle_delay=0.3, report_url_mode="self")).start()
    clock = ManualClock(datetime(2026, 11, 20, 21, 2, 0, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/pir.db"
        upgrade(url)
        settings = make_settings(
            url,
            standin,
            factory_url=factory.factory_url,
            pizza_service_url=factory.service_url,
            factory_api_key=factory.sim.api_key,
            display_tz="America/Denver",
        )
        app = create_app(settings, clock=clock)
        async with LoopServer(app) as server, httpx.AsyncClient(timeout=60) as http:
            bot = BotHarness(server.url, app.state.svc, standin, http, app)
            svc = bot.svc
            await monitor_once(svc)
            factory.set_mode("fail")  # chaos monkey: every order fails
            for _ in range(3):
                clock.advance(seconds=60)
                await monitor_once(svc)
            [inc] = await bot.incidents()
            room = inc.channel_id or ""
            clock.advance(minutes=4)
            await bot.action("ack_incident", inc.id, user="U01PRIMARY", channel="DU01PRIMARY")
            await bot.command("commander <@U01PRIMARY>", user="U01PRIMARY", channel=room)
            clock.advance(minutes=2)
            await bot.command("status IDENTIFIED", user="U01PRIMARY", channel=room)
            await bot.command(
                "note Factory answers 500 chaos monkey on every order; reportUrl present",
                user="U01PRIMARY",
                channel=room,
            )
            clock.advance(minutes=1)
            await bot.action("run_recovery", inc.id, user="U01PRIMARY", channel=room)
            clock.advance(minutes=1)
            await monitor_once(svc)  # metrics back to normal -> MONITORING
            clock.advance(minutes=31)
            await bot.command("resolve", user="U01PRIMARY", channel=room)
            await bot.command(
                'action add "Alert on Factory vendor chaos state before it starts" <@U08SRE> 2026-11-27',
                user="U01PRIMARY",
                channel=room,
            )
            await bot.command(
                'action add "Add a timeout to the service\'s Factory client" <@U10BACK> 2026-12-04',
                user="U01PRIMARY",
                channel=room,
            )
            pir = await load_for(svc, inc.id)
            assert pir is not None
            text = render_markdown(pir, svc.playbook.severities, ZoneInfo("America/Denver"))
    factory.stop()
    slack_server.stop()
    return inc.id, text


if __name__ == "__main__":
    incident_id, markdown = asyncio.run(main())
    out = ROOT / "docs" / "sample-pir.md"
    out.write_text(markdown, encoding="utf-8")
    print(f"wrote {out} ({len(markdown.splitlines())} lines) for {incident_id}")
