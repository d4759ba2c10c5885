"""Read-only web view: the incident list, one incident's PIR as HTML, and the PIR as Markdown.

Access: a signed link (`?token=`, see bot.pir.links) for that incident (or for the list), or the configured
WEB_ACCESS_TOKEN as `Authorization: Bearer …` or `?access_token=`. Anything else is 403. Pages carry no
JavaScript and a CSP that forbids loading any, and never leak their token through the Referer header.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from bot import timefmt
from bot.context import Services
from bot.models import Incident
from bot.pir import links
from bot.pir.data import load_for
from bot.pir.render import ListRow, render_html, render_list_html, render_markdown

router = APIRouter()

LIST_LIMIT = 500
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}


def _svc(request: Request) -> Services:
    return request.app.state.svc  # type: ignore[no-any-return]


def _has_access_token(request: Request, svc: Services) -> bool:
    configured = svc.settings.secret("web_access_token")
    if not configured:
        return False
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        offered = auth[7:].strip()
    else:
        offered = request.query_params.get("access_token", "")
    return bool(offered) and hmac.compare_digest(offered.encode(), configured.encode())


def _allowed(request: Request, svc: Services, scope: str) -> bool:
    if _has_access_token(request, svc):
        return True
    token = request.query_params.get("token")
    secret, now = svc.settings.link_secret(), svc.clock.now()
    # A list token opens every incident too: whoever holds it can already reach each one from the list.
    return links.verify(token, scope, secret, now) or (
        scope != links.ALL and links.verify(token, links.ALL, secret, now)
    )


def _forbidden() -> Response:
    return PlainTextResponse(
        "403 Forbidden: this link is invalid or has expired. Ask for a fresh one with `/incident pir` "
        "in the war room.",
        status_code=403,
        headers=HEADERS,
    )


def _zone(request: Request, svc: Services) -> ZoneInfo | Response:
    name = request.query_params.get("tz") or svc.settings.display_tz or "UTC"
    found = timefmt.zone(name)
    if found is None:
        message = f"Unknown time zone {name[:60]!r}: use an Area/City name."
        return PlainTextResponse(message, status_code=400, headers=HEADERS)
    return found


def _incident_link(svc: Services, incident_id: str, suffix: str = "") -> str:
    """Relative, freshly signed: works whether the viewer came with a token or with the access token."""
    token = links.sign(incident_id, links.expiry(svc.clock.now()), svc.settings.link_secret())
    return f"/incidents/{quote(incident_id, safe='')}{suffix}?token={token}"


@router.get("/incidents")
async def incident_list(request: Request) -> Response:
    svc = _svc(request)
    if not _allowed(request, svc, links.ALL):
        return _forbidden()
    zone = _zone(request, svc)
    if isinstance(zone, Response):
        return zone
    stmt = select(
        Incident.id,
        Incident.severity,
        Incident.status,
        Incident.summary,
        Incident.declared_at,
        Incident.resolved_at,
        Incident.is_drill,
    )
    async with svc.db.session() as s:
        found = (await s.execute(stmt.order_by(Incident.declared_at.desc()).limit(LIST_LIMIT))).all()
    rows = [
        ListRow(i, sev, st, summary, dec, res, _incident_link(svc, i), bool(drill))
        for i, sev, st, summary, dec, res, drill in found
    ]
    return HTMLResponse(render_list_html(rows, zone), headers=HEADERS)


async def _load_allowed(request: Request, incident_id: str) -> Response | tuple[Any, Any, Any]:
    """Access check, display zone and the PIR data, or the response that refuses/explains."""
    svc = _svc(request)
    if not _allowed(request, svc, incident_id):
        return _forbidden()
    zone = _zone(request, svc)
    if isinstance(zone, Response):
        return zone
    pir = await load_for(svc, incident_id)
    if pir is None:
        return PlainTextResponse("No such incident.", status_code=404, headers=HEADERS)
    return svc, zone, pir


@router.get("/incidents/{incident_id}")
async def incident_page(incident_id: str, request: Request) -> Response:
    loaded = await _load_allowed(request, incident_id)
    if isinstance(loaded, Response):
        return loaded
    svc, zone, pir = loaded
    nav = [("Markdown", _incident_link(svc, incident_id, "/pir.md"))]
    if _allowed(request, svc, links.ALL):
        list_token = links.sign(links.ALL, links.expiry(svc.clock.now()), svc.settings.link_secret())
        nav.insert(0, ("All incidents", f"/incidents?token={list_token}"))
    # Rendering a big timeline is CPU work: keep it off the loop that acks Slack within 3 s.
    body = await run_in_threadpool(render_html, pir, svc.playbook.severities, zone, nav)
    return HTMLResponse(body, headers=HEADERS)


@router.get("/incidents/{incident_id}/pir.md")
async def incident_markdown(incident_id: str, request: Request) -> Response:
    loaded = await _load_allowed(request, incident_id)
    if isinstance(loaded, Response):
        return loaded
    svc, zone, pir = loaded
    body = await run_in_threadpool(render_markdown, pir, svc.playbook.severities, zone)
    headers = {**HEADERS, "Content-Disposition": f'inline; filename="{incident_id}-pir.md"'}
    return PlainTextResponse(body, media_type="text/markdown; charset=utf-8", headers=headers)
