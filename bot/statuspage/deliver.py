"""Outbox kinds of the status page: signed webhook POSTs and the Atlassian Statuspage mirror.

Both run from bot.outbox (claimed with a lease, retried with backoff, given up after a day), so each update
reaches each subscriber once across restarts: the row is marked sent after a 2xx. A process that dies between
the POST and that mark sends it again after the lease, with the same X-Status-Delivery id, so receivers can
drop the repeat."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlparse

import httpx
from sqlalchemy import select

from bot.context import Services
from bot.models import OutboxMessage, StatusIncident, StatusSubscriber, StatusUpdate
from bot.ports import ChatError
from bot.statuspage.config import load_config
from bot.statuspage.render import update_text
from bot.statuspage.store import update_view

TIMEOUT = 10.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the timestamp is signed so a captured request can
    be refused as a replay."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    expected = sign(secret, parts.get("t", ""), body)
    return hmac.compare_digest(expected, header)


def _http_error(method: str, exc: Exception | int) -> ChatError:
    if isinstance(exc, int):
        # 5xx, 429 and Atlassian's 420 are worth retrying; other 4xx will not get better.
        err = f"http_{exc}" if exc >= 500 else ("ratelimited" if exc in (420, 429) else f"rejected_{exc}")
        return ChatError(method, err)
    return ChatError(method, "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_error")


async def _payload(
    svc: Services, update_id: int
) -> tuple[StatusUpdate, StatusIncident, dict[str, Any]] | None:
    async with svc.db.session() as s:
        u = await s.get(StatusUpdate, update_id)
        if u is None or u.status_incident_id is None:
            return None
        pub = await s.get(StatusIncident, u.status_incident_id)
    if pub is None:
        return None
    view = update_view(u, load_config(svc.settings.statuspage_file))
    base = svc.settings.public_url.rstrip("/")
    body = {
        "type": "status_update",
        "page": {"url": f"{base}/status"},
        "incident": {
            "id": pub.id,
            "name": pub.title,
            "status": pub.status,
            "url": f"{base}/status#incident-{pub.id}",
        },
        "update": {
            "id": u.id,
            "status": u.status,
            "body": u.message,
            "created_at": (u.published_at or u.created_at).isoformat(),
            "affected_components": [{"name": n, "status": st} for n, st in view.components],
        },
        "text": update_text(pub.title, view),
    }
    return u, pub, body


async def webhook_effect(svc: Services, row: OutboxMessage) -> dict[str, Any] | None:
    """The `status_webhook` effect (registered at wiring): one signed POST of one update to one subscriber."""
    p = row.payload
    async with svc.db.session() as s:
        sub = await s.get(StatusSubscriber, int(p["subscriber_id"]))
    if sub is None or not sub.active:
        return {"skipped": "unsubscribed"}
    got = await _payload(svc, int(p["update_id"]))
    if got is None:
        return {"skipped": "update gone"}
    body = json.dumps(got[2], separators=(",", ":"), ensure_ascii=False).encode()
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "incident-bot-statuspage/1",
        "X-Status-Signature": sign(sub.secret, ts, body),
        "X-Status-Delivery": f"{p['update_id']}-{sub.id}",
    }
    try:
        resp = await svc.http.post(sub.url, content=body, headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise _http_error("webhook", exc) from None
    if resp.status_code >= 300:
        raise _http_error("webhook", resp.status_code)
    return {"status": resp.status_code}


async def atlassian_effect(svc: Services, row: OutboxMessage) -> dict[str, Any] | None:
    """Mirror one update: create the Atlassian incident on the first update, PATCH it afterwards, and PATCH
    each mapped component's status."""
    page = svc.settings.statuspage_atlassian_page_id
    if not page:
        return {"skipped": "not configured"}
    got = await _payload(svc, int(row.payload["update_id"]))
    if got is None:
        return {"skipped": "update gone"}
    u, pub, _ = got
    config = load_config(svc.settings.statuspage_file)
    ids = {
        k: config.atlassian_components[k] for k in (u.components or {}) if k in config.atlassian_components
    }
    base = svc.settings.statuspage_atlassian_url.rstrip("/")
    headers = {"Authorization": f"OAuth {svc.settings.secret('statuspage_atlassian_api_key')}"}
    incident: dict[str, Any] = {
        "name": pub.title,
        "status": u.status,
        "body": u.message,
        "component_ids": list(ids.values()),
        "components": {cid: u.components[k] for k, cid in ids.items()},
    }

    async def call(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = await svc.http.request(
                method, f"{base}{path}", json=body, headers=headers, timeout=TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise _http_error("atlassian", exc) from None
        if resp.status_code >= 300:
            raise _http_error("atlassian", resp.status_code)
        data = resp.json() if resp.content else {}
        return data if isinstance(data, dict) else {}

    if pub.external_id is None:
        created = await call("POST", f"/pages/{page}/incidents", {"incident": incident})
        async with svc.db.session() as s:
            r = await s.get(StatusIncident, pub.id)
            if r is not None:
                r.external_id = str(created.get("id") or "")[:64] or None
        external = created.get("id")
    else:
        await call("PATCH", f"/pages/{page}/incidents/{pub.external_id}", {"incident": incident})
        external = pub.external_id
    for key, cid in ids.items():
        await call("PATCH", f"/pages/{page}/components/{cid}", {"component": {"status": u.components[key]}})
    return {"incident": external}


async def add_subscriber(svc: Services, url: str) -> tuple[int, str]:
    """Register a webhook; returns its id and the signing secret to give to its owner."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("a webhook URL must be http(s)://host/…")
    secret = secrets.token_hex(32)
    async with svc.db.session() as s:
        sub = StatusSubscriber(
            kind="webhook", url=url, secret=secret, active=True, created_at=svc.clock.now()
        )
        s.add(sub)
        await s.flush()
        return sub.id, secret


async def subscribers(svc: Services) -> list[StatusSubscriber]:
    async with svc.db.session() as s:
        return list((await s.execute(select(StatusSubscriber).order_by(StatusSubscriber.id))).scalars())
