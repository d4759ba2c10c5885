"""The monitor's alert state machine end to end: the real worker code against the simulated Factory over HTTP,
the Slack stand-in and a real database. Durations come from thresholds.yaml (for 2m, clean_for 3m)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from bot.clock import ManualClock
from bot.health.monitor import PROBLEM, monitor_once
from bot.health.thresholds import load_thresholds
from bot.models import AlertState, CheckSample, Incident, Page
from sandbox.factory_sim import FactoryServers
from tests.support import BotHarness

TH = load_thresholds()
STEP = 60  # seconds between monitor ticks in these tests


async def _tick(hbot: BotHarness, clock: ManualClock, n: int = 1) -> list[str]:
    out = []
    for _ in range(n):
        clock.advance(seconds=STEP)
        out.append(await monitor_once(hbot.svc))
    return out


async def _incident(hbot: BotHarness, incident_id: str) -> Incident:
    async with hbot.svc.db.session() as s:
        inc = await s.get(Incident, incident_id)
        assert inc is not None
        return inc


async def _declared(hbot: BotHarness, factory: FactoryServers, clock: ManualClock) -> Incident:
    factory.set_mode("fail")
    assert await _tick(hbot, clock, 3) == ["watching", "watching", "declared"]
    [inc] = await hbot.incidents()
    hbot.slack.channels[inc.channel_id or ""].members.add("UDECLARER")  # a responder joins the war room
    return inc


async def _recovered(hbot: BotHarness, factory: FactoryServers, clock: ManualClock) -> None:
    factory.set_mode("healthy")
    assert await _tick(hbot, clock, 3) == ["resolving", "resolving", "recovered"]


def test_yaml_numbers_this_file_relies_on() -> None:
    assert (TH.alerting.for_s, TH.alerting.clean_s, TH.monitor.min_samples) == (120, 180, 3)
    assert TH.alerting.enhanced_monitoring_s == 24 * 3600  # seed 001: 24-48 h


async def test_declared_incident_posts_the_check_report_with_the_recovery_button(
    hbot: BotHarness, factory: FactoryServers, clock: ManualClock
) -> None:
    inc = await _declared(hbot, factory, clock)
    assert inc.severity == "P0" and inc.source == "monitor" and inc.problem_key == PROBLEM
    assert "Every pizza order fails" in inc.impact and "3 of 3 orders failed" in inc.impact
    room = hbot.slack.messages[inc.channel_id]
    report = next(m for m in room if m.text.startswith("🩺 Check that declared this incident"))
    assert "run_recovery" in str(report.blocks)
    # Every monitor sample since detection belongs to the incident (the PIR and the window read them).
    async with hbot.svc.db.session() as s:
        owners = set(
            (
                await s.execute(select(CheckSample.incident_id).where(CheckSample.run_id.like("monitor-%")))
            ).scalars()
        )
    assert owners == {inc.id}


async def test_relapse_during_monitoring_reactivates_and_repages(
    hbot: BotHarness, factory: FactoryServers, clock: ManualClock
) -> None:
    inc = await _declared(hbot, factory, clock)
    await _recovered(hbot, factory, clock)
    assert (await _incident(hbot, inc.id)).status == "MONITORING"
    back = [m.text for m in hbot.slack.messages[inc.channel_id] if "Metrics back to normal" in m.text]
    assert back and "3 clean checks" in back[-1]

    factory.set_mode("fail")  # the Factory relapses while we watch
    assert await _tick(hbot, clock, 3) == ["open", "open", "reactivated"]
    row = await _incident(hbot, inc.id)
    assert row.status == "INVESTIGATING" and row.monitoring_at is None and row.cycle == 2
    async with hbot.svc.db.session() as s:
        pages = list((await s.execute(select(Page).where(Page.incident_id == inc.id))).scalars())
    current = max(p.level for p in pages if p.cycle == 1)  # nobody acknowledged: the ladder had climbed
    room = [m.text for m in hbot.slack.messages[inc.channel_id]]
    relapse = next(t for t in room if t.startswith("🔁 Relapse"))
    assert "order (chaos monkey" in relapse and f"Paging L{current} again" in relapse
    again = [p for p in pages if p.cycle == 2]
    assert current in [p.level for p in again] and all(p.state == "sent" for p in again)
    assert len(await hbot.incidents()) == 1  # still one incident for the problem


async def test_flapping_is_one_incident_and_never_back_to_normal(
    hbot: BotHarness, factory: FactoryServers, clock: ManualClock
) -> None:
    inc = await _declared(hbot, factory, clock)
    outcomes = []
    for mode in ["healthy", "fail"] * 3:
        factory.set_mode(mode)
        outcomes += await _tick(hbot, clock)
    assert "recovered" not in outcomes and set(outcomes) <= {"resolving", "open"}
    assert (await _incident(hbot, inc.id)).status != "MONITORING"
    assert not any("back to normal" in m.text for m in hbot.slack.messages[inc.channel_id])
    async with hbot.svc.db.session() as s:
        alert = await s.get(AlertState, PROBLEM)
    assert alert is not None and alert.flaps == 3 and alert.state == "firing"
    assert len(await hbot.incidents()) == 1


async def test_resolve_is_refused_while_failing_and_forced_resolve_is_recorded(
    hbot: BotHarness, factory: FactoryServers, clock: ManualClock
) -> None:
    inc = await _declared(hbot, factory, clock)
    await hbot.command("status MONITORING", user="UDECLARER", channel=inc.channel_id)
    clock.advance(seconds=31 * 60)  # the playbook's MONITORING time is met …
    _, url = await hbot.command("resolve", user="UDECLARER", channel=inc.channel_id)
    reply = hbot.replies(url)[-1]
    assert "not ready to resolve" in reply["text"] and "not healthy" in reply["text"]  # … the Factory is not
    assert (await _incident(hbot, inc.id)).status == "MONITORING"

    # "Resolve anyway" is the commander's (or roster level 3+): the monitor declared it, so take command first.
    await hbot.action("take_command", inc.id, user="UDECLARER", channel=inc.channel_id)
    await hbot.action("resolve_anyway", inc.id, user="UDECLARER", channel=inc.channel_id)
    assert (await _incident(hbot, inc.id)).status == "RESOLVED"
    [ev] = [e for e in await hbot.events(inc.id) if e.kind == "resolved"]
    assert (
        ev.data["forced"] is True
        and ev.data["forced_by"] == "UDECLARER"
        and "fresh check is down" in ev.data["health"]
    )

    # Still failing after a forced resolve: within the enhanced-monitoring period the incident reopens.
    outcomes = await _tick(hbot, clock, 3)
    assert "reopened" in outcomes
    row = await _incident(hbot, inc.id)
    assert row.status == "INVESTIGATING" and row.cycle == 2
    assert any(e.kind == "relapse" for e in await hbot.events(inc.id))
    assert len(await hbot.incidents()) == 1


async def test_clean_resolve_then_relapse_reopens_within_enhanced_monitoring_only(
    hbot: BotHarness, factory: FactoryServers, clock: ManualClock
) -> None:
    inc = await _declared(hbot, factory, clock)
    await _recovered(hbot, factory, clock)
    clock.advance(seconds=31 * 60)
    _, url = await hbot.command("resolve", user="UDECLARER", channel=inc.channel_id)
    assert "Resolved" in hbot.last_reply(url)
    assert (await _incident(hbot, inc.id)).status == "RESOLVED"

    clock.advance(seconds=2 * 3600)
    factory.set_mode("throttle")
    outcomes = await _tick(hbot, clock, 3)
    assert outcomes[-1] == "reopened"
    assert (await _incident(hbot, inc.id)).status == "INVESTIGATING"
    assert any("enhanced monitoring" in m.text for m in hbot.slack.messages[inc.channel_id])

    # After the period a new failure is a new incident.
    await _recovered(hbot, factory, clock)
    clock.advance(seconds=31 * 60)
    await hbot.command("resolve", user="UDECLARER", channel=inc.channel_id)
    clock.advance(seconds=25 * 3600)
    factory.set_mode("fail")
    assert (await _tick(hbot, clock, 3))[-1] == "declared"
    assert len(await hbot.incidents()) == 2


async def test_one_worker_owns_a_tick_and_a_dead_ones_lease_expires(
    hbot: BotHarness, factory: FactoryServers, clock: ManualClock
) -> None:
    svc = hbot.svc
    assert await monitor_once(svc) == "ok"
    until = clock.now() + timedelta(seconds=TH.alerting.lease_s)
    async with svc.db.session() as s:  # another worker claimed the tick and died holding it
        await s.execute(
            update(AlertState)
            .where(AlertState.problem_key == PROBLEM)
            .values(tick_owner="other", tick_until=until)
        )
    assert await monitor_once(svc) == "busy"
    clock.advance(seconds=TH.alerting.lease_s + 1)
    assert await monitor_once(svc) == "ok"


async def test_state_survives_a_worker_restart(
    hbot: BotHarness, factory: FactoryServers, clock: ManualClock
) -> None:
    factory.set_mode("fail")
    assert await _tick(hbot, clock, 2) == ["watching", "watching"]
    hbot.svc.__dict__.pop("_monitor_owner", None)  # a new process: another owner id, same database
    assert await _tick(hbot, clock) == ["declared"]
    [inc] = await hbot.incidents()
    assert inc.detected_at == clock.now() - timedelta(seconds=2 * STEP)  # the first failing sample


async def test_a_real_failure_during_a_drill_is_declared(
    hbot: BotHarness, factory: FactoryServers, clock: ManualClock
) -> None:
    await hbot.command("drill fail")
    [drill] = await hbot.incidents()
    assert drill.is_drill and factory.sim.mode == "fail"
    assert await _tick(hbot, clock, 3) == ["open", "open", "open"]  # the drill's own fault: the drill's alert
    assert len(await hbot.incidents()) == 1
    factory.set_mode("down")  # a real outage on top of the drill
    outcomes = await _tick(hbot, clock, 3)
    assert outcomes[-1] == "declared"
    real = [i for i in await hbot.incidents() if not i.is_drill]
    assert len(real) == 1 and real[0].problem_key == PROBLEM and real[0].severity == "P0"


async def test_a_monitor_declared_incident_offers_take_command(
    hbot: BotHarness, factory: FactoryServers, clock: ManualClock
) -> None:
    from bot.worker import Worker

    inc = await _declared(hbot, factory, clock)
    assert inc.commander is None
    template = next(m for m in hbot.slack.messages[inc.channel_id or ""] if m.ts == inc.template_ts)
    assert "take_command" in str(template.blocks)
    # The update reminder (P0: every 15 min) offers it too.
    clock.advance(seconds=16 * 60)
    await Worker(hbot.svc, worker_id="w1", extra_ticks=[]).tick()
    reminder = [m for m in hbot.slack.messages[inc.channel_id or ""] if m.text.startswith("⏰ Update due")][
        -1
    ]
    assert "take_command" in str(reminder.blocks)
    # U01PRIMARY was paged, hence invited: a member may take command.
    assert "U01PRIMARY" in hbot.slack.channels[inc.channel_id or ""].members
    await hbot.action("take_command", inc.id, user="U01PRIMARY", channel=inc.channel_id or "")
    assert (await _incident(hbot, inc.id)).commander == "U01PRIMARY"
    template = next(m for m in hbot.slack.messages[inc.channel_id or ""] if m.ts == inc.template_ts)
    assert f"{inc.id}|U01PRIMARY" in str(template.blocks) and "<@U01PRIMARY>" in str(template.blocks)
    await hbot.action(
        "take_command", inc.id, user="UDECLARER", channel=inc.channel_id or ""
    )  # a stale button
    assert (await _incident(hbot, inc.id)).commander == "U01PRIMARY"
