"""The wiring registers every timer kind and outbox effect the code writes, and the stores run only what is
registered: an unknown kind fails visibly instead of being silently dropped or crashing the worker."""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import select

from bot.clock import ManualClock
from bot.dispatch import Dispatch
from bot.models import OutboxMessage, Timer
from bot.outbox import deliver, enqueue
from bot.states import OutboxState, TimerState
from bot.worker import Worker
from tests.support import BotHarness
from wiring.services import register_kinds

ROOT = Path(__file__).resolve().parents[2]


def _written_kinds() -> tuple[set[str], set[str]]:
    """Timer(kind="…") and enqueue(s, "…") literals anywhere in the domain and the adapters."""
    timers: set[str] = set()
    effects: set[str] = set()
    for path in [*ROOT.joinpath("bot").rglob("*.py"), *ROOT.joinpath("handlers").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name == "Timer":
                for kw in node.keywords:
                    if kw.arg == "kind" and isinstance(kw.value, ast.Constant):
                        timers.add(str(kw.value.value))
            if name == "enqueue" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                effects.add(str(node.args[1].value))
    return timers, effects


def test_every_kind_the_code_writes_is_registered_at_wiring() -> None:
    timers, effects = _written_kinds()
    d = register_kinds(Dispatch())
    assert timers and effects
    assert timers <= set(d.timers), f"timer kinds with no handler: {timers - set(d.timers)}"
    assert effects <= set(d.effects), f"outbox effects with no handler: {effects - set(d.effects)}"
    assert d.ticks, "the worker has ticks to run"


def test_a_kind_registered_twice_is_refused() -> None:
    d = register_kinds(Dispatch())
    try:
        d.timer("page", d.timers["page"])
    except ValueError as exc:
        assert "page" in str(exc)
    else:
        raise AssertionError("a second registration of a kind must fail at wiring")


async def test_unregistered_kinds_fail_visibly(bot: BotHarness, clock: ManualClock) -> None:
    now = clock.now()
    async with bot.svc.db.session() as s:
        s.add(Timer(kind="from-a-newer-release", step="x", due_at=now, plan_version=1))
        await enqueue(s, "from-a-newer-release", channel="CGENERAL", at=now)
    await Worker(bot.svc, worker_id="w", extra_ticks=[]).tick()
    await deliver(bot.svc)
    async with bot.svc.db.session() as s:
        [t] = (await s.execute(select(Timer).where(Timer.kind == "from-a-newer-release"))).scalars()
        [o] = (await s.execute(select(OutboxMessage))).scalars()
    assert t.state == TimerState.FAILED and "no handler" in (t.last_error or "")
    assert o.state == OutboxState.FAILED and o.last_error == "unknown_outbox_kind"
