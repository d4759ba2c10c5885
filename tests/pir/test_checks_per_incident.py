"""The PIR's health section counts the samples of its own incident, not those the monitor tied to another."""

from __future__ import annotations

from bot.clock import ManualClock
from bot.models import CheckSample
from bot.pir.data import incident_info, load_checks
from tests.support import BotHarness


async def test_samples_of_another_incident_are_not_counted(bot: BotHarness, clock: ManualClock) -> None:
    await bot.command("declare P1 Orders failing")
    clock.advance(seconds=60)
    await bot.command("declare P2 Menu images missing")
    first, second = await bot.incidents()
    now = clock.now()
    async with bot.svc.db.session() as s:
        for i, (owner, status) in enumerate([(first.id, "down"), (first.id, "down"), (None, "ok")]):
            s.add(
                CheckSample(
                    run_id=f"monitor-{i}", at=now, probe="order", status=status, http_status=500,
                    latency_ms=10.0, detail="", incident_id=owner,
                )
            )  # fmt: skip
    async with bot.svc.db.session() as s:
        [summary] = await load_checks(s, incident_info(second), now)
    assert (summary.samples, summary.failing) == (1, 0)  # only the untagged sample taken while it was open
