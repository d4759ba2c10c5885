"""The sandbox web page: a tiny Slack over the Slack stand-in, driving the real bot the way Slack would.

The page never calls the bot's code: every click becomes a Slack-shaped request (slash command, block_actions,
view_submission, Events API callback) signed with the bot's signing secret and POSTed to its `/slack/events`.
What it shows is what the bot really sent to the stand-in (messages, pins, modals) plus the ephemeral answers
the bot posted to the response_urls the page handed out.

JSON API (all under the sandbox URL): GET /api/state, GET /api/events (server-sent events: a version number
after every change), POST /api/command, /api/message, /api/action, /api/view, /api/view/close, /api/reaction,
/api/join, /api/factory/{mode}.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from sandbox.factory_sim import SIM_MODES, FactoryServers
from sandbox.slack_standin import SlackStandin

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"sandbox.js": "text/javascript", "sandbox.css": "text/css"}
APP_ID = "A0STANDIN"
SLACK_ACK_BUDGET = 3.0  # Slack shows an error when an app takes longer than this to ack
BOT_TIMEOUT = 10.0
_MENTION = re.compile(r"(?<![<\w])@([A-Za-z0-9._-]+)")
_CHANNEL_REF = re.compile(r"(?<![<\w])#([a-z0-9_-]+)")
_BARE_URL = re.compile(r"(?<![<|\w])https?://[^\s<>]*[^\s<>.,;:!?)'\"]")


@dataclass(frozen=True)
class SandboxUser:
    id: str
    name: str  # the Slack handle
    real_name: str
    role: str = ""


@dataclass
class Ephemeral:
    """An answer the bot sent to a response_url (or its ack body): seen by `user` only, unless in_channel."""

    id: str
    channel: str
    user: str
    ts: str
    text: str
    blocks: list[Any] | None = None
    attachments: list[Any] | None = None
    in_channel: bool = False


@dataclass
class _Origin:
    user: str
    channel: str
    ephemeral: str | None = None  # the ephemeral message whose button made this response_url
    posted: list[str] = field(default_factory=list)  # ephemerals posted through it, oldest first


def sign(secret: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    """Slack's request signature: v0=HMAC-SHA256(secret, "v0:{ts}:{body}")."""
    ts = int(time.time()) if ts is None else ts
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


def _now_ts() -> str:
    return f"{time.time():.6f}"


