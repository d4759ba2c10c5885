"""App factory: `create_app()` builds a fresh FastAPI app; nothing happens at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from bot.clock import Clock, SystemClock
from bot.config import Settings, get_settings
from bot.context import Services
from bot.db import Database
from bot.logging import configure_logging
from bot.metrics import Metrics
from bot.ports import ChatPort

log = logging.getLogger("incident_bot")


def build_services(
    settings: Settings, *, clock: Clock | None = None, chat: ChatPort | None = None, session: Any = None
) -> tuple[Services, Any]:
    """Everything an app or a worker runs on. Returns the services and the Slack client (or None)."""
    from handlers.blocks import BlockKitRenderer
    from handlers.slack_chat import SlackChat, make_client

    metrics = Metrics()
    client = make_client(
        settings.secret("slack_bot_token") or "xoxb-missing", settings.slack_api_url, settings.slack_timeout
    )
    if session is not None:
        client.session = session
    from handlers.rate_gate import RateGate, sql_store

    db = Database(settings.database_url)
    # One rate gate per process, shared by every caller; 429 pauses are shared with other processes in SQL.
    gate = RateGate(scale=settings.slack_rate_scale, store=sql_store(db))
    svc = Services(
        settings=settings,
        db=db,
        clock=clock or SystemClock(),
        playbook=Services.load_playbook(settings),
        chat=chat or SlackChat(client, metrics, gate),
        render=BlockKitRenderer(),
        metrics=metrics,
    )
    return svc, client


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler

        from handlers.app import build_bolt_app
        from handlers.slack_chat import make_session

        session = make_session(settings.slack_timeout)
        svc, client = build_services(settings, clock=clock, session=session)
        app.state.svc = svc
        app.state.bolt = build_bolt_app(svc, client)
        app.state.handler = AsyncSlackRequestHandler(app.state.bolt)
        try:
            yield
        finally:
            try:
                await svc.tasks.drain(timeout=10)
            except TimeoutError:
                await svc.tasks.cancel_all()
            await svc.aclose()
            await session.close()

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

    from bot.pir.web import router as incidents_router

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
    from urllib.parse import parse_qs

    from slack_sdk.signature import SignatureVerifier

    from handlers.app import command_ack

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
    from sqlalchemy import func, select

    from bot.models import Incident

    try:
        async with svc.db.session() as s:
            rows = (
                await s.execute(
                    select(Incident.severity, func.count())
                    .where(Incident.status != "RESOLVED")
                    .group_by(Incident.severity)
                )
            ).all()
    except Exception:
        return
    counts = dict(rows)
    for sev in ("P0", "P1", "P2", "P3"):
        svc.metrics.open_incidents.labels(severity=sev).set(counts.get(sev, 0))
