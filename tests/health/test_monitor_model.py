"""Model-based test of detection and recovery: Hypothesis drives random sequences of Factory modes, monitor
ticks, acknowledgements, recovery, resolve (gated and forced), reopen, drills and worker restarts against the
real bot (served over HTTP, real worker code, SQLite), the Slack stand-in and the simulated Factory.

Invariants (from issue 16):
- at most one open incident per problem key;
- a failure that lasts longer than the alert's `for` (with `min_samples` failing checks) is declared or attached
  to an open incident, including during MONITORING and during a drill (unless it is the drill's own fault);
- never "back to normal" while the latest check fails;
- resolve refused while the fresh check fails (unless forced);
- after resolve no page DM still says "needs you";
- a drill report measures what happened (detect time = first failing sample after injection, or none).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select, update

from bot.clock import ManualClock
from bot.health.monitor import DRILL_PROBLEM, PROBLEM, monitor_once
from bot.health.thresholds import load_thresholds
from bot.models import AlertState, CheckSample, Drill, Incident, Page
from bot.worker import Worker
from sandbox.factory_sim import FactoryServers, FactorySim
from sandbox.servers import LoopServer, ServerThread
from sandbox.slack_standin import SlackStandin
from tests.conftest import _add_users, make_settings
from tests.support import BotHarness
from wiring.app import create_app

T = TypeVar("T")
TH = load_thresholds()
STEP_S = 60.0
MODES = ("healthy", "fail", "throttle", "badjwt", "slow", "hang", "down")
CHAOS = ("fail", "throttle", "badjwt")
# Ticks of continuous failure after which the alert must have fired: `for` elapsed and min_samples taken.
MUST_FIRE_AFTER = max(TH.monitor.min_samples, int(TH.alerting.for_s // STEP_S) + 1)
RESPONDER = "UDECLARER"


class _Env:
    standin: SlackStandin
    template: Path
    tmp: Path


ENV = _Env()


class Bot:
    """The bot and the simulator, driven from the (synchronous) state machine through a private event loop."""

    def __init__(self, n: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # throttle 2 s > probe timeout 1.5 s (as 32 s > 5 s for real); slow 1.1 s > 1000 ms and < the timeout.
        self.servers = FactoryServers(
            FactorySim(throttle_delay=2.0, slow_delay=1.1, report_url_mode="self")
        ).start()
        path = ENV.tmp / f"model-{n}.db"
        shutil.copy(ENV.template, path)
        self.settings = make_settings(
            f"sqlite+aiosqlite:///{path}",
            ENV.standin,
            factory_url=self.servers.factory_url,
            pizza_service_url=self.servers.service_url,
            factory_api_key=self.servers.sim.api_key,
            check_timeout=1.5,
        )
        self.clock = ManualClock()
        self.h: BotHarness = self.run(self._start())

    async def _start(self) -> BotHarness:
        app = create_app(self.settings, clock=self.clock)
        self.server = LoopServer(app)
        await self.server.start()
        self.http = httpx.AsyncClient(timeout=120)
        return BotHarness(self.server.url, app.state.svc, ENV.standin, self.http)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=300)

    def close(self) -> None:
        async def stop() -> None:
            await self.h.drain()
            await self.http.aclose()
            await self.server.stop()

        try:
            self.run(stop())
        finally:
            self.servers.stop()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


class MonitorModel(RuleBasedStateMachine):
    runs = 0

    def __init__(self) -> None:
        super().__init__()
        ENV.standin.reset()
        _add_users(ENV.standin)
        MonitorModel.runs += 1
        self.bot = Bot(MonitorModel.runs)
        self.mode = "healthy"
        self.unexplained_streak = 0  # consecutive failing monitor checks not explained by an open drill
        self.worker_n = 0

    def teardown(self) -> None:
        self.bot.close()

    # -- helpers ---------------------------------------------------------------------------------------
    @property
    def svc(self) -> Any:
        return self.bot.h.svc

    def q(self, fn: Any) -> Any:
        async def go() -> Any:
            async with self.svc.db.session() as s:
                return await fn(s)

        return self.bot.run(go())

    def open_incidents(self) -> list[Incident]:
        async def f(s: Any) -> list[Incident]:
            return list((await s.execute(select(Incident).where(Incident.status != "RESOLVED"))).scalars())

        return self.q(f)

    def latest(self) -> Incident | None:
        async def f(s: Any) -> Incident | None:
            stmt = select(Incident).order_by(Incident.declared_at.desc(), Incident.id.desc()).limit(1)
            return (await s.execute(stmt)).scalars().first()

        return self.q(f)

    def last_run_failing(self, kind: str) -> bool:
        async def f(s: Any) -> bool:
            stmt = (
                select(CheckSample)
                .where(CheckSample.run_id.like(f"{kind}-%"))
                .order_by(CheckSample.id.desc())
            )
            rows = list((await s.execute(stmt.limit(12))).scalars())
            run = [r for r in rows if r.run_id == rows[0].run_id] if rows else []
            return any(r.status in ("down", "degraded") for r in run)

        return self.q(f)

    def drill_scenario(self) -> str | None:
        async def f(s: Any) -> str | None:
            inc = (
                (
                    await s.execute(
                        select(Incident).where(
                            Incident.problem_key == DRILL_PROBLEM, Incident.status != "RESOLVED"
                        )
                    )
                )
                .scalars()
                .first()
            )
            if inc is None:
                return None
            stmt = select(Drill.scenario).where(Drill.incident_id == inc.id).order_by(Drill.id.desc())
            return (await s.execute(stmt)).scalars().first()

        return self.q(f)

    def join(self, inc: Incident) -> None:
        if inc.channel_id:
            ENV.standin.channels[inc.channel_id].members.update({RESPONDER, "U01PRIMARY"})

    def assert_no_page_needs_you(self, incident_id: str) -> None:
        async def f(s: Any) -> list[Page]:
            return list((await s.execute(select(Page).where(Page.incident_id == incident_id))).scalars())

        for page in self.q(f):
            for user, dm in page.dm.items():
                if user.startswith("_"):
                    continue
                msg = next((m for m in ENV.standin.messages.get(dm["channel"], []) if m.ts == dm["ts"]), None)
                assert msg is not None
                assert "needs you" not in str(msg.blocks) and "ack_incident" not in str(msg.blocks), msg.text

    # -- rules -----------------------------------------------------------------------------------------
    @initialize()
    def start_healthy(self) -> None:
        assert self.bot.run(monitor_once(self.svc)) in ("ok", "watching")  # "watching": a slow loaded machine

    @rule(mode=st.sampled_from(MODES))
    def factory_mode(self, mode: str) -> None:
        self.bot.servers.set_mode(mode)
        self.mode = mode

    @rule(n=st.integers(1, 3))
    def ticks(self, n: int) -> None:
        for _ in range(n):
            self.bot.clock.advance(seconds=STEP_S)
            outcome = self.bot.run(monitor_once(self.svc))
            assert outcome != "busy"
            failing = self.last_run_failing("monitor")
            if outcome == "recovered":
                assert not failing, "back to normal while the latest check fails"
            scenario = self.drill_scenario()
            explained = scenario is not None and self.mode == scenario and self.mode in CHAOS
            self.unexplained_streak = self.unexplained_streak + 1 if failing and not explained else 0
            if self.unexplained_streak >= MUST_FIRE_AFTER:
                real = [i for i in self.open_incidents() if i.problem_key == PROBLEM]
                assert real, (
                    f"failing for {self.unexplained_streak} checks ({self.mode}) and nothing declared"
                )
                assert real[0].status not in ("MONITORING", "IDENTIFIED"), "firing but left in MONITORING"
            self.bot.run(Worker(self.svc, worker_id=f"w{self.worker_n}", extra_ticks=[]).tick())

    @rule()
    def acknowledge(self) -> None:
        for inc in self.open_incidents():
            self.join(inc)
            self.bot.run(self.bot.h.command("ack", user="U01PRIMARY", channel=inc.channel_id or ""))

    @precondition(
        lambda self: self.mode in ("healthy", *CHAOS)
    )  # hang/down: the recovery order would hang 40 s
    @rule()
    def recovery(self) -> None:
        for inc in self.open_incidents():
            self.join(inc)
            self.bot.run(
                self.bot.h.action("run_recovery", inc.id, user=RESPONDER, channel=inc.channel_id or "")
            )
            self.mode = self.bot.servers.sim.mode if self.bot.servers.sim.mode in MODES else self.mode

    @rule(status=st.sampled_from(["MONITORING", "IDENTIFIED"]))
    def set_status(self, status: str) -> None:
        for inc in self.open_incidents():
            self.join(inc)
            self.bot.run(self.bot.h.command(f"status {status}", user=RESPONDER, channel=inc.channel_id or ""))

    @rule(force=st.booleans())
    def resolve(self, force: bool) -> None:
        self.bot.clock.advance(seconds=31 * 60)  # past the playbook's MONITORING time
        for inc in self.open_incidents():
            self.join(inc)
            if force:
                self.bot.run(
                    self.bot.h.action("resolve_anyway", inc.id, user=RESPONDER, channel=inc.channel_id or "")
                )
            else:
                self.bot.run(self.bot.h.command("resolve", user=RESPONDER, channel=inc.channel_id or ""))
            after = self.q(lambda s, i=inc.id: s.get(Incident, i))
            if not force and self.last_run_failing("check"):
                assert after.status != "RESOLVED", "resolved while the fresh check fails"
            if after.status == "RESOLVED":
                self.assert_no_page_needs_you(inc.id)

    @rule()
    def reopen(self) -> None:
        inc = self.latest()
        if inc is not None and inc.status == "RESOLVED" and not self.open_incidents():
            self.join(inc)
            self.bot.run(self.bot.h.command("reopen", user=RESPONDER, channel=inc.channel_id or ""))

    @precondition(lambda self: self.mode == "healthy")
    @rule(scenario=st.sampled_from(["fail", "badjwt"]))
    def drill(self, scenario: str) -> None:
        self.bot.run(self.bot.h.command(f"drill {scenario}", user=RESPONDER))
        if self.drill_scenario() == scenario:
            self.mode = self.bot.servers.sim.mode

    @rule()
    def worker_restart(self) -> None:
        """A new process (another owner id) after one that died holding the tick lease."""
        self.svc.__dict__.pop("_monitor_owner", None)
        self.worker_n += 1
        until = self.bot.clock.now() + timedelta(seconds=1)

        async def stale(s: Any) -> None:
            await s.execute(
                update(AlertState)
                .where(AlertState.problem_key == PROBLEM)
                .values(tick_owner="dead", tick_until=until)
            )

        self.q(stale)

    # -- invariants --------------------------------------------------------------------------------------
    @invariant()
    def one_open_incident_per_problem(self) -> None:
        async def f(s: Any) -> list[tuple[str | None, int]]:
            stmt = (
                select(Incident.problem_key, func.count())
                .where(Incident.status != "RESOLVED")
                .group_by(Incident.problem_key)
            )
            return list((await s.execute(stmt)).tuples())

        for key, count in self.q(f):
            assert count <= 1, f"{count} open incidents for {key}"

    @invariant()
    def finished_drills_measure_what_happened(self) -> None:
        async def f(s: Any) -> list[Drill]:
            return list((await s.execute(select(Drill).where(Drill.finished_at.is_not(None)))).scalars())

        for d in self.q(f):
            r = d.report
            if r.get("ttd_s") is not None:
                assert r.get("detected_by") and r["ttd_s"] >= 0
            if r.get("ttr_s") is not None:
                assert r.get("ttd_s") is None or r["ttr_s"] >= r["ttd_s"]


def test_monitor_model(
    standin_server: tuple[SlackStandin, ServerThread], sqlite_template: Path, tmp_path: Path
) -> None:
    ENV.standin, ENV.template, ENV.tmp = standin_server[0], sqlite_template, tmp_path
    run_state_machine_as_test(
        MonitorModel,
        settings=settings(
            # Small by default (the suite runs on a shared machine); MODEL_EXAMPLES=N explores more.
            max_examples=int(os.environ.get("MODEL_EXAMPLES", "4")),
            stateful_step_count=int(os.environ.get("MODEL_STEPS", "14")),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
