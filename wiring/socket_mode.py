"""`incident-bot serve --socket-mode`: the same Bolt app over Slack's Socket Mode (no public URL needed).

The FastAPI routes (/healthz, /readyz, /metrics, web view) are not served in this mode; run the worker as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot import ingress
from bot.config import Settings
from bot.logging import configure_logging
from handlers.app import build_bolt_app
from wiring.services import open_wired


class FrontDoorSocketModeHandler(AsyncSocketModeHandler):
    """Socket Mode with the front door's shape checks and text cleaning (bot/ingress.py) before Bolt, as over
    HTTP: the WebSocket is authenticated by the app token and Slack decoded the payload, but what users typed
    (NUL bytes, lone surrogates) and the fields the listeners index into are checked the same way."""

    def __init__(self, app: AsyncApp, app_token: str, command_name: str) -> None:
        super().__init__(app, app_token)
        self.command_name = command_name

    async def handle(self, client: Any, req: SocketModeRequest) -> None:
        if req.type in ("slash_commands", "interactive", "events_api"):
            try:
                req.payload = ingress.check_socket_payload(req.payload, self.command_name)
            except ingress.Refused as exc:
                ingress.refuse(exc, "socket mode payload")
                # Acknowledged, so Slack does not redeliver what will never be taken (over HTTP: the 400).
                await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
                return
        await super().handle(client, req)


async def run_socket_mode(settings: Settings, stop: asyncio.Event | None = None) -> None:
    configure_logging(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with open_wired(settings) as opened:
        bolt = build_bolt_app(opened.svc, opened.client)
        handler = FrontDoorSocketModeHandler(bolt, settings.secret("slack_app_token"), settings.slash_command)
        await handler.connect_async()
        try:
            await stop.wait()
        finally:
            await handler.close_async()
