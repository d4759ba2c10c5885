"""A page DM Slack took while the database dropped out is recorded when the database is back, not sent again
(chaos seed 750327665 sent an L2 DM twice: the post went out, the write recording it met "too many clients",
the timer failed and its retry found no record of the DM)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import pytest
from sqlalchemy.engine import make_url

from bot.clock import ManualClock
from bot.context import Services
from bot.db import DatabaseUnavailable
from bot.states import PageState, TimerState
from bot.worker import Worker
from sandbox.slack_standin import SlackStandin
from tests.conftest import _truncate, make_settings
from tests.once.test_page_lease import _dms, _seed, _state
from tests.tcp_proxy import TcpProxy
from wiring.services import build_services

pytestmark = pytest.mark.postgres

OUTAGE = 1.0  # seconds the database is away, right after Slack took the DM


class CutAfterDM:
    """The real ChatPort; the first DM post succeeds, then every database connection is cut for a while."""

    def __init__(self, inner: Any, proxy: TcpProxy) -> None:
        self.inner, self.proxy = inner, proxy
        self.back = asyncio.Event()
        self.cut = False
        self._restarting: asyncio.Future[None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def post(self, channel: str, text: str, blocks: Any = None, **kw: Any) -> Any:
        ts = await self.inner.post(channel, text, blocks, **kw)
        if channel.startswith("D") and not self.cut:
            self.cut = True
            await self.proxy.stop()
            asyncio.get_running_loop().call_later(OUTAGE, self._restart)
        return ts

    def _restart(self) -> None:
        async def start() -> None:
            await self.proxy.start()
            self.back.set()

        self._restarting = asyncio.ensure_future(start())


async def test_a_dm_sent_as_the_database_drops_is_recorded_once_it_is_back(
    pg_migrated: str, slack: SlackStandin, clock: ManualClock
) -> None:
    await _truncate(pg_migrated)
    real = make_url(pg_migrated)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    await proxy.start()
    url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    svc: Services | None = None
    try:
        async with aiohttp.ClientSession() as http:
            svc = build_services(make_settings(url, slack), clock=clock, session=http).svc
            chat = CutAfterDM(svc.chat, proxy)
            svc.chat = chat
            timer_id = await _seed(svc)
            worker = Worker(svc, worker_id="wa", extra_ticks=[])
            with contextlib.suppress(DatabaseUnavailable):  # the old code failed here, and so did its retry
                await worker.tick()
            assert chat.cut, "the page sent no DM"
            await asyncio.wait_for(chat.back.wait(), 10)
            clock.advance(minutes=1)  # past the lease and any retry a failure scheduled
            await worker.tick()

            assert _dms(slack) == 1, "the L2 page DM was sent twice"
            t_state, p_state, dm, _ = await _state(svc, timer_id)
            assert (t_state, p_state) == (TimerState.DONE, PageState.SENT)
            assert "U02SECOND" in dm
    finally:
        if svc is not None:
            await svc.db.dispose()
        await proxy.stop()
