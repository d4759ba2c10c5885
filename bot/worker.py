"""The worker loop: claims due timers (pages, reminders) and runs the registered ticks (outbox, monitor,
retention). `incident-bot worker` (wiring/worker.py) runs it and stops it cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import timedelta

from bot.context import Services
from bot.db import DatabaseUnavailable
from bot.dispatch import Tick, run_due
from bot.timers import recover_stale

log = logging.getLogger("incident_bot.worker")


class Worker:
    def __init__(
        self,
        svc: Services,
        *,
        worker_id: str | None = None,
        lease: timedelta = timedelta(seconds=30),
        poll: float | None = None,
        batch: int = 100,
        extra_ticks: list[Tick] | None = None,
    ) -> None:
        self.svc = svc
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease = lease
        self.poll = svc.settings.worker_poll_interval if poll is None else poll
        self.batch = batch
        # The ticks registered at wiring (outbox, monitor, retention) unless a test picks its own.
        self.extra_ticks = extra_ticks if extra_ticks is not None else svc.dispatch.ticks
        self.fired = 0

    async def tick(self) -> int:
        """One pass: give back claims of dead workers, then fire everything due (in due order)."""
        await recover_stale(self.svc.db, self.svc.clock.now(), self.lease)
        total = 0
        while True:
            n = await run_due(self.svc, self.id, limit=self.batch)
            total += n
            if n < self.batch:
                break
        for extra in self.extra_ticks:
            try:
                await extra(self.svc)
            except Exception:
                log.exception("worker tick %s failed", getattr(extra, "__name__", extra))
        self.fired += total
        return total

    async def run(self, stop: asyncio.Event) -> None:
        log.info("worker %s started (poll %.2fs)", self.id, self.poll)
        while not stop.is_set():
            try:
                await self.tick()
            except DatabaseUnavailable as exc:
                log.warning("database unavailable: %s; retrying", exc)
            except Exception:
                log.exception("worker pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll)
        log.info("worker %s stopped", self.id)
