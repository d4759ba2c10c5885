"""Public routes: /status (HTML, no JavaScript), /status.json, /status/feed.atom, and a draft's preview.

Conditional GETs: a strong ETag of the body; If-None-Match answers 304. Cache-Control lets a CDN in front
(the custom-domain setup in the README) hold a page for `statuspage_cache_seconds`, so an update is public
within a minute."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from bot.context import Services
from bot.models import StatusIncident, StatusUpdate
from bot.states import StatusUpdateState
from bot.statuspage import render
from bot.statuspage.config import PageConfig, load_config
from bot.statuspage.model import IncidentView, Snapshot
from bot.statuspage.store import snapshot, update_view

router = APIRouter()


def page_config(svc: Services) -> PageConfig:
    return load_config(svc.settings.statuspage_file)


async def current(svc: Services) -> Snapshot:
    async with svc.db.session() as s:
        return await snapshot(s, page_config(svc), svc.clock.now(), svc.settings.public_url)


def _conditional(request: Request, body: bytes, media_type: str, svc: Services) -> Response:
    tag = render.etag(body)
    headers = {
        "ETag": tag,
        "Cache-Control": f"public, max-age={max(svc.settings.statuspage_cache_seconds, 0)}",
        "X-Content-Type-Options": "nosniff",
        # Public data: other sites may show it (a status badge, a widget).
        "Access-Control-Allow-Origin": "*",
    }
    wanted = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
    if tag in wanted or "*" in wanted:
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":  # uptime checkers and CDNs probe with HEAD
        headers["Content-Length"] = str(len(body))
        return Response(status_code=200, media_type=media_type, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.api_route("/status", methods=["GET", "HEAD"])
async def status_html(request: Request) -> Response:
    svc: Services = request.app.state.svc
    body = render.render_html(await current(svc)).encode()
    return _conditional(request, body, "text/html; charset=utf-8", svc)


@router.api_route("/status.json", methods=["GET", "HEAD"])
async def status_json(request: Request) -> Response:
    svc: Services = request.app.state.svc
    return _conditional(request, render.json_bytes(await current(svc)), "application/json", svc)


@router.api_route("/status/feed.atom", methods=["GET", "HEAD"])
async def status_feed(request: Request) -> Response:
    svc: Services = request.app.state.svc
    return _conditional(request, render.render_atom(await current(svc)), "application/atom+xml", svc)


async def preview_snapshot(svc: Services, token: str) -> Snapshot | None:
    """The page with one unpublished draft applied, for its author (the token is the capability)."""
    if not token or len(token) > 64:
        return None
    config = page_config(svc)
    now = svc.clock.now()
    async with svc.db.session() as s:
        draft = (
            await s.execute(select(StatusUpdate).where(StatusUpdate.preview_token == token))
        ).scalar_one_or_none()
        if draft is None or draft.state not in (StatusUpdateState.DRAFT, StatusUpdateState.AWAITING_APPROVAL):
            return None
        snap = await snapshot(s, config, now, svc.settings.public_url)
        existing = None
        if draft.incident_id:
            existing = (
                await s.execute(select(StatusIncident).where(StatusIncident.incident_id == draft.incident_id))
            ).scalar_one_or_none()
    view = update_view(draft, config, at=now)
    prior = next((i for i in snap.incidents if existing is not None and i.id == existing.id), None)
    inc = IncidentView(
        id=existing.id if existing is not None else 0,
        title=draft.title,
        status=draft.status,
        impact="operational",
        started_at=existing.created_at if existing is not None else now,
        resolved_at=now if draft.status == "resolved" else None,
        updates=(view, *(prior.updates if prior else ())),
    )
    return snap.with_draft(inc, dict(draft.components or {}))


@router.get("/status/preview/{token}")
async def status_preview(request: Request, token: str) -> Response:
    svc: Services = request.app.state.svc
    snap = await preview_snapshot(svc, token)
    if snap is None:
        return Response(
            "This preview has expired: it was published or discarded.",
            status_code=404,
            media_type="text/plain",
        )
    return Response(
        render.render_html(snap),
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"},
    )