class SandboxPage:
    def __init__(
        self,
        standin: SlackStandin,
        *,
        signing_secret: str,
        bot_url: str,
        users: list[SandboxUser],
        default_viewer: str,
        factory: FactoryServers | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.standin = standin
        self.secret = signing_secret
        self.bot_url = bot_url.rstrip("/")
        self.users = {u.id: u for u in users}
        self.default_viewer = default_viewer
        self.factory = factory
        self.info = info or {}
        self.version = 0
        self._lock = threading.Lock()
        self._ephemerals: list[Ephemeral] = []
        self._origins: dict[str, _Origin] = {}  # response_url id -> who/where it was handed to
        self._reactions: dict[tuple[str, str], dict[str, set[str]]] = {}  # people's reactions by message
        self._read: dict[tuple[str, str], str] = {}  # (viewer, channel) -> last ts read
        self._closed_views: set[str] = set()
        self._view_overrides: dict[str, dict[str, Any]] = {}  # response_action=update answers
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._http: httpx.AsyncClient | None = None
        standin.listeners.append(self._on_standin)

    # ---- change notification ---------------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._changed = loop, asyncio.Event()

    def bump(self) -> None:
        """Something visible changed: wake every /api/events stream (callable from any thread)."""
        with self._lock:
            self.version += 1
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    def _on_standin(self, event: dict[str, Any]) -> None:
        if event.get("type") == "response":
            self._record_response(str(event.get("id")), event.get("payload") or {})
        self.bump()

    async def close(self) -> None:
        self._closing = True
        self._wake()
        with contextlib.suppress(ValueError):
            self.standin.listeners.remove(self._on_standin)
        if self._http is not None:
            await self._http.aclose()

    # ---- ephemeral answers -----------------------------------------------------------------------------

    def _record_response(self, rid: str, payload: dict[str, Any]) -> None:
        with self._lock:
            origin = self._origins.get(rid)
            if origin is None:
                return
            target = origin.posted[-1] if origin.posted else origin.ephemeral
            if payload.get("delete_original"):
                self._ephemerals = [e for e in self._ephemerals if e.id != target]
                return
            text = str(payload.get("text") or "")
            blocks, attachments = payload.get("blocks"), payload.get("attachments")
            existing = next((e for e in self._ephemerals if e.id == target), None)
            if payload.get("replace_original") and existing is not None:
                existing.text, existing.blocks, existing.attachments = text, blocks, attachments
                return
            eph = Ephemeral(
                f"E{uuid.uuid4().hex[:12]}",
                origin.channel,
                origin.user,
                _now_ts(),
                text,
                blocks,
                attachments,
                in_channel=payload.get("response_type") == "in_channel",
            )
            self._ephemerals.append(eph)
            origin.posted.append(eph.id)

    def _response_url(self, user: str, channel: str, ephemeral: str | None = None) -> tuple[str, str]:
        url = self.standin.new_response_url()
        rid = url.rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            self._origins[rid] = _Origin(user, channel, ephemeral)
        return url, rid

    def _note(self, user: str, channel: str, text: str, rid: str | None = None) -> None:
        """An ephemeral from "Slackbot" (the ack body, or a Slack-side error such as a timeout)."""
        eph = Ephemeral(f"E{uuid.uuid4().hex[:12]}", channel, user, _now_ts(), text)
        with self._lock:
            self._ephemerals.append(eph)
            if rid and rid in self._origins:
                self._origins[rid].posted.append(eph.id)
        self.bump()

    # ---- talking to the bot like Slack -----------------------------------------------------------------

    async def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=BOT_TIMEOUT)
        return self._http

    async def _post_to_bot(self, body: bytes, content_type: str) -> tuple[int, str, float]:
        """POST a signed request to the bot: (status, body, seconds); status 0 when it never answered."""
        headers = {"Content-Type": content_type, **sign(self.secret, body)}
        started = time.monotonic()
        try:
            r = await (await self._client()).post(
                f"{self.bot_url}/slack/events", content=body, headers=headers
            )
        except httpx.TimeoutException:
            return 0, "operation_timeout", time.monotonic() - started
        except httpx.HTTPError as exc:
            return 0, f"dispatch_failed ({type(exc).__name__})", time.monotonic() - started
        return r.status_code, r.text, time.monotonic() - started

    async def _post_payload(self, payload: dict[str, Any]) -> tuple[int, str, float]:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self._post_to_bot(body, "application/x-www-form-urlencoded")

    async def _post_event(self, event: dict[str, Any]) -> tuple[int, str, float]:
        envelope = {
            "token": "legacy",
            "team_id": self.standin.team_id,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:12].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": self.standin.team_id, "user_id": self.standin.bot_user_id, "is_bot": True}
            ],
        }
        return await self._post_to_bot(json.dumps(envelope).encode(), "application/json")

    def _user_obj(self, user: str) -> dict[str, Any]:
        u = self.users.get(user)
        name = u.name if u else user.lower()
        return {"id": user, "username": name, "name": name, "team_id": self.standin.team_id}

    def _team(self) -> dict[str, str]:
        return {"id": self.standin.team_id, "domain": "sandbox"}

    def _channel_name(self, channel: str) -> str:
        ch = self.standin.channels.get(channel)
        if ch is None or ch.is_im:
            return "directmessage"
        return ch.name

    def _slackify(self, text: str) -> str:
        """What a Slack client sends for what was typed: @handle -> <@U…|handle>, #name -> <#C…|name>,
        a bare link -> <https://…>."""
        handles = {u.name.lower(): u.id for u in self.users.values()} | {
            uid.lower(): uid for uid in self.users
        }

        def user(m: re.Match[str]) -> str:
            uid = handles.get(m.group(1).lower())
            return f"<@{uid}|{self.users[uid].name}>" if uid else m.group(0)

        def channel(m: re.Match[str]) -> str:
            ch = self.standin.channel_by_name(m.group(1))
            return f"<#{ch.id}|{ch.name}>" if ch else m.group(0)

        parts = re.split(r"(<[^<>]*>)", _BARE_URL.sub(lambda m: f"<{m.group(0)}>", text))
        return "".join(
            p if p.startswith("<") else _CHANNEL_REF.sub(channel, _MENTION.sub(user, p)) for p in parts
        )

    def _problem(self, user: str, channel: str, status: int, body: str, took: float, rid: str | None) -> None:
        if status != 200:
            why = body if status == 0 else f"http_error {status}"
            self._note(user, channel, f'⚠️ /incident failed with the error "{why}"', rid)
        elif took > SLACK_ACK_BUDGET:
            self._note(
                user, channel, f"⚠️ The app took {took:.1f} s to answer; Slack gives up after 3 s.", rid
            )

    async def command(self, user: str, channel: str, text: str) -> dict[str, Any]:
        response_url, rid = self._response_url(user, channel)
        form = {
            "token": "legacy",
            "team_id": self.standin.team_id,
            "team_domain": "sandbox",
            "channel_id": channel,
            "channel_name": self._channel_name(channel),
            "user_id": user,
            "user_name": self._user_obj(user)["name"],
            "command": "/incident",
            "text": self._slackify(text),
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": self.standin.issue_trigger_id(user),
        }
        status, body, took = await self._post_to_bot(
            urlencode(form).encode(), "application/x-www-form-urlencoded"
        )
        ack = _json_or_text(body) if status == 200 else None
        if isinstance(ack, dict) and (ack.get("text") or ack.get("blocks")):
            self._record_response(rid, ack)  # Slack shows the ack body like a response_url message
            self.bump()
        elif isinstance(ack, str) and ack.strip():
            self._note(user, channel, ack, rid)
        self._problem(user, channel, status, body, took, rid)
        return {"status": status, "ack": ack, "seconds": round(took, 3)}

    async def action(self, data: dict[str, Any]) -> dict[str, Any]:
        user, channel = str(data["user"]), str(data["channel"])
        element = dict(data.get("action") or {})
        eph_id = data.get("ephemeral")
        msg = None if eph_id else self.standin.message(channel, str(data.get("ts") or ""))
        response_url, rid = self._response_url(user, channel, str(eph_id) if eph_id else None)
        action = {
            "action_id": element.get("action_id", ""),
            "block_id": data.get("block_id") or "",
            "type": element.get("type", "button"),
            "action_ts": _now_ts(),
        }
        for key in ("text", "value", "style", "url", "selected_option", "selected_user"):
            if key in element:
                action[key] = element[key]
        container = {"type": "message", "message_ts": data.get("ts") or "", "channel_id": channel}
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user_obj(user),
            "api_app_id": APP_ID,
            "token": "legacy",
            "container": container | {"is_ephemeral": bool(eph_id)},
            "trigger_id": self.standin.issue_trigger_id(user),
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": self._channel_name(channel)},
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [action],
        }
        if msg is not None:
            payload["message"] = {"type": "message", "user": msg.user, "ts": msg.ts, "text": msg.text}
            payload["message"] |= {"blocks": msg.blocks or []}
        status, body, took = await self._post_payload(payload)
        self._problem(user, channel, status, body, took, rid)
        return {"status": status, "seconds": round(took, 3)}

    async def submit_view(self, user: str, view_id: str, values: dict[str, Any]) -> dict[str, Any]:
        record = self.standin.views.get(view_id)
        if record is None:
            return {"status": 404, "errors": {}, "closed": True}
        view = dict(self._view_overrides.get(view_id) or record["view"])
        view["state"] = {"values": values}
        payload = {
            "type": "view_submission",
            "team": self._team(),
            "user": self._user_obj(user),
            "api_app_id": APP_ID,
            "token": "legacy",
            "trigger_id": self.standin.issue_trigger_id(user),
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        status, body, took = await self._post_payload(payload)
        ack = _json_or_text(body) if status == 200 else None
        answer = ack if isinstance(ack, dict) else {}
        kind = answer.get("response_action")
        if status != 200:
            return {"status": status, "errors": {}, "closed": False, "error": body}
        if kind == "errors":
            return {"status": status, "errors": answer.get("errors") or {}, "closed": False}
        with self._lock:
            if kind == "update" and isinstance(answer.get("view"), dict):
                self._view_overrides[view_id] = record["view"] | answer["view"]
            elif kind == "clear":
                self._closed_views.update(v for v, r in self.standin.views.items() if r.get("user") == user)
            else:  # a plain ack (or push, which we show as closing): the modal goes away
                self._closed_views.add(view_id)
        self.bump()
        return {"status": status, "errors": {}, "closed": view_id in self._closed_views, "seconds": took}

    def close_view(self, view_id: str) -> None:
        with self._lock:
            self._closed_views.add(view_id)
        self.bump()

    async def react(self, user: str, channel: str, ts: str, name: str = "pushpin") -> dict[str, Any]:
        """Toggle a person's reaction; the bot hears reaction_added / reaction_removed."""
        msg = self.standin.message(channel, ts)
        with self._lock:
            who = self._reactions.setdefault((channel, ts), {}).setdefault(name, set())
            added = user not in who
            (who.add if added else who.discard)(user)
        self.bump()
        event = {
            "type": "reaction_added" if added else "reaction_removed",
            "user": user,
            "reaction": name,
            "item_user": msg.user if msg else "",
            "item": {"type": "message", "channel": channel, "ts": ts},
            "event_ts": _now_ts(),
        }
        status, _body, took = await self._post_event(event)
        return {"status": status, "added": added, "seconds": round(took, 3)}

    async def join(self, user: str, channel: str) -> dict[str, Any]:
        """Join a channel: the stand-in adds the member (via the bot's invite), the bot hears the join."""
        ch = self.standin.channels.get(channel)
        if ch is None or ch.is_im:
            return {"ok": False, "error": "channel_not_found"}
        if user in ch.members:
            return {"ok": True, "already": True}
        r = await (await self._client()).post(
            f"{self.standin.base_url}/api/conversations.invite",
            data={"channel": channel, "users": user},
            headers={"Authorization": f"Bearer {self.standin.token}"},
        )
        answer = r.json()
        if not answer.get("ok"):
            return {"ok": False, "error": answer.get("error")}
        event = {"type": "member_joined_channel", "user": user, "channel": channel, "channel_type": "C"}
        await self._post_event(event | {"team": self.standin.team_id, "event_ts": _now_ts()})
        return {"ok": True}

    async def say(self, user: str, channel: str, text: str) -> dict[str, Any]:
        """A person's plain message (joining the channel first, as Slack does when you post)."""
        ch = self.standin.channels.get(channel)
        if ch is None:
            return {"ok": False, "error": "channel_not_found"}
        if not ch.is_im and user not in ch.members:
            joined = await self.join(user, channel)
            if not joined.get("ok"):
                return joined
        msg = self.standin.add_message(channel, user, self._slackify(text))
        return {"ok": True, "ts": msg.ts}

    async def set_factory(self, mode: str) -> dict[str, Any]:
        if self.factory is None:
            return {"ok": False, "error": "no simulated Factory in this sandbox"}
        await asyncio.to_thread(self.factory.set_mode, mode)
        self.bump()
        return {"ok": True, "factory": self._factory_state()}

    # ---- state -----------------------------------------------------------------------------------------

    def _factory_state(self) -> dict[str, Any] | None:
        if self.factory is None:
            return None
        state = self.factory.sim.state()
        return state | {"factoryUrl": self.factory.factory_url, "serviceUrl": self.factory.service_url}

    def state(self, viewer: str | None = None, open_channel: str | None = None) -> dict[str, Any]:
        viewer = viewer if viewer in self.users else self.default_viewer
        snap = self.standin.snapshot()
        users = {u["id"]: u for u in snap["users"]}
        with self._lock:
            ephemerals = list(self._ephemerals)
            reactions = {k: {n: set(u) for n, u in v.items()} for k, v in self._reactions.items()}
            closed, overrides = set(self._closed_views), dict(self._view_overrides)
            version = self.version
        messages: dict[str, list[dict[str, Any]]] = {}
        for cid, msgs in snap["messages"].items():
            out = []
            for m in msgs:
                if m.get("ephemeral_to") not in (None, viewer):
                    continue
                merged: dict[str, set[str]] = {r["name"]: set(r["users"]) for r in m.get("reactions", [])}
                for name, who in reactions.get((cid, m["ts"]), {}).items():
                    merged[name] = merged.get(name, set()) | who
                item = m | {"pinned": bool(m.get("pinned_to")), "ephemeral": bool(m.get("ephemeral_to"))}
                item["reactions"] = [
                    {"name": n, "users": sorted(u), "count": len(u)} for n, u in merged.items() if u
                ]
                out.append(item)
            messages[cid] = out
        for e in ephemerals:
            if e.in_channel or e.user == viewer:
                item = {"ts": e.ts, "user": self.standin.bot_user_id, "text": e.text, "blocks": e.blocks}
                item |= {"attachments": e.attachments, "ephemeral": not e.in_channel, "eph_id": e.id}
                messages.setdefault(e.channel, []).append(item)
        for msgs in messages.values():
            msgs.sort(key=lambda m: float(m["ts"]))
        if open_channel:  # the viewer is looking at it: everything in it is read
            latest = max((m["ts"] for m in messages.get(open_channel, [])), key=float, default="0")
            with self._lock:
                self._read[(viewer, open_channel)] = latest
        channels = self._channels(snap, messages, viewer)
        views = [
            {"id": r["id"], "view": overrides.get(r["id"], r["view"])}
            for r in snap["views"]
            if r.get("user") == viewer and r["view"].get("type") == "modal" and r["id"] not in closed
        ]
        roster_users = [
            users[u.id] | {"role": u.role, "real_name": u.real_name}
            for u in self.users.values()
            if u.id in users
        ]
        return {
            "version": version,
            "viewer": viewer,
            "bot_user_id": snap["bot_user_id"],
            "users": [users[k] for k in users if k not in self.users] + roster_users,
            "roster": [u.id for u in self.users.values()],
            "channels": channels,
            "messages": messages,
            "views": views,
            "factory": self._factory_state(),
            "info": self.info,
        }

    def _channels(
        self, snap: dict[str, Any], messages: dict[str, list[dict[str, Any]]], viewer: str
    ) -> list[dict[str, Any]]:
        with self._lock:
            read = dict(self._read)
        out: list[dict[str, Any]] = []
        ims = {c["id"]: c for c in snap["channels"] if c.get("is_im")}
        for c in snap["channels"]:
            if c.get("is_im"):
                continue
            kind = "incident" if c["name"].startswith("incident-") else "channel"
            item = {"id": c["id"], "name": c["name"], "kind": kind, "topic": c["topic"]["value"]}
            item |= {
                "purpose": c["purpose"]["value"],
                "members": c["members"],
                "is_archived": c["is_archived"],
            }
            item |= {"is_private": c["is_private"], "created": c["created"]}
            out.append(item)
        for u in self.users.values():  # one DM with the bot per sandbox user, opened or not yet
            cid = "D" + u.id
            item = {"id": cid, "name": u.real_name, "kind": "im", "user": u.id, "opened": cid in ims}
            out.append(item | {"topic": "", "purpose": "", "members": [u.id, snap["bot_user_id"]]})
        for item in out:
            # A DM is read by its person, whoever is viewing; channels by the current viewer.
            reader = item.get("user") or viewer
            mark = float(read.get((reader, item["id"]), "0"))
            item["unread"] = sum(
                1
                for m in messages.get(item["id"], [])
                if float(m["ts"]) > mark and m.get("user") != reader and not m.get("ephemeral")
            )
        return out

    # ---- HTTP ------------------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self._index, methods=["GET"]),
            Route("/_sandbox/{name}", self._static, methods=["GET"]),
            Route("/api/state", self._state, methods=["GET"]),
            Route("/api/events", self._events, methods=["GET"]),
            Route("/api/command", self._json(self._command), methods=["POST"]),
            Route("/api/message", self._json(self._message), methods=["POST"]),
            Route("/api/action", self._json(self._action), methods=["POST"]),
            Route("/api/view", self._json(self._view), methods=["POST"]),
            Route("/api/view/close", self._json(self._view_close), methods=["POST"]),
            Route("/api/reaction", self._json(self._reaction), methods=["POST"]),
            Route("/api/join", self._json(self._join), methods=["POST"]),
            Route("/api/factory/{mode}", self._factory, methods=["POST"]),
        ]

    @staticmethod
    def _json(
        fn: Callable[[dict[str, Any]], Any],
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                data = await request.json()
            except ValueError:
                return JSONResponse({"ok": False, "error": "invalid JSON"}, 400)
            if not isinstance(data, dict):
                return JSONResponse({"ok": False, "error": "expected a JSON object"}, 400)
            try:
                result = await fn(data)
            except KeyError as exc:
                return JSONResponse({"ok": False, "error": f"missing {exc.args[0]}"}, 400)
            return JSONResponse(result)

        return endpoint

    def _who(self, data: dict[str, Any]) -> str:
        user = str(data.get("user") or self.default_viewer)
        if user not in self.users:
            raise KeyError("user (a sandbox user id)")
        return user

    async def _command(self, data: dict[str, Any]) -> dict[str, Any]:
        text = str(data["text"]).strip()
        text = re.sub(r"^/incident\b\s*", "", text)
        return await self.command(self._who(data), str(data["channel"]), text)

    async def _message(self, data: dict[str, Any]) -> dict[str, Any]:
        return await self.say(self._who(data), str(data["channel"]), str(data["text"]))

    async def _action(self, data: dict[str, Any]) -> dict[str, Any]:
        return await self.action(data | {"user": self._who(data), "channel": str(data["channel"])})

    async def _view(self, data: dict[str, Any]) -> dict[str, Any]:
        values = data.get("values") or {}
        return await self.submit_view(self._who(data), str(data["view_id"]), values)

    async def _view_close(self, data: dict[str, Any]) -> dict[str, Any]:
        self.close_view(str(data["view_id"]))
        return {"ok": True}

    async def _reaction(self, data: dict[str, Any]) -> dict[str, Any]:
        name = str(data.get("name") or "pushpin")
        return await self.react(self._who(data), str(data["channel"]), str(data["ts"]), name)

    async def _join(self, data: dict[str, Any]) -> dict[str, Any]:
        return await self.join(self._who(data), str(data["channel"]))

    async def _index(self, request: Request) -> Response:
        return FileResponse(
            STATIC / "sandbox.html", media_type="text/html", headers={"Cache-Control": "no-store"}
        )

    async def _static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return JSONResponse({"error": "not found"}, 404)
        return FileResponse(
            STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-store"}
        )

    async def _state(self, request: Request) -> Response:
        q = request.query_params
        return JSONResponse(self.state(q.get("viewer"), q.get("channel")))

    async def _factory(self, request: Request) -> Response:
        mode = request.path_params["mode"]
        if mode not in SIM_MODES:
            return JSONResponse({"ok": False, "error": f"mode must be one of {', '.join(SIM_MODES)}"}, 400)
        return JSONResponse(await self.set_factory(mode))

    async def _events(self, request: Request) -> Response:
        if self._changed is None:
            self.attach(asyncio.get_running_loop())

        async def stream() -> AsyncIterator[str]:
            sent = -1
            yield "retry: 1000\n\n"
            while not self._closing:
                if self.version != sent:
                    sent = self.version
                    yield f"data: {json.dumps({'version': sent})}\n\n"
                    await asyncio.sleep(0.05)  # coalesce bursts (a declare is a dozen stand-in calls)
                    continue
                changed = self._changed
                assert changed is not None
                try:
                    await asyncio.wait_for(changed.wait(), timeout=15)
                except TimeoutError:
                    yield ": keep-alive\n\n"

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _json_or_text(body: str) -> dict[str, Any] | str:
    if not body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    return data if isinstance(data, dict) else body
