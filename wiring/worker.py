"""`incident-bot worker`: the worker loop (bot.worker) on the wired Services. Stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from prometheus_client import start_http_server

from bot.config import Settings
from bot.worker import Worker
from wiring.services import open_services


async def run_worker(
    settings: Settings, stop: asyncio.Event | None = None, *, stop_requested: list[int] | None = None
) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if stop_requested:
        stop.set()
    async with open_services(settings) as svc:
        if settings.worker_metrics_port > 0:
            start_http_server(settings.worker_metrics_port, registry=svc.metrics.registry)
        await Worker(svc).run(stop)
