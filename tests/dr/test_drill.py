"""DR drills end to end over HTTP against the simulated Factory: `/incident drill fail` opens a [DRILL] war room
and pages, the monitor detects, someone acknowledges, the recovery button ends the chaos, and the report with
the measured times against the RTO lands in SQL and in Slack. Plus service-down, the real-Factory path, the
tabletop walk-through, and the CLI."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.dr.drill import start_drill
from bot.dr.fault import REAL_CHAOS_NOTE, DrillRefused, detect_target
from bot.dr.plan import load_dr, tabletop_steps
from bot.health.monitor import DRILL_PROBLEM, monitor_once
from bot.models import Drill, Incident
from sandbox.factory_sim import FactoryServers, FactorySim
from sandbox.servers import LoopServer
from sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from tests.support import BotHarness
from wiring.app import create_app
from wiring.drill_cli import drill_main
from wiring.services import open_services

T0_NAME = "incident-drill-20261123-120000"


async def drills(bot: BotHarness) -> list[Drill]:
    async with bot.svc.db.session() as s:
        return list((await s.execute(select(Drill).order_by(Drill.id))).scalars())


async def incident(bot: BotHarness, incident_id: str) -> Incident:
    async with bot.svc.db.session() as s:
        row = (await s.execute(select(Incident).where(Incident.id == incident_id))).scalar_one()
    return row


def blocks_text(blocks: list[dict[str, Any]] | None) -> str:
    return str(blocks or [])


def buttons(message: Any) -> list[dict[str, Any]]:
    return [e for b in message.blocks or [] if b.get("type") == "actions" for e in b["elements"]]


# -- the full drill -------------------------------------------------------------------------------------------


async def test_full_fail_drill_measures_detect_ack_recover_against_the_rto(
    hbot: BotHarness, factory: FactoryServers, clock: ManualClock
) -> None:
    svc, slack = hbot.svc, hbot.slack
    t0 = clock.now()
    _, url = await hbot.command("drill fail")
    assert "Drill `fail` started" in hbot.last_reply(url)

    # A DRILL incident everywhere: the channel name, the template, the topic, the pages.
    [inc] = await hbot.incidents()
    assert inc.is_drill and inc.source == "drill" and inc.problem_key == DRILL_PROBLEM
    assert inc.channel_name == T0_NAME and inc.channel_id
    room = slack.messages[inc.channel_id]
    template = next(m for m in room if m.ts == inc.template_ts)
    assert template.text.startswith("[DRILL]") and "[DRILL]" in template.blocks[0]["text"]["text"]
    assert "DRILL — not a real incident" in blocks_text(template.blocks)
    assert slack.channels[inc.channel_id].topic.startswith("[DRILL]")
    page = slack.messages["DU01PRIMARY"][-1]
    assert page.text.startswith("[DRILL] Page L1") and "[DRILL]" in page.blocks[0]["text"]["text"]
    assert any(m.text.startswith("[DRILL] Paging L1") for m in room)
    started = next(m for m in room if "Drill `fail` started" in m.text)
    assert [b["action_id"] for b in buttons(started)] == ["drill_check"]
    assert "the simulated Factory" in inc.impact

    # The fault is live at once in the simulator.
    assert factory.sim.mode == "fail"
    [drill] = await drills(hbot)
    assert drill.incident_id == inc.id and drill.finished_at is None
    assert drill.report["state"] == "running" and drill.report["target"] == "simulator"

    # A second drill is refused while this one runs.
    _, url2 = await hbot.command("drill throttle", user="UDECLARER")
    assert "A drill is open" in hbot.last_reply(url2) and factory.sim.mode == "fail"

    # Detect: the monitor's first check after the fault fails; it does not declare a second incident.
    clock.advance(seconds=60)
    assert await monitor_once(svc) == "open"
    clock.advance(seconds=60)
    assert await monitor_once(svc) == "open"
    assert len(await hbot.incidents()) == 1

    # Acknowledge in the war room.
    clock.advance(seconds=60)
    await hbot.command("ack", user="U01PRIMARY", channel=inc.channel_id)
    assert (await incident(hbot, inc.id)).acknowledged_at == t0 + timedelta(seconds=180)

    # Recover: the recovery button ends the chaos; its after-check is green: the drill finishes.
    clock.advance(seconds=120)
    await hbot.action("run_recovery", inc.id, user="UDECLARER", channel=inc.channel_id)
    assert factory.sim.mode == "healthy"

    [drill] = await drills(hbot)
    r = drill.report
    assert drill.finished_at == t0 + timedelta(seconds=300) and r["state"] == "finished"
    assert (r["ttd_s"], r["tta_s"], r["ttr_s"]) == (60.0, 180.0, 300.0)
    assert r["detected_by"] == "monitor" and r["acknowledged_by"] == "U01PRIMARY"
    assert r["ack_after_detect_s"] == 120.0 and r["response_met"] is True
    assert r["recovery_action_by"] == "UDECLARER" and r["recovery_outcome"] == "chaos ended"
    rto = load_dr().services["factory"].rto
    assert r["rto_s"] == rto.total_seconds() and r["rto_met"] is True
    assert r["ttd_met"] is True and r["rpo_s"] is None and "No data at risk" in r["rpo_text"]

    # The report in Slack: Block Kit within limits (the stand-in validates every message).
    report = next(m for m in slack.messages[inc.channel_id] if "Drill report" in blocks_text(m.blocks))
    assert report.text.startswith(
        "[DRILL] Drill fail: detect 1 min, acknowledge 3 min, recover 5 min vs RTO 1 h"
    )
    body = blocks_text(report.blocks)
    assert "*Time to recover* 5 min ✅ · RTO 1 h" in body and "simulated Factory" in body
    kinds = [e.kind for e in await hbot.events(inc.id)]
    assert "drill" in kinds and "drill_report" in kinds and kinds[-1] != "drill"

    # The drill incident is closed: it no longer holds the Factory-health alert.
    closed = await incident(hbot, inc.id)
    assert closed.status == "RESOLVED"
    clock.advance(seconds=60)
    assert await monitor_once(svc) == "ok"
    # The vendor API key (inside the reportUrl) never reaches Slack or the stored report.
    assert all(factory.sim.api_key not in str(c.args) for c in slack.calls)
    assert factory.sim.api_key not in str(r)

    # /incident dr status shows the drill against its objective.
    _, url3 = await hbot.command("dr status")
    status = blocks_text(hbot.replies(url3)[-1]["blocks"])
    assert "`fail` (every 90 d): 2026-11-23: recover 5 min ✅ vs RTO 1 h" in status
    assert "`throttle` (every 90 d): ⚠️ never run, due" in status


async def test_service_down_drill_finishes_when_the_factory_is_back(
    hbot: BotHarness, factory: FactoryServers, clock: ManualClock
) -> None:
    t0 = clock.now()
    await hbot.command("drill service-down")
    [inc] = await hbot.incidents()
    assert inc.is_drill  # the drill returns once the simulated Factory refuses connections

    clock.advance(seconds=90)
    assert await monitor_once(hbot.svc) == "open"
    # The checks are not green yet: the button says so and the drill goes on.
    clock.advance(seconds=30)
    await hbot.action("drill_check", inc.id, user="UDECLARER", channel=inc.channel_id)
    [drill] = await drills(hbot)
    assert drill.finished_at is None

    # Nothing in the bot can restart a dead Factory: the test (the "SRE") brings it back.
    factory.set_mode("healthy")
    clock.advance(seconds=480)
    await hbot.action("drill_check", inc.id, user="UDECLARER", channel=inc.channel_id)
    [drill] = await drills(hbot)
    r = drill.report
    assert drill.finished_at == t0 + timedelta(seconds=600)
    assert (r["ttd_s"], r["ttr_s"], r["tta_s"]) == (90.0, 600.0, None)
    assert r["service"] == "pizza-service" and r["rto_met"] is True and r["recovery_outcome"] is None
    assert r["detected_by"] == "monitor" and "factory_docs down" in r["detected_detail"]
    report = next(m for m in hbot.slack.messages[inc.channel_id] if "Drill report" in blocks_text(m.blocks))
    assert "nobody acknowledged" in blocks_text(report.blocks)
    assert "none recorded (checks went green)" in blocks_text(report.blocks)
    assert (await incident(hbot, inc.id)).status == "RESOLVED"


async def test_drill_refuses_an_unhealthy_start_and_an_open_factory_incident(
    hbot: BotHarness, factory: FactoryServers, clock: ManualClock
) -> None:
    factory.set_mode("badjwt")
    _, url = await hbot.command("drill fail")
    assert "not green before the drill" in hbot.last_reply(url)
    assert await hbot.incidents() == [] and await drills(hbot) == []

    # A real Factory-health incident open: no drill on top of it.
    for _ in range(3):
        clock.advance(seconds=60)
        await monitor_once(hbot.svc)
    [real] = await hbot.incidents()
    assert not real.is_drill
    factory.set_mode("healthy")
    _, url = await hbot.command("drill throttle")
    assert f"A Factory-health incident is open: {real.id}" in hbot.last_reply(url)
    assert len(await hbot.incidents()) == 1 and factory.sim.mode == "healthy"


async def test_real_factory_path_uses_the_chaos_api_and_says_chaos_starts_later(
    db_url: str, slack: SlackStandin, clock: ManualClock
) -> None:
    # A simulator whose chaos starts an hour after PUT stands in for the real Factory (next-day start).
    sim = FactorySim(throttle_delay=0.3, report_url_mode="self", chaos_start_delay=3600)
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
            bot = BotHarness(server.url, app.state.svc, slack, http)
            assert await detect_target(servers.factory_url) == "simulator"
            assert await detect_target(server.url) == "factory"  # anything without /_sim/state

            with pytest.raises(DrillRefused, match="cannot be drilled against the real Factory"):
                await start_drill(bot.svc, "service-down", "UDECLARER", target="factory")
            assert await bot.incidents() == []

            with pytest.raises(DrillRefused, match="drills against the real Factory are off"):
                await start_drill(bot.svc, "throttle", "UDECLARER", target="factory")
            started = await start_drill(
                bot.svc, "throttle", "UDECLARER", target="factory", allow_real_factory=True
            )
            r = started.report
            assert r.target == "factory" and r.starts_later is True and r.fault == "throttle"
            state = sim.state()
            assert (
                state["chaos"]["type"] == "throttle" and state["mode"] == "healthy"
            )  # scheduled, not running
            assert r.chaos_start and r.origin == r.chaos_start
            assert REAL_CHAOS_NOTE in r.injection
            room = slack.messages[str(started.channel_id)]
            assert any("starts chaos at a random time the next day" in blocks_text(m.blocks) for m in room)
            await bot.drain()


# -- tabletop ------------------------------------------------------------------------------------------------


async def test_tabletop_walks_the_plan_one_step_at_a_time(hbot: BotHarness, clock: ManualClock) -> None:
    slack = hbot.slack
    room = slack.add_channel("dr-tabletop", members=["UBOT", "UDECLARER", "UOTHER"]).id
    steps = tabletop_steps()
    assert len(steps) > 10 and steps[1].section.startswith("§4.1")
    t0 = clock.now()
    _, url = await hbot.command("drill tabletop", channel=room)
    assert f"{len(steps)} steps" in hbot.last_reply(url)

    def step_messages() -> list[Any]:
        return [m for m in slack.messages[room] if m.text.startswith("Tabletop step")]

    blocked_at = {2, 5}
    for i in range(len(steps)):
        current = step_messages()[-1]
        assert current.text.startswith(f"Tabletop step {i + 1}/{len(steps)}")
        done, blocked = buttons(current)
        assert (done["action_id"], blocked["action_id"]) == ("tabletop_done", "tabletop_blocked")
        clock.advance(seconds=30 * (i + 1))
        chosen = blocked if i in blocked_at else done
        await hbot.action(chosen["action_id"], chosen["value"], user="UOTHER", channel=room)
        if i == 3:
            # A second press on an answered step changes nothing; `/incident drill tabletop` resumes.
            await hbot.action("tabletop_done", chosen["value"], user="UDECLARER", channel=room)
            _, url = await hbot.command("drill tabletop", channel=room)
            assert "Resumed the tabletop" in hbot.last_reply(url)
            assert step_messages()[-1].text == step_messages()[-2].text  # step 5 posted again
        updated = slack.message(room, current.ts)
        assert updated is not None and not buttons(updated)
        mark = "⛔ Blocked" if i in blocked_at else "✅ Done"
        assert f"{mark} by <@UOTHER> after" in blocks_text(updated.blocks)

    summary = slack.messages[room][-1]
    assert summary.text.startswith(
        f"🗺️ Tabletop finished: {len(steps) - 2}/{len(steps)} steps done, 2 blocked"
    )
    assert "Gaps to fix in dr-plan.md" in blocks_text(summary.blocks)

    [drill] = await drills(hbot)
    r = drill.report
    assert drill.scenario == "tabletop" and r["state"] == "finished" and drill.incident_id is None
    assert [s["seconds"] for s in r["steps"][:3]] == [30.0, 60.0, 90.0]  # each step timed from its posting
    assert [s["index"] for s in r["summary"]["blocked"]] == sorted(blocked_at)
    total = sum(30 * (i + 1) for i in range(len(steps)))
    assert drill.finished_at == t0 + timedelta(seconds=total) and r["summary"]["total_s"] == total
    assert all(s["outcome"] and s["by"] == "UOTHER" for s in r["steps"])

    _, url = await hbot.command("dr status")
    status = blocks_text(hbot.replies(url)[-1]["blocks"])
    assert "`tabletop` (every 180 d): 2026-11-" in status and "2 blocked" in status


async def test_tabletop_in_a_channel_without_the_bot_says_how_to_fix_it(hbot: BotHarness) -> None:
    room = hbot.slack.add_channel("no-bot", members=["UDECLARER"]).id
    _, url = await hbot.command("drill tabletop", channel=room)
    assert "Invite the bot" in hbot.last_reply(url)


# -- sign-off and status -----------------------------------------------------------------------------------------


async def test_signoff_records_hash_and_status_flags_stale_and_annual_review(
    hbot: BotHarness, clock: ManualClock, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.dr import plan as plan_mod
    from bot.models import Signoff

    _, url = await hbot.command("dr status")
    reply = hbot.replies(url)[-1]
    assert reply["text"].startswith("DR status: 0/2 current sign-offs, review due")
    assert "nobody has signed the plan yet" in blocks_text(reply["blocks"])

    _, url = await hbot.command("dr signoff product", user="U03LEAD")
    assert "Recorded: <@U03LEAD> signs dr-plan.md for Product" in hbot.last_reply(url)
    _, url = await hbot.command("dr signoff product", user="U03LEAD")
    assert hbot.last_reply(url).startswith("Already recorded")
    clock.advance(hours=1)
    _, url = await hbot.command("dr signoff ops", user="UOTHER")
    assert "for Operations" in hbot.last_reply(url)

    digest = plan_mod.plan_hash()
    async with hbot.svc.db.session() as s:
        rows = list((await s.execute(select(Signoff).order_by(Signoff.id))).scalars())
    assert [(x.role, x.user_id, x.plan_hash) for x in rows] == [
        ("product", "U03LEAD", digest),
        ("ops", "UOTHER", digest),
    ]

    _, url = await hbot.command("dr status")
    reply = hbot.replies(url)[-1]
    assert reply["text"] == "DR status: 2/2 current sign-offs, review not due"
    body = blocks_text(reply["blocks"])
    assert "Product: ✅ <@U03LEAD> on 2026-11-23 12:00 UTC (this text)" in body
    assert "next by 2027-11-23" in body

    # The plan is edited: both sign-offs are stale and the review is due.
    edited = tmp_path / "dr-plan.md"
    edited.write_text(plan_mod.DR_PLAN.read_text(encoding="utf-8") + "\nA late edit.\n", encoding="utf-8")
    monkeypatch.setattr(plan_mod, "DR_PLAN", edited)
    _, url = await hbot.command("dr status")
    reply = hbot.replies(url)[-1]
    body = blocks_text(reply["blocks"])
    assert reply["text"] == "DR status: 0/2 current sign-offs, review due"
    assert "Product: ⚠️ stale: <@U03LEAD> signed an older text" in body
    assert "dr-plan.md changed since Operations signed it" in body
    _, url = await hbot.command("dr signoff product", user="U03LEAD")
    assert "replaces <@U03LEAD>'s sign-off of an older text" in hbot.last_reply(url)
    monkeypatch.undo()

    # A year later, the unchanged plan is due for its annual review.
    clock.advance(days=366)
    _, url = await hbot.command("dr status")
    body = blocks_text(hbot.replies(url)[-1]["blocks"])
    assert "is older than 365 d" in body


# -- the CLI -----------------------------------------------------------------------------------------------------


async def test_cli_runs_an_unattended_drill_and_prints_the_report(
    db_url: str, slack: SlackStandin, factory: FactoryServers, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(
        db_url,
        slack,
        factory_url=factory.factory_url,
        pizza_service_url=factory.service_url,
        factory_api_key=factory.sim.api_key,
    )
    argv = ["badjwt", "--wait", "--recover", "--interval", "0.05", "--timeout", "30", "--user", "UDECLARER"]
    code = await asyncio.to_thread(drill_main, argv, open_services, settings=settings)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "started: badjwt" in out and "DRILL REPORT: badjwt" in out and "RTO           1 h: met" in out
    assert factory.sim.mode == "healthy"
    channel = next(c for c in slack.channels.values() if c.name.startswith("incident-drill-"))
    assert any("Drill report" in blocks_text(m.blocks) for m in slack.messages[channel.id])

    code = await asyncio.to_thread(
        drill_main, ["service-down", "--target", "factory"], open_services, settings=settings
    )
    assert code == 1 and "cannot be drilled against the real Factory" in capsys.readouterr().err
