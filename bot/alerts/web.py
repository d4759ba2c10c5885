"""HTTP adapter: POST /alerts/alertmanager and POST /alerts/grafana.

Order matters: credentials first (401, nothing read or stored), then the size bound (413), then validation
(400 with the reason), then the raw body is committed to SQL, and only then the 2xx: both senders retry
on timeouts and errors, so the answer is quick and the work happens after it in a tracked task."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from bot.alerts import flows
from bot.alerts.auth import authorized
from bot.alerts.payload import PayloadError, parse
from bot.context import Services
from bot.db import DatabaseUnavailable

log = logging.getLogger("incident_bot.alerts")
router = APIRouter()


class _TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():  # chunked bodies have no Content-Length: count as we read
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _receive(request: Request, source: str) -> Response:
    svc: Services = request.app.state.svc
    rejected = svc.metrics.alerts_rejected
    credential = svc.settings.secret(f"{source}_credentials")
    if not authorized(request.headers.get("authorization"), credential):
        rejected.labels(source=source, reason="unauthorized").inc()
        headers = {"WWW-Authenticate": 'Basic realm="incident-bot alerts"'}
        return JSONResponse({"error": "unauthorized"}, status_code=401, headers=headers)
    limit = svc.settings.alerts_max_body
    try:
        body = await _body(request, limit)
    except _TooLarge:
        rejected.labels(source=source, reason="too_large").inc()
        return JSONResponse({"error": f"body larger than {limit} bytes"}, status_code=413)
    try:
        notification = parse(source, body)
    except PayloadError as exc:
        rejected.labels(source=source, reason="malformed").inc()
        return JSONResponse({"error": "malformed", "reason": exc.reason}, status_code=400)
    try:
        nid = await flows.store(svc, notification, body)  # committed before the sender hears "accepted"
    except DatabaseUnavailable:
        # Not stored, so not accepted: a 5xx makes Grafana and Alertmanager send it again.
        return JSONResponse({"error": "database unavailable, retry"}, status_code=503)
    svc.tasks.spawn(flows.process(svc, nid), f"alerts-{nid}")
    return JSONResponse(
        {"status": "accepted", "id": nid, "alerts": len(notification.alerts)}, status_code=202
    )


@router.post("/alerts/alertmanager")
async def alertmanager(request: Request) -> Response:
    return await _receive(request, "alertmanager")


@router.post("/alerts/grafana")
async def grafana(request: Request) -> Response:
    return await _receive(request, "grafana")
