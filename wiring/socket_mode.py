"""`incident-bot serve --socket-mode`: the same Bolt app over Slack's Socket Mode (no public URL needed).

The FastAPI routes (/healthz, /readyz, /metrics, web view) are not served in this mode; run the worker as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.config import Settings
from bot.logging import configure_logging
from handlers.app import build_bolt_app
from wiring.services import open_wired


async def run_socket_mode(settings: Settings, stop: asyncio.Event | None = None) -> None:
    configure_logging(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with open_wired(settings) as opened:
        bolt = build_bolt_app(opened.svc, opened.client)
        handler = AsyncSocketModeHandler(bolt, settings.secret("slack_app_token"))
        await handler.connect_async()
        try:
            await stop.wait()
        finally:
            await handler.close_async()
