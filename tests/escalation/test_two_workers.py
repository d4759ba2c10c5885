"""Two workers, separate connection pools, claiming the same 200 due steps on PostgreSQL: each sent once."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.models import Page, Timer
from bot.worker import Worker
from tests.conftest import PG_SKIP, make_settings
from tests.support import live_incident
from wiring.services import build_services

N = 200


@pytest.mark.postgres
async def test_two_workers_page_each_step_exactly_once(
    slack, pg_migrated_clean: str, clock: ManualClock
) -> None:
    settings = make_settings(pg_migrated_clean, slack)
    now = clock.now()
    async with aiohttp.ClientSession() as http:
        a = build_services(settings, clock=clock, session=http).svc
        b = build_services(settings, clock=clock, session=http).svc
        async with a.db.session() as s:
            for i in range(N):
                inc_id = f"INC-20261123-{i:06d}"
                s.add(live_incident(inc_id, now, summary=f"load {i}"))
                s.add(
                    Timer(
                        incident_id=inc_id,
                        kind="page",
                        step="L2",
                        due_at=now - timedelta(seconds=i % 7),
                        plan_version=1,
                        data={"level": 2, "reason": "load", "mode": "dm"},
                    )
                )
        w1 = Worker(a, worker_id="w1", batch=20, extra_ticks=[])
        w2 = Worker(b, worker_id="w2", batch=20, extra_ticks=[])
        await asyncio.gather(w1.tick(), w2.tick())
        await asyncio.gather(w1.tick(), w2.tick())
        async with a.db.session() as s:
            pages = (await s.execute(select(func.count()).select_from(Page))).scalar_one()
            left = (await s.execute(select(func.count()).where(Timer.state != "done"))).scalar_one()
        await a.db.dispose()
        await b.db.dispose()
    sent = [c for c in slack.calls_to("chat.postMessage", ok=True) if c.args["channel"] == "DU02SECOND"]
    assert pages == N and left == 0
    assert len(sent) == N, "every step paged exactly once"
    assert w1.fired > 0 and w2.fired > 0, "both workers took part"
    assert w1.fired + w2.fired == N


@pytest.fixture
async def pg_migrated_clean(request: pytest.FixtureRequest) -> str:
    if not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip(PG_SKIP)
    from tests.conftest import _truncate

    url = request.getfixturevalue("pg_migrated")
    await _truncate(url)
    return url
