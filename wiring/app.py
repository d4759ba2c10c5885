"""App factory: `create_app()` builds a fresh FastAPI app (serve, tests, the sandbox); nothing happens at
import time. The Slack route: the front door (bot/ingress.py: size, signature, strict parse) first, then the
slash-command fast path on the command table, or Bolt for interactivity and events."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from sqlalchemy import func, select

from bot import ingress
from bot.alerts.web import router as alerts_router
from bot.clock import Clock
from bot.config import Settings, get_settings
from bot.context import Services
from bot.logging import configure_logging
from bot.models import Incident
from bot.oncall.web import router as schedules_router
from bot.pir.web import router as incidents_router
from bot.states import IncidentStatus
from bot.statuspage.web import router as status_router
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
            yield

    app = FastAPI(title="incident-bot", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/slack/events")
    async def slack_events(request: Request) -> Response:
        return await _slack_events(request)

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
    app.include_router(status_router)  # /status, /status.json, /status/feed.atom
    app.include_router(alerts_router)
    app.include_router(schedules_router)
    return app


async def _slack_events(request: Request) -> Response:
    """Size, signature, then shape (bot/ingress.py) before anything else; then the slash fast path or Bolt.

    Slash commands skip Bolt's middleware pipeline (most of the ack's CPU, see docs/performance.md) and run
    the same listener code; interactivity and events go through Bolt with the body already verified,
    parsed and cleaned."""
    svc: Services = request.app.state.svc
    settings = svc.settings
    try:
        raw = await ingress.read_body(request.headers, request.stream(), settings.slack_max_body)
        ingress.verify(raw, request.headers, settings.secret("slack_signing_secret"))
        inbound = ingress.parse(raw, request.headers.get("content-type", ""), settings.slash_command)
    except ingress.Refused as exc:
        ingress.refuse(exc, request.url.path)
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    if inbound.kind == "ssl_check":
        return Response(status_code=200)
    if inbound.kind == "url_verification":
        return JSONResponse({"challenge": inbound.body["challenge"]})
    if inbound.kind == "command":
        # arch's command table (handlers/table.py) answers, on the form the front door already checked.
        payload = await command_ack(svc, inbound.body)
        return JSONResponse(payload) if payload else Response(status_code=200)
    return await _dispatch_to_bolt(request, inbound)


async def _dispatch_to_bolt(request: Request, inbound: ingress.Inbound) -> Response:
    bolt_req = AsyncBoltRequest(body=inbound.raw.decode("utf-8"), headers=dict(request.headers))
    # Bolt re-parses the raw text; hand it the cleaned structure instead (no NUL or lone surrogate).
    bolt_req.body = inbound.body
    bolt_req.context = build_async_context(AsyncBoltContext({}), inbound.body)
    try:
        bolt_resp = await request.app.state.bolt.async_dispatch(bolt_req)
    except Exception as exc:  # a payload shape Bolt chokes on: the caller's fault, not a 500
        log.warning("refused %s: 400 Bolt could not dispatch (%s)", request.url.path, type(exc).__name__)
        return JSONResponse({"error": "malformed payload"}, status_code=400)
    if bolt_resp.status >= 500:
        log.warning("refused %s: 400 Bolt answered %d", request.url.path, bolt_resp.status)
        return JSONResponse({"error": "malformed payload"}, status_code=400)
    return to_starlette_response(bolt_resp)


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
