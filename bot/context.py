"""The services one app instance runs on, built once by create_app (or a test) and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from bot.clock import Clock
from bot.config import Settings
from bot.db import Database
from bot.dispatch import Dispatch, run_due
from bot.metrics import Metrics
from bot.playbook import Playbook
from bot.ports import ChatPort, Renderer
from bot.tasks import TaskGroup


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock
    playbook: Playbook
    chat: ChatPort
    render: Renderer
    metrics: Metrics
    tasks: TaskGroup = field(default_factory=TaskGroup)
    # Timer kinds, outbox effects and worker ticks, registered by the wiring (wiring/services.py).
    dispatch: Dispatch = field(default_factory=Dispatch)
    _http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """One pooled client for outbound HTTP (probes): building one per check blocks the loop ~100 ms."""
        if self._http is None or self._http.is_closed:
            self._http = httpx.AsyncClient(follow_redirects=False)
        return self._http

    async def kick(self, incident_id: str | None = None, *, by: str = "web") -> int:
        """Fire the timers due now (of one incident) here, without waiting for the worker's next poll: the
        L1 page at declare, a forced escalation, steps due after a reopen. Safe beside running workers."""
        return await run_due(self, by, incident_id=incident_id)

    async def aclose(self) -> None:
        await self.tasks.drain(timeout=10)
        if self._http is not None:
            await self._http.aclose()
        await self.db.dispose()

    @classmethod
    def load_playbook(cls, settings: Settings) -> Playbook:
        return Playbook.load(
            settings.severities_file, settings.oncall_file, settings.routing_file, settings.escalation_file
        )
