"""`incident-bot worker`: claims due timers (pages, reminders), runs monitor ticks. Stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.config import Settings
from bot.context import Services
from bot.db import DatabaseUnavailable
from bot.timers import recover_stale, run_due

log = logging.getLogger("incident_bot.worker")

Tick = Callable[[Services], Awaitable[None]]


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
        self.extra_ticks = extra_ticks if extra_ticks is not None else default_ticks()
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


def default_ticks() -> list[Tick]:
    from bot.health.monitor import monitor_tick
    from bot.outbox import outbox_tick

    return [monitor_tick, outbox_tick]


async def run_worker(
    settings: Settings, stop: asyncio.Event | None = None, *, stop_requested: list[int] | None = None
) -> None:
    from bot.main import build_services

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if stop_requested:
        stop.set()
    from handlers.slack_chat import make_session

    async with make_session(settings.slack_timeout) as session:
        svc, _client = build_services(settings, session=session)
        if settings.worker_metrics_port > 0:
            from prometheus_client import start_http_server

            start_http_server(
                settings.worker_metrics_port, addr=settings.worker_metrics_host, registry=svc.metrics.registry
            )
        try:
            await Worker(svc).run(stop)
        finally:
            await svc.aclose()
