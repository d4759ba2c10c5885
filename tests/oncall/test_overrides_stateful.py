"""Overrides as a state machine over the real service and a real SQLite database: people (members, the person
on shift, outsiders, an admin) add and remove overrides while time passes; at every step the level resolves to
exactly what a plain model of the rules says, and refused changes leave nothing behind."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from bot.clock import ManualClock
from bot.config import Settings
from bot.migrate import upgrade
from bot.oncall import service
from tests.support import BOT_TOKEN, SIGNING_SECRET
from wiring.services import build_services

SCHEDULE = """
schedules:
  primary:
    level: 1
    layers:
      - {name: rota, users: [UA, UB], rotation: custom, length: 6h, start: "2026-11-23T00:00:00+00:00"}
"""
PEOPLE = ["UA", "UB", "UX", "UADMIN", "UOUT"]
T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)


_TEMPLATE: list[Path] = []


def _template() -> Path:
    """One migrated database per test session, copied for each example (migrating takes a second)."""
    if not _TEMPLATE:
        path = Path(tempfile.mkdtemp(prefix="oncall-sm-")) / "template.db"
        upgrade(f"sqlite+aiosqlite:///{path}")
        _TEMPLATE.append(path)
    return _TEMPLATE[0]


class Overrides(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        path = Path(self.dir.name)
        (path / "s.yaml").write_text(SCHEDULE)
        url = f"sqlite+aiosqlite:///{path / 'bot.db'}"
        shutil.copy(_template(), path / "bot.db")
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock(T0)
        cfg = Settings(  # type: ignore[call-arg]
            _env_file=None,
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url="http://127.0.0.1:9/api/",
            database_url=url,
            schedules_file=path / "s.yaml",
            oncall_admins="UADMIN",
        )
        self.svc, _ = build_services(cfg, clock=self.clock)
        self.sched = service.find_schedule(self.svc, "1")
        self.model: dict[int, tuple[str, datetime, datetime, str]] = {}  # id -> user, start, end, maker

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def expected(self, at: datetime) -> tuple[str, ...]:
        live = [(i, o) for i, o in self.model.items() if o[1] <= at < o[2]]
        if live:
            return (max(live)[1][0],)
        k = int((at - datetime(2026, 11, 23, tzinfo=UTC)) // timedelta(hours=6))
        return (("UA", "UB")[k % 2],)

    def may_change(self, actor: str) -> bool:
        return actor in ("UA", "UB", "UADMIN") or actor in self.expected(self.clock.now())

    @rule(
        actor=st.sampled_from(PEOPLE),
        user=st.sampled_from(PEOPLE),
        offset=st.integers(-120, 24 * 60),
        minutes=st.integers(-10, 12 * 60),
    )
    def add(self, actor: str, user: str, offset: int, minutes: int) -> None:
        now = self.clock.now()
        start = now + timedelta(minutes=offset)
        end = start + timedelta(minutes=minutes)
        ok = end > start and end > now and self.may_change(actor)
        try:
            row = self.run(service.add_override(self.svc, self.sched, user, start, end, actor))  # type: ignore[arg-type]
        except service.OncallError:
            assert not ok
            return
        assert ok
        self.model[row.id] = (user, start, end, actor)

    @rule(actor=st.sampled_from(PEOPLE), pick=st.integers(0, 20))
    def remove(self, actor: str, pick: int) -> None:
        ids = [*sorted(self.model), 9999]
        oid = ids[pick % len(ids)]
        entry = self.model.get(oid)
        ok = entry is not None and (actor in (entry[0], entry[3]) or self.may_change(actor))
        try:
            self.run(service.remove_override(self.svc, oid, actor))
        except service.OncallError:
            assert not ok
            return
        assert ok
        del self.model[oid]

    @rule(minutes=st.integers(1, 8 * 60))
    def advance(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @invariant()
    def resolves_as_the_model_says(self) -> None:
        if not hasattr(self, "svc"):
            return
        now = self.clock.now()
        for at in (now, now + timedelta(hours=3)):
            got = self.run(service.oncall_users(self.svc, 1, at))
            assert got.users == self.expected(at), (at, got)

    def teardown(self) -> None:
        if hasattr(self, "svc"):
            self.run(self.svc.aclose())
            self.loop.close()
            self.dir.cleanup()


Overrides.TestCase.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
TestOverrides = Overrides.TestCase
