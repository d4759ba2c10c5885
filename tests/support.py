"""Test helpers: sign requests exactly as Slack does, drive a bot served over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import select

from bot.context import Services
from bot.models import Incident, TimelineEvent
from sandbox.page import sign as slack_sign

SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-token-123456"


def live_incident(incident_id: str, now: datetime, **columns: Any) -> Incident:
    """A P1 declared ten minutes before `now`, its war room provisioned, nothing paged yet: what the
    escalation tests seed their timers on (`columns` override)."""
    values: dict[str, Any] = dict(
        id=incident_id,
        severity="P1",
        status="NEW",
        summary="orders failing",
        impact="",
        root_cause="",
        next_steps="",
        declared_by="UDECLARER",
        declared_at=now - timedelta(minutes=10),
        updated_at=now,
        plan_version=1,
        cycle=1,
        provision_state="ready",
    )
    return Incident(**(values | columns))


def sign(body: bytes, secret: str = SIGNING_SECRET, ts: int | None = None) -> dict[str, str]:
    """Slack's request signature headers: the one implementation is the sandbox page's."""
    return slack_sign(secret, body, ts)


@dataclass
class BotHarness:
    url: str
    svc: Services
    slack: Any  # SlackStandin
    http: httpx.AsyncClient
    app: Any = None  # the FastAPI app, for tests that reach into Bolt directly

    async def post_signed(self, body: bytes, content_type: str, **headers: str) -> httpx.Response:
        h = {"Content-Type": content_type, **sign(body), **headers}
        return await self.http.post(f"{self.url}/slack/events", content=body, headers=h)

    async def command(
        self,
        text: str,
        *,
        user: str = "UDECLARER",
        channel: str = "CGENERAL",
        trigger_id: str | None = None,
        wait: bool = True,
    ) -> tuple[httpx.Response, str]:
        """POST a signed slash command; returns the HTTP response and its response_url."""
        response_url = self.slack.new_response_url()
        form = {
            "token": "legacy",
            "team_id": "T0STANDIN",
            "channel_id": channel,
            "channel_name": "x",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/incident",
            "text": text,
            "response_url": response_url,
            "trigger_id": trigger_id or f"standin-{uuid.uuid4().hex}",
            "api_app_id": "A0TEST",
        }
        resp = await self.post_signed(urlencode(form).encode(), "application/x-www-form-urlencoded")
        if wait:
            await self.drain()
        return resp, response_url

    async def action(
        self, action_id: str, value: str, *, user: str, channel: str = "", wait: bool = True
    ) -> httpx.Response:
        payload = {
            "type": "block_actions",
            "team": {"id": "T0STANDIN"},
            "user": {"id": user},
            "api_app_id": "A0TEST",
            "trigger_id": f"standin-{uuid.uuid4().hex}",
            "channel": {"id": channel},
            "response_url": self.slack.new_response_url(),
            "actions": [{"action_id": action_id, "value": value, "type": "button", "block_id": "b"}],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        resp = await self.post_signed(body, "application/x-www-form-urlencoded")
        if wait:
            await self.drain()
        return resp

    async def shortcut(
        self,
        callback_id: str,
        *,
        user: str,
        channel: str = "",
        message: dict[str, Any] | None = None,
        wait: bool = True,
    ) -> httpx.Response:
        """POST a signed global shortcut, or a message shortcut when `message` is given."""
        payload: dict[str, Any] = {
            "type": "message_action" if message is not None else "shortcut",
            "callback_id": callback_id,
            "team": {"id": "T0STANDIN"},
            "user": {"id": user},
            "api_app_id": "A0TEST",
            "trigger_id": f"standin-{uuid.uuid4().hex}",
            "action_ts": f"{time.time():.6f}",
        }
        if message is not None:
            payload |= {
                "channel": {"id": channel},
                "message": message,
                "message_ts": message.get("ts"),
                "response_url": self.slack.new_response_url(),
            }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        resp = await self.post_signed(body, "application/x-www-form-urlencoded")
        if wait:
            await self.drain()
        return resp

    async def view_submission(
        self,
        callback_id: str,
        values: dict[str, dict[str, Any]],
        *,
        user: str,
        private_metadata: str = "",
        view_id: str | None = None,
        wait: bool = True,
    ) -> httpx.Response:
        """POST a signed view_submission; `values` is Slack's state.values ({block_id: {action_id: …}})."""
        payload = {
            "type": "view_submission",
            "team": {"id": "T0STANDIN"},
            "user": {"id": user},
            "api_app_id": "A0TEST",
            "trigger_id": f"standin-{uuid.uuid4().hex}",
            "view": {
                "id": view_id or f"V{uuid.uuid4().hex[:10].upper()}",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": private_metadata,
                "state": {"values": values},
            },
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        resp = await self.post_signed(body, "application/x-www-form-urlencoded")
        if wait:
            await self.drain()
        return resp

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, **headers: str
    ) -> httpx.Response:
        body = json.dumps(
            {
                "token": "legacy",
                "team_id": "T0STANDIN",
                "api_app_id": "A0TEST",
                "type": "event_callback",
                "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}",
                "event_time": int(time.time()),
                "event": event,
            }
        ).encode()
        resp = await self.post_signed(body, "application/json", **headers)
        await self.drain()
        return resp

    async def drain(self) -> None:
        await self.svc.tasks.drain(timeout=30)

    async def incidents(self) -> list[Incident]:
        async with self.svc.db.session() as s:
            return list((await s.execute(select(Incident).order_by(Incident.declared_at))).scalars())

    async def events(self, incident_id: str) -> list[TimelineEvent]:
        async with self.svc.db.session() as s:
            stmt = select(TimelineEvent).where(TimelineEvent.incident_id == incident_id)
            return list((await s.execute(stmt.order_by(TimelineEvent.at, TimelineEvent.id))).scalars())

    def replies(self, response_url: str) -> list[dict[str, Any]]:
        return self.slack.responses_for(response_url)

    def last_reply(self, response_url: str) -> str:
        got = self.replies(response_url)
        assert got, "the bot sent nothing to the response_url"
        return str(got[-1].get("text", ""))


def form_values(
    view: dict[str, Any],
    overrides: dict[str, str | None] | None = None,
    /,
    *,
    prefilled: bool = True,
    **fields: str | None,
) -> dict[str, dict[str, Any]]:
    """Slack's state.values for a submitted form: the prefilled values (or blanks, prefilled=False), with the
    fields given (as a dict or as keywords) changed."""
    changed = {**(overrides or {}), **fields}
    values: dict[str, dict[str, Any]] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        bid, el = block["block_id"], block["element"]
        if el["type"] == "static_select":
            chosen = changed.get(bid, (el.get("initial_option") or {}).get("value"))
            opt = {"value": chosen, "text": {"type": "plain_text", "text": str(chosen)}} if chosen else None
            values[bid] = {el["action_id"]: {"type": "static_select", "selected_option": opt}}
        else:
            default = el.get("initial_value") if prefilled else ""
            values[bid] = {el["action_id"]: {"type": "plain_text_input", "value": changed.get(bid, default)}}
    return values


class HeldPosts:
    """The real ChatPort, but `post` waits for `release` (a throttled or hung Slack); with `dms_only`, only
    posts to DM channels (D…) are held."""

    def __init__(self, inner: Any, *, dms_only: bool = False) -> None:
        self.inner = inner
        self.dms_only = dms_only
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def post(self, channel: str, text: str, blocks: Any = None, **kw: Any) -> Any:
        if not self.dms_only or channel.startswith("D"):
            self.entered.set()
            await self.release.wait()
        return await self.inner.post(channel, text, blocks, **kw)
