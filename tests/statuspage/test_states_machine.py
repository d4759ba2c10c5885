"""Component states as a Hypothesis state machine on a real SQLite database: people publish states, the
monitor sets and clears automated ones, time passes. The page always shows the worse of the two, the history
records exactly the changes of what was shown, and the day bars stay within 0..100 %."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import select

from bot.db import Database
from bot.migrate import upgrade
from bot.models import StatusComponent, StatusComponentChange
from bot.statuspage.config import load_config
from bot.statuspage.model import STATES, worst
from bot.statuspage.store import set_automated_state, set_public_state, snapshot

KEYS = ("ordering", "jwt")
_TEMPLATE: list[Path] = []


def _template() -> Path:
    if not _TEMPLATE:
        path = Path(tempfile.mkdtemp()) / "template.db"
        upgrade(f"sqlite+aiosqlite:///{path}")
        _TEMPLATE.append(path)
    return _TEMPLATE[0]


class ComponentStates(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        path = Path(self.dir.name) / "bot.db"
        path.write_bytes(_template().read_bytes())
        self.loop = asyncio.new_event_loop()
        self.db = Database(f"sqlite+aiosqlite:///{path}")
        self.now = datetime(2026, 11, 1, tzinfo=UTC)
        self.manual = dict.fromkeys(KEYS, "operational")
        self.auto: dict[str, str | None] = dict.fromkeys(KEYS)
        self.shown = dict.fromkeys(KEYS, "operational")
        self.changes = dict.fromkeys(KEYS, 0)

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    @rule(key=st.sampled_from(KEYS), state=st.sampled_from(STATES))
    def publish(self, key: str, state: str) -> None:
        async def go() -> None:
            async with self.db.session() as s:
                await set_public_state(s, key, state, self.now)

        self.run(go())
        self.manual[key] = state
        self._expect(key)

    @rule(key=st.sampled_from(KEYS), state=st.sampled_from((None, *STATES)))
    def monitor(self, key: str, state: str | None) -> None:
        async def go() -> None:
            async with self.db.session() as s:
                await set_automated_state(s, key, state, "internal reason", self.now)

        self.run(go())
        self.auto[key] = None if state in (None, "operational") else state
        self._expect(key)

    @rule(minutes=st.integers(min_value=1, max_value=3 * 24 * 60))
    def wait(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    def _expect(self, key: str) -> None:
        shown = worst((self.manual[key], self.auto[key]))
        if shown != self.shown[key]:
            self.changes[key] += 1
        self.shown[key] = shown

    @invariant()
    def page_shows_the_worse_state_and_history_matches(self) -> None:
        async def read() -> tuple[dict[str, StatusComponent], list[StatusComponentChange], object]:
            async with self.db.session() as s:
                rows = {r.key: r for r in (await s.execute(select(StatusComponent))).scalars()}
                changes = list(
                    (
                        await s.execute(select(StatusComponentChange).order_by(StatusComponentChange.id))
                    ).scalars()
                )
                snap = await snapshot(s, load_config(), self.now, "http://x")
            return rows, changes, snap

        rows, changes, snap = self.run(read())
        views = {c.key: c for c in snap.components}  # type: ignore[attr-defined]
        for key in KEYS:
            assert views[key].state == self.shown[key]
            assert views[key].automated == (
                self.auto[key] is not None and STATES.index(self.auto[key]) > STATES.index(self.manual[key])
            )
            mine = [c for c in changes if c.component == key]
            assert len(mine) == self.changes[key]
            assert all(a.state != b.state for a, b in itertools.pairwise(mine))
            if mine:
                assert mine[-1].state == self.shown[key] and rows[key].effective == self.shown[key]
            assert all(0.0 <= d.availability <= 1.0 for d in views[key].days)
            assert len(views[key].days) == 90

    def teardown(self) -> None:
        self.run(self.db.dispose())
        self.loop.close()
        self.dir.cleanup()


ComponentStates.TestCase.settings = settings(max_examples=15, stateful_step_count=12, deadline=None)
TestComponentStates = ComponentStates.TestCase
