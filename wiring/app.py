"""App factory: `create_app()` builds a fresh FastAPI app (serve, tests, the sandbox); nothing happens at
import time. The Slack route is Bolt's request handler plus the slash-command fast path."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, select

from bot.clock import Clock
from bot.config import Settings, get_settings
from bot.context import Services
from bot.logging import configure_logging
from bot.models import Incident
from bot.pir.web import router as incidents_router
from bot.states import IncidentStatus
from handlers.app import build_bolt_app, command_ack
from wiring.services import open_wired

log = logging.getLogger("incident_bot")


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_wired(settings, clock=clock) as opened:
            app.state.svc = opened.svc
            app.state.bolt = build_bolt_app(opened.svc, opened.client)
            app.state.handler = AsyncSlackRequestHandler(app.state.bolt)
            yield

    app = FastAPI(title="incident-bot", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.post("/slack/events")
    async def slack_events(request: Request) -> Response:
        fast = await _slash_command_fast_path(request)
        if fast is not None:
            return fast
        return await request.app.state.handler.handle(request)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        ok = await request.app.state.svc.db.ping()
        return JSONResponse({"database": "ok" if ok else "unreachable"}, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        svc: Services = request.app.state.svc
        await _refresh_gauges(svc)
        return PlainTextResponse(svc.metrics.render(), media_type="text/plain; version=0.0.4")

    app.include_router(incidents_router)
    return app


async def _slash_command_fast_path(request: Request) -> Response | None:
    """Slash commands skip Bolt's middleware pipeline (most of the ack's CPU, see docs/performance.md): the
    signature is checked with the SDK's verifier and the same listener code answers. Everything else, and
    anything unusual, goes through Bolt."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    body = await request.body()
    if b"command=" not in body or b"payload=" in body:
        return None
    svc: Services = request.app.state.svc
    verifier = SignatureVerifier(svc.settings.secret("slack_signing_secret"))
    timestamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature", "")
    if not timestamp.isdigit() or not signature or not verifier.is_valid(body, timestamp, signature):
        return JSONResponse({"error": "invalid request"}, status_code=401)
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
    if form.get("ssl_check") == "1" or "command" not in form:
        return Response(status_code=200)
    payload = await command_ack(svc, form)
    return JSONResponse(payload) if payload else Response(status_code=200)


async def _refresh_gauges(svc: Services) -> None:
    try:
        async with svc.db.session() as s:
            rows = (
                await s.execute(
                    select(Incident.severity, func.count())
                    .where(Incident.status != IncidentStatus.RESOLVED)
                    .group_by(Incident.severity)
                )
            ).all()
    except Exception:
        return
    counts = dict(rows)
    for sev in ("P0", "P1", "P2", "P3"):
        svc.metrics.open_incidents.labels(severity=sev).set(counts.get(sev, 0))
