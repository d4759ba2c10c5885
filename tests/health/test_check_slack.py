"""`/incident check` in Slack, the recovery button and the monitor, against the simulated Factory over HTTP."""

from __future__ import annotations

from sqlalchemy import select

from bot.clock import ManualClock
from bot.health.monitor import monitor_once
from bot.models import CheckSample, Incident
from sandbox.factory_sim import FactoryServers
from tests.support import BotHarness


async def test_check_outside_war_room_offers_declare(hbot: BotHarness, factory: FactoryServers) -> None:
    factory.set_mode("fail")
    _, url = await hbot.command("check")
    reply = hbot.replies(url)[-1]
    assert "down" in reply["text"]
    buttons = [e for b in reply["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons and buttons[0]["action_id"] == "declare_from_check"
    assert buttons[0]["value"].startswith("P1|")
    async with hbot.svc.db.session() as s:
        probes = {x.probe: x.status for x in (await s.execute(select(CheckSample))).scalars()}
    assert probes["order"] == "down" and probes["factory_docs"] == "ok"


async def test_check_in_war_room_updates_progress_and_records_figures(hbot: BotHarness) -> None:
    await hbot.command("declare P2 Is the Factory ok")
    [inc] = await hbot.incidents()
    await hbot.command("check", channel=inc.channel_id)
    updates = [c for c in hbot.slack.calls_to("chat.update", ok=True) if c.args["channel"] == inc.channel_id]
    progress = [c for c in updates if "Running 7 checks" in c.args["text"]]
    assert len(progress) == 7  # one edit per finished probe
    assert "healthy" in updates[-1].args["text"]
    [event] = [e for e in await hbot.events(inc.id) if e.kind == "check"]
    assert event.data["verdict"] == "healthy" and len(event.data["results"]) == 7


async def test_recovery_button_ends_chaos_for_real(hbot: BotHarness, factory: FactoryServers) -> None:
    await hbot.command("declare P1 Orders failing")
    [inc] = await hbot.incidents()
    factory.set_mode("fail")
    await hbot.command("check", channel=inc.channel_id)
    final = [c for c in hbot.slack.calls_to("chat.update", ok=True) if c.args["channel"] == inc.channel_id][
        -1
    ]
    assert "run_recovery" in str(final.args["blocks"])
    assert factory.sim.mode == "fail"

    await hbot.action("run_recovery", inc.id, user="UDECLARER", channel=inc.channel_id)
    assert factory.sim.mode == "healthy"
    posted = [m.text for m in hbot.slack.messages[inc.channel_id]]
    assert any("chaos ended" in t and "before: down → after: healthy" in t.lower() for t in posted), posted
    kinds = [e.kind for e in await hbot.events(inc.id)]
    assert kinds.count("check") == 3 and "recovery" in kinds  # the check, before, after
    # The vendor API key inside the reportUrl never reaches Slack or the timeline.
    key = factory.sim.api_key
    assert all(key not in str(c.args) for c in hbot.slack.calls)
    assert all(key not in str(e.data) + e.text for e in await hbot.events(inc.id))


async def test_recovery_refuses_non_members(hbot: BotHarness, factory: FactoryServers) -> None:
    await hbot.command("declare P1 Orders failing")
    [inc] = await hbot.incidents()
    factory.set_mode("fail")
    resp = await hbot.action("run_recovery", inc.id, user="UOUTSIDER", channel=inc.channel_id)
    assert resp.status_code == 200
    assert factory.sim.mode == "fail"


async def test_monitor_declares_once_then_sees_recovery(
    hbot: BotHarness, factory: FactoryServers, clock: ManualClock
) -> None:
    svc = hbot.svc
    assert await monitor_once(svc) == "ok"
    factory.set_mode("fail")
    clock.advance(seconds=60)
    first_fail = clock.now()
    assert await monitor_once(svc) == "watching"  # one failed check is not an incident
    clock.advance(seconds=60)
    assert await monitor_once(svc) == "watching"
    clock.advance(seconds=60)
    assert await monitor_once(svc) == "declared"
    clock.advance(seconds=60)
    assert await monitor_once(svc) == "open"  # no duplicate declaration while one is open
    incidents = await hbot.incidents()
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.source == "monitor" and inc.detected_at == first_fail and inc.severity in ("P0", "P1")
    assert inc.channel_id and any("Paging L1" in m.text for m in hbot.slack.messages[inc.channel_id])

    factory.set_mode("healthy")
    clock.advance(seconds=60)
    assert await monitor_once(svc) == "recovered"
    async with svc.db.session() as s:
        row = (await s.execute(select(Incident))).scalar_one()
    assert row.status == "MONITORING" and row.monitoring_at == clock.now()
    assert any("metrics back to normal" in m.text.lower() for m in hbot.slack.messages[inc.channel_id])
