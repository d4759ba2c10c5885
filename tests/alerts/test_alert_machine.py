"""A Hypothesis state machine drives Grafana notifications (fire, repeat, resolve, a person resolving the
incident) over real HTTP at the bot in its own server thread, and checks after every step that the bot's
rows and war room agree with a model: one incident per group, repeats only counted, every change posted once,
every notification on the timeline, and the resolve gate's answer."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
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
from sqlalchemy import select

from bot.alerts.flows import alerts_all_resolved, group_problem
from bot.incidents.lifecycle import LifecycleFlows
from bot.models import Alert, Incident, TimelineEvent
from sandbox.servers import ServerThread
from sandbox.slack_standin import SlackStandin
from tests.alerts.payloads import GRAFANA_TOKEN, grafana_alert, grafana_body
from tests.conftest import make_settings
from wiring.app import create_app

FPS = ("a1a1a1a1", "b2b2b2b2", "c3c3c3c3")
LABELS = {"service": "jwt-pizza-service", "severity": "critical"}


class Live:
    def __init__(self, server: ServerThread, app: Any) -> None:
        self.server, self.app = server, app
        self.http = httpx.Client(timeout=30)

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self.server.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.server.loop).result(60)

    @property
    def svc(self) -> Any:
        return self.app.state.svc


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path, slack: SlackStandin) -> Iterator[Live]:
    db = tmp_path / "machine.db"
    shutil.copy(sqlite_template, db)
    settings_ = make_settings(
        f"sqlite+aiosqlite:///{db}", slack, grafana_credentials=f"Bearer {GRAFANA_TOKEN}"
    )
    app = create_app(settings_)
    server = ServerThread(app)
    server.start()
    live = Live(server, app)
    yield live
    live.http.close()
    server.stop()


def test_alert_state_machine(live: Live, slack: SlackStandin) -> None:
    class AlertMachine(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            run = uuid.uuid4().hex[:8]
            self.group = f'{{}}:{{alertname="m-{run}"}}'
            self.fp = {k: f"{run}{k}" for k in FPS}  # examples share the bot: their alerts must not meet
            self.firing: dict[str, bool] = {}
            self.repeats: dict[str, int] = {}
            self.changes = 0
            self.notifications = 0
            self.resolved_by_person = False

        def send(self, fp: str, status: str) -> None:
            now = datetime.now(UTC)
            alert = grafana_alert(
                f"Machine-{fp[:2]}",
                status=status,
                starts=now,
                ends=now if status == "resolved" else None,
                fingerprint=self.fp[fp],
                labels=LABELS,
            )
            resp = live.http.post(
                f"{live.server.url}/alerts/grafana",
                content=json.dumps(grafana_body([alert], group_key=self.group)).encode(),
                headers={"Authorization": f"Bearer {GRAFANA_TOKEN}", "Content-Type": "application/json"},
            )
            assert resp.status_code == 202
            live.run(live.svc.tasks.drain(timeout=30))
            self.notifications += 1

        @rule(fp=st.sampled_from(FPS))
        def fire(self, fp: str) -> None:
            if self.firing.get(fp):
                self.repeats[fp] = self.repeats.get(fp, 0) + 1
            else:
                self.changes += 1
            self.firing[fp] = True
            self.send(fp, "firing")

        @precondition(lambda self: bool(self.firing))
        @rule(data=st.data())
        def resolve(self, data: st.DataObject) -> None:
            fp = data.draw(st.sampled_from(sorted(self.firing)))
            if self.firing[fp]:
                self.changes += 1
            self.firing[fp] = False
            self.send(fp, "resolved")

        @precondition(lambda self: bool(self.firing) and not self.resolved_by_person)
        @rule()
        def person_resolves(self) -> None:
            [inc] = self.incidents()
            live.run(LifecycleFlows(live.svc).resolve(inc.id, "U01PRIMARY", force=True))
            self.resolved_by_person = True

        def incidents(self) -> list[Incident]:
            async def q() -> list[Incident]:
                async with live.svc.db.session() as s:
                    stmt = select(Incident).where(
                        Incident.problem_key == group_problem("grafana", self.group)
                    )
                    return list((await s.execute(stmt)).scalars())

            return list(live.run(q()))

        @invariant()
        def agrees_with_the_model(self) -> None:
            incs = self.incidents()
            assert len(incs) == (1 if self.firing else 0), (self.firing, [(i.id, i.status) for i in incs])
            if not incs:
                return
            inc = incs[0]

            async def q() -> tuple[list[Alert], int, bool]:
                async with live.svc.db.session() as s:
                    alerts = list(
                        (await s.execute(select(Alert).where(Alert.incident_id == inc.id))).scalars()
                    )
                    events = (
                        await s.execute(
                            select(TimelineEvent).where(
                                TimelineEvent.incident_id == inc.id, TimelineEvent.kind == "alert"
                            )
                        )
                    ).scalars()
                    return alerts, len(list(events)), await alerts_all_resolved(s, inc.id)

            alerts, events, all_resolved = live.run(q())
            assert {a.fingerprint[8:]: a.status == "firing" for a in alerts} == self.firing
            assert {a.fingerprint[8:]: a.repeats for a in alerts if a.repeats} == {
                k: v for k, v in self.repeats.items() if v
            }
            assert events == self.notifications
            assert all_resolved == (not any(self.firing.values()))
            posts = [m.text for m in slack.messages.get(str(inc.channel_id), []) if "🚨 *Grafana*" in m.text]
            assert len(posts) == self.changes

    run_state_machine_as_test(
        AlertMachine,
        settings=settings(
            max_examples=6,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
