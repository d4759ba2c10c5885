"""`incident-bot serve --socket-mode`: the same Bolt app over Slack's Socket Mode (no public URL needed).

The FastAPI routes (/healthz, /readyz, /metrics, web view) are not served in this mode; run the worker as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from bot.config import Settings
from bot.logging import configure_logging


async def run_socket_mode(settings: Settings, stop: asyncio.Event | None = None) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.main import build_services
    from handlers.app import build_bolt_app
    from handlers.slack_chat import make_session

    configure_logging(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with make_session(settings.slack_timeout) as session:
        svc, client = build_services(settings, session=session)
        handler = AsyncSocketModeHandler(build_bolt_app(svc, client), settings.secret("slack_app_token"))
        await handler.connect_async()
        try:
            await stop.wait()
        finally:
            await handler.close_async()
            await svc.aclose()
