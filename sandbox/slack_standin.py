"""A loopback stand-in for the Slack Web API, for tests and the local sandbox.

It validates arguments and limits the way Slack does (rules hard-coded from Slack's method reference and
our limits summary), answers with Slack-shaped envelopes, records every call and injects faults on request.
Serve `SlackStandin().app` with `sandbox.servers`; point slack_sdk at f"{base_url}/api/".
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.policy
import itertools
import json
import logging
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    http_status: int
    ok: bool
    error: str | None
    response: dict[str, Any]
    at: float
    lost: bool = (
        False  # performed, but the caller got a fault instead of this answer (fail_next(applied=True))
    )


@dataclass
class Channel:
    id: str
    name: str
    topic: str = ""
    purpose: str = ""
    members: set[str] = field(default_factory=set)
    is_im: bool = False
    is_archived: bool = False
    created: float = 0.0
    is_private: bool = False
    creator: str = ""


@dataclass
class Message:
    ts: str
    user: str
    text: str = ""
    blocks: list[Any] | None = None
    thread_ts: str | None = None
    pinned: bool = False
    edited: bool = False
    reactions: dict[str, set[str]] = field(default_factory=dict)
    ephemeral_to: str | None = None
    attachments: list[Any] | None = None
    metadata: dict[str, Any] | None = None  # chat.postMessage `metadata`: {event_type, event_payload}


def _metadata(a: _Args) -> dict[str, Any] | None:
    """chat.postMessage `metadata`: a JSON object (a URL-encoded string in a form) with a string event_type
    and an object event_payload (the method's reference: invalid_metadata_format / _schema)."""
    raw = a.get("metadata")
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise SlackError("invalid_metadata_format") from None
    if not isinstance(raw, dict):
        raise SlackError("invalid_metadata_format")
    if not isinstance(raw.get("event_type"), str) or not isinstance(raw.get("event_payload"), dict):
        raise SlackError("invalid_metadata_schema")
    return {"event_type": raw["event_type"], "event_payload": raw["event_payload"]}


class SlackError(Exception):
    """A Slack error answer: {"ok": false, "error": code, ...extra}, plus response_metadata.messages."""

    def __init__(self, code: str, messages: list[str] | None = None, **extra: Any) -> None:
        super().__init__(code)
        self.code, self.messages, self.extra = code, messages or [], extra


@dataclass
class _Fault:
    status: int
    error: str
    retry_after: int | None
    times: int = 1
    # Slack did the work, then the answer was lost (a 5xx from a proxy, or a hang past the client's timeout):
    # the call is applied and recorded as it really went, and the caller gets the fault after `hang` seconds.
    applied: bool = False
    hang: float = 0.0


class _Args(dict[str, Any]):
    """Merged request arguments; Slack accepts strings in forms and typed values in JSON, so coerce here."""

    def s(self, key: str) -> str:
        v = self.get(key)
        if v is None:
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        return v if isinstance(v, str) else json.dumps(v) if isinstance(v, dict | list) else str(v)

    def flag(self, key: str) -> bool:
        v = self.get(key)
        return v is True or str(v).lower() in ("1", "true")

    def csv(self, key: str) -> list[str]:
        v = self.get(key)
        items = v if isinstance(v, list) else self.s(key).split(",")
        return [str(x).strip() for x in items if str(x).strip()]


# Errors the transport/auth layer may return for any method (all in Slack's common errors, except the two
# that limits.md §6 says apply everywhere anyway).
GENERIC_ERRORS = frozenset(
    "not_authed invalid_auth missing_argument invalid_post_type missing_post_type invalid_charset "
    "invalid_form_data unknown_method ratelimited".split()
)

Handler = Callable[["SlackStandin", _Args], dict[str, Any]]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    handler: Handler
    required: tuple[str, ...]
    errors: frozenset[str]  # method-specific codes the handler may return (checked at runtime)
    json_ok: bool
    missing: dict[str, str]  # required arg -> code when absent (default missing_argument)


METHODS: dict[str, MethodSpec] = {}


def _method(
    name: str,
    required: str = "",
    errors: str = "",
    json_ok: bool = True,
    missing: dict[str, str] | None = None,
) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        codes = frozenset(errors.split()) | frozenset((missing or {}).values())
        METHODS[name] = MethodSpec(name, fn, tuple(required.split()), codes, json_ok, dict(missing or {}))
        return fn

    return register


# ---- Block Kit / view validation (limits.md §1) ------------------------------------------------------------

_BLOCK_TYPES = frozenset(
    "section header context actions divider image input rich_text markdown file video call".split()
)


def _too_long(value: Any, limit: int, ptr: str, out: list[str]) -> None:
    if isinstance(value, str) and len(value) > limit:
        out.append(f"[ERROR] must be less than {limit + 1} characters [json-pointer:{ptr}]")


def _text_obj(obj: Any, ptr: str, out: list[str], limit: int, plain_only: bool = False) -> None:
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in kinds or not isinstance(obj.get("text"), str):
        out.append(f"[ERROR] must be a {' or '.join(kinds)} text object [json-pointer:{ptr}]")
    else:
        _too_long(obj["text"], limit, f"{ptr}/text", out)


def _element(el: Any, ptr: str, out: list[str]) -> None:
    if not isinstance(el, dict) or not isinstance(el.get("type"), str):
        out.append(f"[ERROR] must be an element object [json-pointer:{ptr}]")
        return
    _too_long(el.get("action_id"), 255, f"{ptr}/action_id", out)
    if el["type"] == "button":
        _text_obj(el.get("text"), f"{ptr}/text", out, 75, plain_only=True)
        _too_long(el.get("value"), 2000, f"{ptr}/value", out)
        _too_long(el.get("url"), 3000, f"{ptr}/url", out)


def _list_of(block: dict[str, Any], key: str, most: int, ptr: str, out: list[str]) -> list[Any]:
    items = block.get(key)
    if not isinstance(items, list) or not items:
        out.append(f"[ERROR] missing required field: {key} [json-pointer:{ptr}]")
        return []
    if len(items) > most:
        out.append(f"[ERROR] no more than {most} items allowed [json-pointer:{ptr}/{key}]")
    return items


def block_problems(blocks: list[Any], most: int, root: str) -> list[str]:
    """Slack-style "[ERROR] ... [json-pointer:...]" messages for a decoded `blocks` list; empty when valid."""
    out: list[str] = []
    if len(blocks) > most:
        out.append(f"[ERROR] no more than {most} items allowed [json-pointer:{root}]")
    seen: set[str] = set()
    for i, b in enumerate(blocks):
        p = f"{root}/{i}"
        if not isinstance(b, dict) or b.get("type") not in _BLOCK_TYPES:
            kind = b.get("type") if isinstance(b, dict) else b
            out.append(f"[ERROR] unsupported type: {kind!r} [json-pointer:{p}]")
            continue
        bid = b.get("block_id")
        _too_long(bid, 255, f"{p}/block_id", out)
        if isinstance(bid, str):
            if bid in seen:  # Slack rejects a message whose block_ids repeat
                out.append(f"[ERROR] duplicate block_id: {bid} [json-pointer:{p}/block_id]")
            seen.add(bid)
        kind = b["type"]
        if kind == "header":
            _text_obj(b.get("text"), f"{p}/text", out, 150, plain_only=True)
        elif kind == "section":
            if "text" not in b and "fields" not in b:
                out.append(f"[ERROR] must provide text or fields [json-pointer:{p}]")
            if "text" in b:
                _text_obj(b["text"], f"{p}/text", out, 3000)
            if "fields" in b:
                for j, f in enumerate(_list_of(b, "fields", 10, p, out)):
                    _text_obj(f, f"{p}/fields/{j}", out, 2000)
            if "accessory" in b:
                _element(b["accessory"], f"{p}/accessory", out)
        elif kind == "context":
            _list_of(b, "elements", 10, p, out)
        elif kind == "actions":
            for j, el in enumerate(_list_of(b, "elements", 25, p, out)):
                _element(el, f"{p}/elements/{j}", out)
        elif kind == "input":
            _text_obj(b.get("label"), f"{p}/label", out, 2000, plain_only=True)
            _element(b.get("element"), f"{p}/element", out)
        elif kind == "image" and not b.get("alt_text"):
            out.append(f"[ERROR] missing required field: alt_text [json-pointer:{p}]")
        elif kind == "markdown":
            _too_long(b.get("text"), 12000, f"{p}/text", out)
    return out


def view_problems(view: Any) -> list[str]:
    if not isinstance(view, dict):
        return ["[ERROR] failed to parse view [json-pointer:/view]"]
    out: list[str] = []
    kind = view.get("type")
    if kind not in ("modal", "home"):
        out.append("[ERROR] must be one of modal, home [json-pointer:/view/type]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        out.append("[ERROR] missing required field: blocks [json-pointer:/view/blocks]")
        blocks = []
    out += block_problems(blocks, 100, "/view/blocks")
    if kind == "modal":
        _text_obj(view.get("title"), "/view/title", out, 24, plain_only=True)
        for key in ("submit", "close"):
            if view.get(key) is not None:
                _text_obj(view[key], f"/view/{key}", out, 24, plain_only=True)
        if view.get("submit") is None and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks
        ):
            out.append(
                "[ERROR] must provide submit when an input block is present [json-pointer:/view/submit]"
            )
    _too_long(view.get("private_metadata"), 3000, "/view/private_metadata", out)
    for key in ("callback_id", "external_id"):
        _too_long(view.get(key), 255, f"/view/{key}", out)
    return out


_NAME_OK = re.compile(r"^[a-z0-9_-]+$")
_TS = re.compile(r"^\d+\.\d+$")
_EMOJI = re.compile(r"^[a-z0-9_+'-]+(::skin-tone-[2-6])?$")
_JSON_ARGS = ("blocks", "view", "attachments")
TRIGGER_TTL = 3.0
RESPONSE_URL_POSTS, RESPONSE_URL_TTL = 5, 30 * 60
MAX_TEXT = 40_000  # Slack truncates beyond this with the warning message_truncated
_USER_STATIC: dict[str, Any] = dict.fromkeys(("deleted", "is_admin", "is_owner", "is_app_user"), False)
_USER_STATIC["updated"] = 1700000000
_CHANNEL_FLAGS = "is_im is_mpim is_general is_shared is_ext_shared is_org_shared is_pending_ext_shared"
_CHANNEL_STATIC: dict[str, Any] = dict.fromkeys(_CHANNEL_FLAGS.split(), False) | {"unlinked": 0}
_VIEW_DEFAULTS: dict[str, Any] = dict.fromkeys(("private_metadata", "callback_id", "external_id"), "")
_VIEW_DEFAULTS |= dict.fromkeys(("submit", "close"), None)
_VIEW_DEFAULTS |= dict.fromkeys(("clear_on_close", "notify_on_close"), False)
_BOOKMARK_STATIC: dict[str, Any] = dict.fromkeys(("icon_url", "entity_id", "shortcut_id"), None)
_BOOKMARK_STATIC |= {"type": "link", "date_updated": 0, "rank": "a", "app_id": "A0STANDIN"}


def _warning(code: str) -> dict[str, Any]:
    return {"warning": code, "response_metadata": {"warnings": [code]}}


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _unb64(cursor: str, prefix: str, valid: Callable[[str], bool]) -> str:
    """Decode one of our Slack-style cursors (base64 of "prefix:value")."""
    try:
        raw = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise SlackError("invalid_cursor") from None
    value = raw.removeprefix(prefix)
    if value == raw or not valid(value):
        raise SlackError("invalid_cursor")
    return value


class SlackStandin:
    def __init__(
        self,
        token: str = "xoxb-standin",
        *,
        bot_user_id: str = "UBOT",
        team_id: str = "T0STANDIN",
        users: list[dict[str, Any]] | None = None,
    ) -> None:
        self.token, self.bot_user_id, self.team_id = token, bot_user_id, team_id
        self.bot_id = "B" + bot_user_id[1:]
        self.base_url = ""  # set by whoever serves the app; otherwise learnt from the first request
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._last_ts = 0
        self._users: dict[str, dict[str, Any]] = {}
        self.add_user(bot_user_id, "incident-bot", real_name="Incident Bot", is_bot=True)
        for u in users or []:
            opts = {k: u[k] for k in ("tz", "real_name", "is_bot", "email") if k in u}
            self.add_user(u["id"], u["name"], **opts)
        self._init_state()
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/response/{rid}", self._response_post, methods=["POST"]),
                Route("/_standin/state", self._state, methods=["GET"]),
                Route("/_standin/fault", self._fault, methods=["POST"]),
                Route("/_standin/clear", self._clear, methods=["POST"]),
                Route("/_standin/reset", self._reset, methods=["POST"]),
            ]
        )

    def _init_state(self) -> None:
        self._calls: list[Call] = []
        self._channels: dict[str, Channel] = {}
        self._messages: dict[str, list[Message]] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._home_views: dict[str, str] = {}  # user -> view id
        self._bookmarks: dict[str, list[dict[str, Any]]] = {}
        self._responses: dict[str, list[dict[str, Any]]] = {}
        self._response_born: dict[str, float] = {}
        self._triggers: dict[str, tuple[float, str]] = {}  # issued trigger -> (monotonic time, user)
        self._used_triggers: set[str] = set()
        self._faults: dict[str, list[_Fault]] = {}
        self._always: dict[str | None, _Fault] = {}
        self._delays: dict[str | None, float] = {}
        self._chaos: Any = None
        self._events: list[dict[str, Any]] = []
        self._usergroups: dict[str, dict[str, Any]] = {}  # id -> {id, handle, name, users, date_update, …}

    # ---- public helpers (readers get copies: the server thread mutates under the lock) ---------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    @property
    def channels(self) -> dict[str, Channel]:
        with self._lock:
            return dict(self._channels)

    @property
    def messages(self) -> dict[str, list[Message]]:
        with self._lock:
            return {k: list(v) for k, v in self._messages.items()}

    @property
    def views(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._views)

    @property
    def responses(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {k: list(v) for k, v in self._responses.items()}

    @property
    def bookmarks(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {k: list(v) for k, v in self._bookmarks.items()}

    def calls_to(self, method: str, ok: bool | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    def add_user(
        self,
        user_id: str,
        name: str,
        tz: str = "UTC",
        real_name: str | None = None,
        is_bot: bool = False,
        *,
        email: str | None = None,
    ) -> None:
        ZoneInfo(tz)  # fail fast on a bad zone name rather than inside users.info
        with self._lock:
            user = {"id": user_id, "name": name, "tz": tz, "real_name": real_name or name, "is_bot": is_bot}
            self._users[user_id] = user | {"email": email or f"{name}@example.com"}

    def add_channel(
        self,
        name: str,
        *,
        members: Iterable[str] = (),
        is_private: bool = False,
        topic: str = "",
        purpose: str = "",
    ) -> Channel:
        """Seed a channel someone else created (the bot is a member only if listed)."""
        with self._lock:
            ch = self._new_channel(name, set(members), is_private=is_private, creator="")
            ch.topic, ch.purpose = topic, purpose
        self._flush()
        return ch

    def add_message(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> Message:
        """Seed a message from a human (no validation beyond the channel existing)."""
        with self._lock:
            if channel not in self._channels:
                raise KeyError(channel)
            msg = Message(self._next_ts(), user, text, thread_ts=thread_ts)
            self._messages.setdefault(channel, []).append(msg)
            self._emit("message", channel=channel, ts=msg.ts)
        self._flush()
        return msg

    def add_usergroup(self, usergroup_id: str, handle: str, users: Iterable[str] = ()) -> None:
        """Seed a user group (an admin made it in Slack; the bot only reads and replaces its members)."""
        with self._lock:
            self._usergroups[usergroup_id] = {
                "id": usergroup_id,
                "team_id": self.team_id,
                "is_usergroup": True,
                "name": handle,
                "handle": handle,
                "users": list(users),
                "date_update": int(time.time()),
                "updated_by": "",
            }
        self._flush()

    def usergroup_users(self, usergroup_id: str) -> list[str]:
        with self._lock:
            return list(self._usergroups[usergroup_id]["users"])

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        error: str = "ratelimited",
        retry_after: int | None = 1,
        times: int = 1,
        applied: bool = False,
        hang: float = 0.0,
    ) -> None:
        """The next `times` calls to `method` fail. `applied=True`: Slack performs each call, then the answer
        is lost (the caller sees the fault, after `hang` seconds if given: a timeout for the client)."""
        with self._lock:
            self._faults.setdefault(method, []).append(
                _Fault(status, error, retry_after, times, applied=applied, hang=hang)
            )

    def fail_always(self, method: str | None, *, status: int = 500, error: str = "internal_error") -> None:
        with self._lock:
            self._always[method] = _Fault(status, error, None)

    def delay(self, method: str | None, seconds: float) -> None:
        with self._lock:
            self._delays[method] = seconds

    def chaos(
        self,
        seed: int,
        *,
        p429: float = 0.0,
        p500: float = 0.0,
        ptimeout: float = 0.0,
        hang: float = 3.0,
        retry_after: int = 1,
        methods: set[str] | None = None,
        plost: float = 0.0,
        lost_methods: frozenset[str] = frozenset(),
    ) -> None:
        """Random faults, reproducible from `seed`: 429 (with Retry-After), 500, or a hang of `hang` seconds
        answered 500 (a timeout for the client). A faulted call is not applied, like an outage that never
        reached Slack's backend. `plost`: a call to one of `lost_methods` is carried out and its answer lost
        (half a 500, half a hang), like fail_next(applied=True)."""
        with self._lock:
            self._chaos = (
                random.Random(seed), p429, p500, ptimeout, hang, retry_after, methods, plost, lost_methods
            )  # fmt: skip

    def _chaos_fault(self, method: str) -> tuple[_Fault | None, float]:
        if self._chaos is None:
            return None, 0.0
        rng, p429, p500, ptimeout, hang, retry_after, methods, plost, lost_methods = self._chaos
        if methods is not None and method not in methods:
            return None, 0.0
        r = rng.random()
        if r < p429:
            return _Fault(429, "ratelimited", retry_after), 0.0
        if r < p429 + p500:
            return _Fault(500, "internal_error", None), 0.0
        if r < p429 + p500 + ptimeout:
            return _Fault(500, "request_timeout", None), hang
        if method in lost_methods and r < p429 + p500 + ptimeout + plost:
            late = rng.random() < 0.5
            return _Fault(500, "request_timeout" if late else "internal_error", None, applied=True,
                          hang=hang if late else 0.0), 0.0  # fmt: skip
        return None, 0.0

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._always.clear()
            self._delays.clear()
            self._chaos = None

    def reset(self) -> None:
        with self._lock:
            self._init_state()

    def new_response_url(self) -> str:
        rid = secrets.token_hex(8)
        with self._lock:
            self._responses[rid] = []
            self._response_born[rid] = time.time()
        return f"{self.base_url}/response/{rid}"

    def responses_for(self, url: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._responses.get(url.rstrip("/").rsplit("/", 1)[-1], []))

    def channel_by_name(self, name: str) -> Channel | None:
        with self._lock:
            return next((c for c in self._channels.values() if c.name == name and not c.is_im), None)

    def message(self, channel: str, ts: str) -> Message | None:
        with self._lock:
            return next((m for m in self._messages.get(channel, []) if m.ts == ts), None)

    def issue_trigger_id(self, user: str = "") -> str:
        tid = f"{int(time.time())}.{next(self._ids)}.{secrets.token_hex(16)}"
        with self._lock:
            self._triggers[tid] = (time.monotonic(), user)
        return tid

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "team_id": self.team_id,
                "bot_user_id": self.bot_user_id,
                "users": [self._user_obj(u) for u in self._users.values()],
                "channels": [
                    self._channel_obj(c) | {"members": sorted(c.members)} for c in self._channels.values()
                ],
                "messages": {
                    cid: [self._msg_obj(m, cid) | {"ephemeral_to": m.ephemeral_to} for m in msgs]
                    for cid, msgs in self._messages.items()
                },
                "views": list(self._views.values()),
                "bookmarks": {k: list(v) for k, v in self._bookmarks.items()},
                "usergroups": [dict(g, users=list(g["users"])) for g in self._usergroups.values()],
            }

    # ---- HTTP ----------------------------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        if not self.base_url:
            self.base_url = str(request.base_url).rstrip("/")
        with self._lock:
            pause = self._delays.get(method, self._delays.get(None, 0.0))
            chaos, hang = self._chaos_fault(method)
        if pause:
            await asyncio.sleep(pause)
        args, token, transport_error = await self._parse(request, METHODS.get(method))
        if hang:  # after reading the body: the client gives up waiting for the answer
            await asyncio.sleep(hang)
        headers: dict[str, str] = {}
        with self._lock:
            fault = chaos or self._take_fault(method)
            lost = fault if fault is not None and fault.applied else None
            try:
                status, body = self._answer(
                    method, args, token, transport_error, headers, None if lost else fault
                )
            except Exception:  # a stand-in bug: answer like a Slack outage, but loudly in the log
                log.exception("slack stand-in failed on %s", method)
                status, body = 500, {"ok": False, "error": "internal_error"}
            # The call is recorded as Slack carried it out; `lost` says the caller never heard that answer.
            call = Call(
                method, dict(args), status, body["ok"], body.get("error"), body, time.time(), lost=bool(lost)
            )
            self._calls.append(call)
            if lost is not None:
                headers = {"Retry-After": str(lost.retry_after)} if lost.retry_after is not None else {}
                status, body = lost.status, {"ok": False, "error": lost.error}
        self._flush()
        if lost is not None and lost.hang:
            await asyncio.sleep(lost.hang)  # past the client's timeout: it gives up, the work is done
        return JSONResponse(body, status_code=status, headers=headers)

    def _answer(
        self,
        method: str,
        args: _Args,
        token: str | None,
        transport_error: str | None,
        headers: dict[str, str],
        fault: _Fault | None = None,
    ) -> tuple[int, dict[str, Any]]:
        spec, status = METHODS.get(method), 200
        try:
            if fault is not None:
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(fault.retry_after)
                status = fault.status
                raise SlackError(fault.error)
            if spec is None:
                status = 404
                raise SlackError("unknown_method")
            if transport_error:
                raise SlackError(transport_error)
            if not token:
                raise SlackError("not_authed")
            if token != self.token:
                raise SlackError("invalid_auth")
            for name in spec.required:
                if args.get(name) in (None, "", []):
                    raise SlackError(spec.missing.get(name, "missing_argument"))
            return status, {"ok": True, **spec.handler(self, args)}
        except SlackError as e:
            if fault is None and spec is not None and e.code not in spec.errors | GENERIC_ERRORS:
                raise RuntimeError(
                    f"{method} returned {e.code}, which its MethodSpec does not declare"
                ) from e
            body = {"ok": False, "error": e.code, **e.extra}
            if e.messages:
                body["response_metadata"] = {"messages": e.messages}
            return status, body

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if queue:
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
            return fault
        return self._always.get(method) or self._always.get(None)

    async def _parse(self, request: Request, spec: MethodSpec | None) -> tuple[_Args, str | None, str | None]:
        """Merge query + body args (limits.md §4). Returns (args, token, transport error code or None)."""
        args = _Args(request.query_params)
        args.pop("token", None)  # new apps may not send the token in the query string
        token: str | None = None
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        error: str | None = None
        body = await request.body()
        if request.method == "POST" and body:
            ctype_header = request.headers.get("content-type")
            body_args, form_token, error = self._parse_body(body, ctype_header, spec)
            args.update(body_args)
            token = token or form_token
        for key in _JSON_ARGS:
            if isinstance(args.get(key), str):
                with contextlib.suppress(ValueError):
                    args[key] = json.loads(args[key])
        return args, token, error

    @staticmethod
    def _parse_body(
        body: bytes, ctype_header: str | None, spec: MethodSpec | None
    ) -> tuple[dict[str, Any], str | None, str | None]:
        if not ctype_header:
            return {}, None, "missing_post_type"
        ctype, *params = (p.strip() for p in ctype_header.split(";"))
        ctype = ctype.lower()
        charset = "utf-8"
        for p in params:
            k, _, v = p.partition("=")
            if k.strip().lower() == "charset":
                charset = v.strip().strip('"').lower()
        if charset not in ("utf-8", "utf8", "iso-8859-1"):
            return {}, None, "invalid_charset"
        try:
            if ctype == "application/json":
                if spec is not None and not spec.json_ok:
                    return {}, None, "invalid_post_type"
                data = json.loads(body.decode(charset))
                if not isinstance(data, dict):
                    return {}, None, "invalid_form_data"
                data.pop("token", None)  # with a JSON body the token must come in the header
                return data, None, None
            if ctype in ("application/x-www-form-urlencoded", "text/plain"):
                form = dict(parse_qsl(body.decode(charset), keep_blank_values=True, strict_parsing=True))
            elif ctype == "multipart/form-data":
                head = f"Content-Type: {ctype_header}\r\n\r\n".encode()
                msg = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
                if not msg.is_multipart():
                    return {}, None, "invalid_form_data"
                form = {}
                for part in msg.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    if isinstance(name, str) and not part.get_filename():
                        form[name] = part.get_payload(decode=True).decode(charset)  # type: ignore[union-attr]
            else:
                return {}, None, "invalid_post_type"
        except (ValueError, UnicodeDecodeError, AttributeError):
            return {}, None, "invalid_form_data"
        return form, form.pop("token", None), None

    async def _response_post(self, request: Request) -> Response:
        rid = request.path_params["rid"]
        try:
            payload = json.loads(await request.body())
        except ValueError:
            payload = None
        with self._lock:
            posts = self._responses.get(rid)
            if posts is None:
                return PlainTextResponse("no_service", status_code=404)
            if len(posts) >= RESPONSE_URL_POSTS:
                return PlainTextResponse("used_url", status_code=404)
            if time.time() - self._response_born[rid] > RESPONSE_URL_TTL:
                return PlainTextResponse("expired_url", status_code=404)
            if not isinstance(payload, dict):
                return PlainTextResponse("invalid_payload", status_code=400)
            posts.append(payload)
            self._emit("response", id=rid, payload=payload)
        self._flush()
        return PlainTextResponse("ok")

    async def _state(self, request: Request) -> Response:
        return JSONResponse(self.snapshot())

    async def _fault(self, request: Request) -> Response:
        f = await request.json()
        opts = {k: f[k] for k in ("status", "error", "retry_after", "times", "applied", "hang") if k in f}
        self.fail_next(f["method"], **opts)
        return JSONResponse({"ok": True})

    async def _clear(self, request: Request) -> Response:
        self.clear_faults()
        return JSONResponse({"ok": True})

    async def _reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    # ---- state helpers (callers hold the lock) -------------------------------------------------------------

    def _emit(self, kind: str, **data: Any) -> None:
        self._events.append({"type": kind, **data})

    def _flush(self) -> None:
        """Notify listeners outside the lock, so one that reads state cannot deadlock or break a request."""
        with self._lock:
            events, self._events = self._events, []
        for event in events:
            for listener in list(self.listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("slack stand-in listener failed")

    def _next_ts(self) -> str:
        self._last_ts = max(int(time.time() * 1_000_000), self._last_ts + 1)
        return f"{self._last_ts // 1_000_000}.{self._last_ts % 1_000_000:06d}"

    def _new_channel(
        self, name: str, members: set[str], *, is_private: bool, creator: str, cid: str = ""
    ) -> Channel:
        ch = Channel(cid or f"C{next(self._ids):08X}", name, members=members, created=time.time())
        ch.is_private, ch.creator = is_private, creator
        self._channels[ch.id] = ch
        self._messages.setdefault(ch.id, [])
        self._emit("channel", channel=ch.id, action="create")
        return ch

    def _chan(self, cid: str) -> Channel:
        ch = self._channels.get(cid)
        # Private channels the bot is not in are invisible to it, as in Slack.
        if ch is None or (ch.is_private and self.bot_user_id not in ch.members):
            raise SlackError("channel_not_found")
        return ch

    def _member(self, ch: Channel, code: str = "not_in_channel") -> None:
        if self.bot_user_id not in ch.members:
            raise SlackError(code)

    def _msg(self, ch: Channel, ts: str, *, visible_only: bool = True) -> Message:
        for m in self._messages.get(ch.id, []):
            if m.ts == ts and not (visible_only and m.ephemeral_to):
                return m
        raise SlackError("message_not_found")

    def _open_im(self, user: str) -> Channel:
        cid = "D" + user
        if cid not in self._channels:
            ch = self._new_channel(
                user, {self.bot_user_id, user}, is_private=True, creator=self.bot_user_id, cid=cid
            )
            ch.is_im = True
        return self._channels[cid]

    def _user_obj(self, u: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(ZoneInfo(u["tz"]))
        offset = now.utcoffset()
        names = {"real_name": u["real_name"], "display_name": u["name"]}
        profile = names | {f"{k}_normalized": v for k, v in names.items()} | {"email": u["email"]}
        obj = {k: u[k] for k in ("id", "name", "real_name", "tz", "is_bot")} | _USER_STATIC
        obj |= {
            "team_id": self.team_id,
            "tz_label": now.tzname(),
            "profile": profile | {"team": self.team_id},
        }
        return obj | {"tz_offset": int(offset.total_seconds()) if offset else 0}

    def _channel_obj(self, ch: Channel) -> dict[str, Any]:
        if ch.is_im:
            user = next((m for m in ch.members if m != self.bot_user_id), self.bot_user_id)
            return {"id": ch.id, "created": int(ch.created), "is_im": True, "user": user, "is_open": True}
        obj: dict[str, Any] = _CHANNEL_STATIC | {"pending_shared": [], "previous_names": []}
        obj |= {"id": ch.id, "name": ch.name, "name_normalized": ch.name, "creator": ch.creator}
        obj |= {"is_channel": not ch.is_private, "is_group": ch.is_private, "is_private": ch.is_private}
        obj |= {"created": int(ch.created), "is_archived": ch.is_archived}
        obj["is_member"] = self.bot_user_id in ch.members
        for key in ("topic", "purpose"):
            value: str = getattr(ch, key)
            obj[key] = {"value": value, "creator": "", "last_set": 0}
            if value:  # we do not track who set it when; the creator and creation time are close enough
                obj[key] |= {"creator": ch.creator, "last_set": int(ch.created)}
        return obj

    def _msg_obj(self, m: Message, channel: str, *, all_metadata: bool = True) -> dict[str, Any]:
        """`all_metadata`: conversations.history returns a message's metadata payload only when asked
        (include_all_metadata); its event_type always."""
        d: dict[str, Any] = {"type": "message", "user": m.user, "text": m.text, "ts": m.ts}
        if m.metadata is not None:
            d["metadata"] = m.metadata if all_metadata else {"event_type": m.metadata["event_type"]}
        d["team"] = self.team_id
        if m.user == self.bot_user_id:
            d |= {"bot_id": self.bot_id, "app_id": "A0STANDIN"}
        optional = {"blocks": m.blocks, "attachments": m.attachments, "thread_ts": m.thread_ts}
        d |= {k: v for k, v in optional.items() if v is not None}
        if m.pinned:
            d["pinned_to"] = [channel]
        if m.edited:
            d["edited"] = {"user": m.user, "ts": m.ts}
        if m.reactions:
            d["reactions"] = [
                {"name": n, "users": sorted(u), "count": len(u)} for n, u in m.reactions.items()
            ]
        return d

    def _content(
        self, a: _Args, most_blocks: int = 50
    ) -> tuple[str, list[Any] | None, list[Any] | None, dict[str, Any]]:
        """Validate message content (limits.md §1-2): text, blocks, attachments, markdown_text."""
        text, md = a.s("text"), a.s("markdown_text")
        blocks, attachments = a.get("blocks"), a.get("attachments")
        if md and (text or blocks):
            raise SlackError("markdown_text_conflict")
        if not (text or blocks or attachments or md):
            raise SlackError("no_text")
        if blocks is not None and blocks != "":
            if not isinstance(blocks, list):
                raise SlackError("invalid_blocks_format")
            problems = block_problems(blocks, most_blocks, "/blocks")
            if problems:
                raise SlackError("invalid_blocks", problems)
        if isinstance(attachments, list) and len(attachments) > 100:
            raise SlackError("too_many_attachments")
        extra: dict[str, Any] = {}
        text = text or md
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT]
            extra = _warning("message_truncated")
        attachments = attachments if isinstance(attachments, list) else None
        return text, blocks if isinstance(blocks, list) else None, attachments, extra

    def _take_trigger(self, tid: str) -> str:
        if tid in self._used_triggers:
            raise SlackError("exchanged_trigger_id")
        issued = self._triggers.pop(tid, None)
        if issued is None:
            if not tid.startswith("standin-"):  # made-up ids are fine for tests, but only once
                raise SlackError("invalid_trigger_id")
            issued = (time.monotonic(), "")
        self._used_triggers.add(tid)
        if time.monotonic() - issued[0] > TRIGGER_TTL:
            raise SlackError("expired_trigger_id")
        return issued[1]

    def _check_view(self, view: Any) -> dict[str, Any]:
        if len(json.dumps(view)) > 250_000:
            raise SlackError("view_too_large")
        problems = view_problems(view)
        if problems:
            raise SlackError("invalid_arguments", problems)
        assert isinstance(view, dict)
        return view

    def _store_view(self, view: dict[str, Any], vid: str, **meta: Any) -> dict[str, Any]:
        full = _VIEW_DEFAULTS | {"team_id": self.team_id, "blocks": [], "state": {"values": {}}} | view
        full |= {"id": vid, "root_view_id": vid, "hash": f"{int(time.time())}.{secrets.token_hex(4)}"}
        full |= {"previous_view_id": None, "app_id": "A0STANDIN", "bot_id": self.bot_id}
        record = self._views.get(vid, {"trigger_id": None, "user": None})
        self._views[vid] = record | {"id": vid, "view": full} | meta
        return full

    # ---- Web API methods -----------------------------------------------------------------------------------

    @_method("auth.test")
    def _auth_test(self, a: _Args) -> dict[str, Any]:
        who = {"team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id}
        return who | {"url": f"{self.base_url}/", "team": "Stand-in Workspace", "user": "incident-bot"}

    @_method(
        "conversations.create",
        "name",
        "invalid_name_maxlength invalid_name_specials invalid_name_punctuation name_taken",
        missing={"name": "invalid_name_required"},
    )
    def _conversations_create(self, a: _Args) -> dict[str, Any]:
        name = a.s("name")
        if len(name) > 80:
            raise SlackError("invalid_name_maxlength")
        if not _NAME_OK.match(name):
            raise SlackError("invalid_name_specials")
        if not name.strip("-_"):
            raise SlackError("invalid_name_punctuation")
        if any(c.name == name for c in self._channels.values() if not c.is_im):
            raise SlackError("name_taken")
        ch = self._new_channel(
            name, {self.bot_user_id}, is_private=a.flag("is_private"), creator=self.bot_user_id
        )
        return {"channel": self._channel_obj(ch)}

    @_method(
        "conversations.invite",
        "channel users",
        "channel_not_found is_archived method_not_supported_for_channel_type not_in_channel cant_invite "
        "cant_invite_self user_not_found already_in_channel",
        missing={"users": "no_user"},
    )
    def _conversations_invite(self, a: _Args) -> dict[str, Any]:
        ch = self._chan(a.s("channel"))
        if ch.is_archived:
            raise SlackError("is_archived")
        if ch.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        self._member(ch)
        users = list(dict.fromkeys(a.csv("users")))
        if not users:
            raise SlackError("no_user")
        if len(users) > 100:  # Slack has no documented code for this; cant_invite is the closest listed one
            raise SlackError("cant_invite", ["[ERROR] no more than 100 users allowed [json-pointer:/users]"])
        errors: list[dict[str, Any]] = []
        for u in users:
            checks = {"cant_invite_self": u == self.bot_user_id, "user_not_found": u not in self._users}
            code = next((c for c, failed in checks.items() if failed), None)
            code = code or ("already_in_channel" if u in ch.members else None)
            if code:
                errors.append({"user": u, "ok": False, "error": code})
        if errors and not (a.flag("force") and len(errors) < len(users)):
            raise SlackError(errors[0]["error"], errors=errors)
        bad = {e["user"] for e in errors}
        ch.members.update(u for u in users if u not in bad)
        self._emit("channel", channel=ch.id, action="invite", users=[u for u in users if u not in bad])
        return {"channel": self._channel_obj(ch)} | ({"errors": errors} if errors else {})

    def _set_meta(self, a: _Args, key: str) -> dict[str, Any]:
        ch = self._chan(a.s("channel"))
        if ch.is_archived:
            raise SlackError("is_archived")
        self._member(ch)
        value = a.s(key)
        if len(value) > 250:
            raise SlackError("too_long")
        setattr(ch, key, value)
        self._emit("channel", channel=ch.id, action=key, value=value)
        return {"channel": self._channel_obj(ch)}

    @_method(
        "conversations.setTopic", "channel topic", "channel_not_found is_archived not_in_channel too_long"
    )
    def _set_topic(self, a: _Args) -> dict[str, Any]:
        return self._set_meta(a, "topic")

    @_method(
        "conversations.setPurpose", "channel purpose", "channel_not_found is_archived not_in_channel too_long"
    )
    def _set_purpose(self, a: _Args) -> dict[str, Any]:
        return self._set_meta(a, "purpose")

    @_method(
        "conversations.open",
        "",
        "users_list_not_supplied too_many_users user_not_found channel_not_found "
        "method_not_supported_for_channel_type",
    )
    def _conversations_open(self, a: _Args) -> dict[str, Any]:
        if a.s("channel"):
            ch = self._chan(a.s("channel"))
            if not ch.is_im and not ch.name.startswith("mpdm-"):
                raise SlackError("method_not_supported_for_channel_type")
            existed = True
        else:
            users = sorted(set(a.csv("users")) - {self.bot_user_id}) or a.csv("users")
            if not users:
                raise SlackError("users_list_not_supplied")
            if len(users) > 8:
                raise SlackError("too_many_users")
            if any(u not in self._users for u in users):
                raise SlackError("user_not_found")
            if len(users) == 1:
                existed = "D" + users[0] in self._channels
                ch = self._open_im(users[0])
            else:  # a multi-person DM: a private channel with a stable, Slack-like name
                name = "mpdm-" + "--".join(self._users[u]["name"] for u in users) + "-1"
                found = self.channel_by_name(name)
                existed = found is not None
                ch = found or self._new_channel(
                    name, {self.bot_user_id, *users}, is_private=True, creator=self.bot_user_id
                )
        if not a.flag("return_im"):
            return {"channel": {"id": ch.id}}
        return {"no_op": existed, "already_open": existed, "channel": self._channel_obj(ch)}

    @_method("conversations.info", "channel", "channel_not_found", json_ok=False)
    def _conversations_info(self, a: _Args) -> dict[str, Any]:
        ch = self._chan(a.s("channel"))
        obj = self._channel_obj(ch)
        if a.flag("include_num_members"):
            obj["num_members"] = len(ch.members)
        return {"channel": obj}

    @_method(
        "conversations.members", "channel", "channel_not_found invalid_cursor invalid_limit", json_ok=False
    )
    def _conversations_members(self, a: _Args) -> dict[str, Any]:
        ch = self._chan(a.s("channel"))
        try:
            limit = int(a.s("limit") or 100)
        except ValueError:
            raise SlackError("invalid_limit") from None
        if not 1 <= limit <= 1000:
            raise SlackError("invalid_limit")
        start = int(_unb64(a.s("cursor"), "offset:", str.isdigit)) if a.s("cursor") else 0
        members = sorted(ch.members)
        nxt = _b64(f"offset:{start + limit}") if start + limit < len(members) else ""
        return {"members": members[start : start + limit], "response_metadata": {"next_cursor": nxt}}

    @_method(
        "conversations.history",
        "channel",
        "channel_not_found not_in_channel invalid_cursor invalid_ts_latest invalid_ts_oldest",
    )
    def _conversations_history(self, a: _Args) -> dict[str, Any]:
        ch = self._chan(a.s("channel"))
        self._member(ch)
        limit = min(max(int(a.s("limit")) if a.s("limit").isdigit() else 100, 1), 999)  # Slack caps at 999
        latest, oldest, inclusive = a.s("latest"), a.s("oldest") or "0", a.flag("inclusive")
        if latest and not _TS.match(latest) and not latest.isdigit():
            raise SlackError("invalid_ts_latest")
        if not _TS.match(oldest) and not oldest.isdigit():
            raise SlackError("invalid_ts_oldest")

        def wanted(m: Message) -> bool:  # top-level, visible, inside the (latest, oldest) window
            if m.ephemeral_to or m.thread_ts not in (None, m.ts):
                return False
            before = not latest or float(m.ts) < float(latest) or (inclusive and m.ts == latest)
            return before and (float(m.ts) > float(oldest) or (inclusive and m.ts == oldest))

        msgs = [m for m in reversed(self._messages.get(ch.id, [])) if wanted(m)]
        if a.s("cursor"):
            start_ts = float(_unb64(a.s("cursor"), "next_ts:", lambda ts: bool(_TS.match(ts))))
            msgs = [m for m in msgs if float(m.ts) <= start_ts]
        page, rest = msgs[:limit], msgs[limit:]
        pinned = sum(m.pinned for m in self._messages.get(ch.id, []))
        nxt = _b64(f"next_ts:{rest[0].ts}") if rest else ""
        out = {
            "messages": [self._msg_obj(m, ch.id, all_metadata=a.flag("include_all_metadata")) for m in page],
            "has_more": bool(rest),
            "pin_count": pinned,
        }
        return out | {"response_metadata": {"next_cursor": nxt}}

    @_method(
        "conversations.join", "channel", "channel_not_found is_archived method_not_supported_for_channel_type"
    )
    def _conversations_join(self, a: _Args) -> dict[str, Any]:
        ch = self._chan(a.s("channel"))
        if ch.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        if ch.is_archived:
            raise SlackError("is_archived")
        if self.bot_user_id in ch.members:
            return {"channel": self._channel_obj(ch)} | _warning("already_in_channel")
        ch.members.add(self.bot_user_id)
        self._emit("channel", channel=ch.id, action="join", users=[self.bot_user_id])
        return {"channel": self._channel_obj(ch)}

    @_method(
        "conversations.archive",
        "channel",
        "channel_not_found already_archived method_not_supported_for_channel_type not_in_channel",
    )
    def _conversations_archive(self, a: _Args) -> dict[str, Any]:
        ch = self._chan(a.s("channel"))
        if ch.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        if ch.is_archived:
            raise SlackError("already_archived")
        self._member(ch)
        ch.is_archived = True
        self._emit("channel", channel=ch.id, action="archive")
        return {}

    def _post_target(self, ref: str) -> Channel:
        """chat.postMessage also takes a #name or a user id (which posts to the app's DM with that user)."""
        if ref in self._users:
            return self._open_im(ref)
        by_name = self.channel_by_name(ref.removeprefix("#"))
        return self._chan(by_name.id if by_name and ref not in self._channels else ref)

    @_method(
        "chat.postMessage",
        "channel",
        "channel_not_found is_archived not_in_channel no_text markdown_text_conflict invalid_blocks "
        "invalid_blocks_format too_many_attachments invalid_metadata_format invalid_metadata_schema",
    )
    def _chat_post_message(self, a: _Args) -> dict[str, Any]:
        ch = self._post_target(a.s("channel"))
        if ch.is_archived:
            raise SlackError("is_archived")
        self._member(ch)
        text, blocks, attachments, extra = self._content(a)
        thread_ts = a.s("thread_ts") or None
        msg = Message(self._next_ts(), self.bot_user_id, text, blocks, thread_ts, attachments=attachments)
        msg.metadata = _metadata(a)
        self._messages[ch.id].append(msg)
        self._emit("message", channel=ch.id, ts=msg.ts)
        return {"channel": ch.id, "ts": msg.ts, "message": self._msg_obj(msg, ch.id)} | extra

    @_method(
        "chat.update",
        "channel ts",
        "channel_not_found is_inactive message_not_found cant_update_message no_text markdown_text_conflict "
        "invalid_blocks invalid_blocks_format too_many_attachments",
    )
    def _chat_update(self, a: _Args) -> dict[str, Any]:
        ch = self._chan(a.s("channel"))
        if ch.is_archived:
            raise SlackError("is_inactive")
        msg = self._msg(ch, a.s("ts"))
        if msg.user != self.bot_user_id:
            raise SlackError("cant_update_message")
        text, blocks, attachments, extra = self._content(a)
        # Omitted blocks/attachments are kept; an empty list removes them (Slack's documented behaviour).
        msg.text = text if "text" in a or "markdown_text" in a else msg.text
        msg.blocks = (blocks or None) if "blocks" in a else msg.blocks
        msg.attachments = (attachments or None) if "attachments" in a else msg.attachments
        msg.edited = True
        self._emit("update", channel=ch.id, ts=msg.ts)
        out = {"channel": ch.id, "ts": msg.ts, "text": msg.text, "message": self._msg_obj(msg, ch.id)}
        return out | extra

    @_method(
        "chat.postEphemeral",
        "channel user",
        "channel_not_found is_archived not_in_channel user_not_in_channel no_text markdown_text_conflict "
        "invalid_blocks invalid_blocks_format too_many_attachments",
    )
    def _chat_post_ephemeral(self, a: _Args) -> dict[str, Any]:
        ch = self._chan(a.s("channel"))
        if ch.is_archived:
            raise SlackError("is_archived")
        self._member(ch)
        user = a.s("user")
        if user not in ch.members:
            raise SlackError("user_not_in_channel")
        text, blocks, attachments, _ = self._content(a)
        msg = Message(self._next_ts(), self.bot_user_id, text, blocks, a.s("thread_ts") or None)
        msg.ephemeral_to, msg.attachments = user, attachments
        self._messages[ch.id].append(msg)
        self._emit("ephemeral", channel=ch.id, ts=msg.ts, user=user)
        return {"message_ts": msg.ts}

    @_method("chat.getPermalink", "channel message_ts", "channel_not_found message_not_found", json_ok=False)
    def _chat_get_permalink(self, a: _Args) -> dict[str, Any]:
        ch = self._chan(a.s("channel"))
        msg = self._msg(ch, a.s("message_ts"))
        link = f"{self.base_url}/archives/{ch.id}/p{msg.ts.replace('.', '')}"
        if msg.thread_ts and msg.thread_ts != msg.ts:
            link += f"?thread_ts={msg.thread_ts}&cid={ch.id}"
        return {"channel": ch.id, "permalink": link}

    def _pin_target(self, a: _Args) -> tuple[Channel, Message]:
        ch = self._chan(a.s("channel"))
        ts = a.s("timestamp")
        if not ts:
            raise SlackError("no_item_specified")
        if not _TS.match(ts):
            raise SlackError("bad_timestamp")
        return ch, self._msg(ch, ts)

    @_method(
        "pins.add",
        "channel",
        "channel_not_found no_item_specified bad_timestamp message_not_found not_in_channel already_pinned",
    )
    def _pins_add(self, a: _Args) -> dict[str, Any]:
        ch, msg = self._pin_target(a)
        self._member(ch)
        if msg.pinned:
            raise SlackError("already_pinned")
        msg.pinned = True
        self._emit("pin", channel=ch.id, ts=msg.ts, pinned=True)
        return {}

    @_method(
        "pins.remove", "channel", "channel_not_found no_item_specified bad_timestamp message_not_found no_pin"
    )
    def _pins_remove(self, a: _Args) -> dict[str, Any]:
        ch, msg = self._pin_target(a)
        if not msg.pinned:
            raise SlackError("no_pin")
        msg.pinned = False
        self._emit("pin", channel=ch.id, ts=msg.ts, pinned=False)
        return {}

    @_method(
        "reactions.add",
        "channel timestamp name",
        "channel_not_found no_item_specified bad_timestamp message_not_found is_archived invalid_name "
        "already_reacted",
        missing={"channel": "no_item_specified", "timestamp": "no_item_specified"},
    )
    def _reactions_add(self, a: _Args) -> dict[str, Any]:
        ch, msg = self._pin_target(a)
        if ch.is_archived:
            raise SlackError("is_archived")
        name = a.s("name").strip(":")
        if not _EMOJI.match(name):
            raise SlackError("invalid_name")
        who = msg.reactions.setdefault(name, set())
        if self.bot_user_id in who:
            raise SlackError("already_reacted")
        who.add(self.bot_user_id)
        self._emit("reaction", channel=ch.id, ts=msg.ts, name=name)
        return {}

    @_method("users.info", "user", "user_not_found", json_ok=False)
    def _users_info(self, a: _Args) -> dict[str, Any]:
        user = self._users.get(a.s("user"))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": self._user_obj(user)}

    @_method("users.lookupByEmail", "email", "users_not_found", json_ok=False)
    def _users_lookup_by_email(self, a: _Args) -> dict[str, Any]:
        email_addr = a.s("email").lower()
        user = next((u for u in self._users.values() if u["email"].lower() == email_addr), None)
        if user is None:
            raise SlackError("users_not_found")
        return {"user": self._user_obj(user)}

    @_method(
        "views.open",
        "view",
        "invalid_arguments invalid_trigger_id exchanged_trigger_id expired_trigger_id view_too_large "
        "duplicate_external_id",
    )
    def _views_open(self, a: _Args) -> dict[str, Any]:
        tid, pointer = a.s("trigger_id"), a.s("interactivity_pointer")
        if not tid and not pointer:
            raise SlackError("missing_argument", ["[ERROR] missing required field: trigger_id"])
        if tid and pointer:
            raise SlackError("invalid_arguments", ["[ERROR] only one of trigger_id, interactivity_pointer"])
        view = self._check_view(a.get("view"))
        if view["type"] != "modal":
            raise SlackError("invalid_arguments", ["[ERROR] must be modal [json-pointer:/view/type]"])
        ext = view.get("external_id")
        if ext and any(v["view"].get("external_id") == ext for v in self._views.values()):
            raise SlackError("duplicate_external_id")
        user = self._take_trigger(tid or pointer)
        vid = f"V{next(self._ids):08X}"
        full = self._store_view(view, vid, trigger_id=tid or pointer, user=user)
        self._emit("view", view_id=vid, action="open", user=user)
        return {"view": full}

    @_method(
        "views.update",
        "view",
        "invalid_arguments not_found hash_conflict view_too_large duplicate_external_id",
    )
    def _views_update(self, a: _Args) -> dict[str, Any]:
        vid, ext = a.s("view_id"), a.s("external_id")
        if not vid and not ext:
            raise SlackError("missing_argument", ["[ERROR] missing required field: view_id"])
        if vid and ext:
            raise SlackError("invalid_arguments", ["[ERROR] only one of view_id, external_id allowed"])
        view = self._check_view(a.get("view"))
        by_ext = {v["view"]["external_id"]: v for v in self._views.values() if v["view"]["external_id"]}
        found = self._views.get(vid) if vid else by_ext.get(ext)
        if found is None:
            raise SlackError("not_found")
        if a.s("hash") and a.s("hash") != found["view"]["hash"]:
            raise SlackError("hash_conflict")
        if by_ext.get(view.get("external_id") or "", found) is not found:
            raise SlackError("duplicate_external_id")
        view = {"external_id": found["view"]["external_id"]} | view  # omitted external_id is kept
        full = self._store_view(view, found["id"])
        self._emit("view", view_id=found["id"], action="update", user=found["user"])
        return {"view": full}

    @_method("views.publish", "user_id view", "invalid_arguments hash_conflict view_too_large")
    def _views_publish(self, a: _Args) -> dict[str, Any]:
        user = a.s("user_id")
        if user not in self._users:
            raise SlackError("invalid_arguments", ["invalid `user_id`"])
        view = self._check_view(a.get("view"))
        if view["type"] != "home":
            raise SlackError("invalid_arguments", ["[ERROR] must be home [json-pointer:/view/type]"])
        vid = self._home_views.get(user)
        if vid and a.s("hash") and a.s("hash") != self._views[vid]["view"]["hash"]:
            raise SlackError("hash_conflict")
        vid = self._home_views.setdefault(user, vid or f"V{next(self._ids):08X}")
        full = self._store_view(view, vid, user=user)
        self._emit("view", view_id=vid, action="publish", user=user)
        return {"view": full}

    # usergroups.users.list follows ../shared/slack/methods/usergroups.users.list.json (t2, form only, no
    # cursor in practice: the whole list comes back at once).
    @_method("usergroups.users.list", "usergroup", "no_such_subteam", json_ok=False)
    def _usergroups_users_list(self, a: _Args) -> dict[str, Any]:
        group = self._usergroups.get(a.s("usergroup"))
        if group is None:
            raise SlackError("no_such_subteam")
        return {"users": list(group["users"])}

    # usergroups.users.update: its spec is NOT in ../shared/slack/methods. This follows Slack's public
    # reference (docs.slack.dev/reference/methods/usergroups.users.update): POST, form or JSON, tier 2, scope
    # usergroups:write; `usergroup` and `users` (comma-separated ids, the group's entire new list) are
    # required; the list replaces all members and cannot be empty (no_users_provided: a group is emptied with
    # usergroups.disable instead); unknown ids, bots and guests are refused with invalid_users; an unknown
    # group is no_such_subteam. The answer is the updated user group object.
    @_method(
        "usergroups.users.update",
        "usergroup users",
        "no_such_subteam invalid_users no_users_provided failed_for_some_users permission_denied "
        "plan_upgrade_required",
        missing={"users": "no_users_provided"},
    )
    def _usergroups_users_update(self, a: _Args) -> dict[str, Any]:
        group = self._usergroups.get(a.s("usergroup"))
        if group is None:
            raise SlackError("no_such_subteam")
        users = list(dict.fromkeys(a.csv("users")))
        if not users:
            raise SlackError("no_users_provided")
        if any(u not in self._users or self._users[u].get("is_bot") for u in users):
            raise SlackError("invalid_users")
        group["users"], group["date_update"], group["updated_by"] = users, int(time.time()), self.bot_user_id
        self._emit("usergroup", usergroup=group["id"], users=list(users))
        out = dict(group, users=list(users))
        if a.flag("include_count"):
            out["user_count"] = len(users)
        return {"usergroup": out}

    @_method("bookmarks.add", "title type", "channel_not_found invalid_bookmark_type invalid_link")
    def _bookmarks_add(self, a: _Args) -> dict[str, Any]:
        ch = self._chan(a.s("channel_id"))  # "required for public channels", i.e. always here
        if a.s("type") != "link":
            raise SlackError("invalid_bookmark_type")
        link = a.s("link")
        if not link.startswith(("http://", "https://")):
            raise SlackError("invalid_link")
        bookmark: dict[str, Any] = _BOOKMARK_STATIC | {"id": f"Bk{next(self._ids):08X}", "channel_id": ch.id}
        bookmark |= {"title": a.s("title"), "link": link, "emoji": a.s("emoji") or None}
        bookmark |= {"date_created": int(time.time()), "last_updated_by_user_id": self.bot_user_id}
        bookmark["last_updated_by_team_id"] = self.team_id
        self._bookmarks.setdefault(ch.id, []).append(bookmark)
        self._emit("bookmark", channel=ch.id, id=bookmark["id"])
        return {"bookmark": bookmark}
