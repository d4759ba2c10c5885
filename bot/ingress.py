"""The front door of `/slack/events`: every byte an anonymous client sends is bounded and authenticated
before anything is decoded or parsed.

Order matters and is the whole point (issue 15, part 3):
1. size: Content-Length is checked, then the body is read incrementally and counted, so a 300 MB body is
   refused at the limit instead of being buffered (413);
2. signature: Slack's v0 HMAC over the *raw* bytes and a fresh timestamp (401), before any decoding, so an
   unauthenticated client never reaches a parser (a million-field form costs one HMAC, not a parse);
3. shape: the signed body is decoded strictly (UTF-8, JSON, a bounded number of form fields) and checked for the
   fields the listeners rely on (400);
4. text: NUL bytes and lone surrogates are removed from every string (PostgreSQL rejects them, Slack never
   means them).

Every refusal is one warning line, never a traceback. What survives is an `Inbound` the app hands to the slash
fast path or to Bolt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from bot.textclean import clean

log = logging.getLogger("incident_bot.ingress")

MAX_AGE = 60 * 5  # Slack's replay window for the timestamp header
MAX_FIELDS = 100  # a slash command has ~13 form fields, interactivity one (`payload`)
_TS_DIGITS = 12
_SIG = re.compile(r"v0=[0-9a-f]{64}")

Kind = Literal["command", "interactive", "event", "url_verification", "ssl_check"]


class Refused(Exception):
    """A request answered with `status` and a short, fixed message (never the caller's input)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Inbound:
    kind: Kind
    raw: bytes  # the signed bytes, for Bolt's own (second) verification
    body: dict[str, Any]  # parsed and cleaned: the form (slash), the payload (interactivity) or the JSON


async def read_body(headers: Any, stream: AsyncIterator[bytes], limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` (declared or counted)."""
    declared = headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()) or len(declared) > 15:
            raise Refused(400, "bad Content-Length")
        if int(declared) > limit:
            raise Refused(413, "request body too large")
    chunks: list[bytes] = []
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > limit:
            raise Refused(413, "request body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def verify(raw: bytes, headers: Any, secret: str, now: float | None = None) -> None:
    """Slack's v0 signature over the raw bytes; raises Refused(401). Headers are checked as ASCII text only
    (`²` is a digit to str.isdigit but not to int())."""
    ts = headers.get("x-slack-request-timestamp") or ""
    sig = headers.get("x-slack-signature") or ""
    if not secret or not (ts.isascii() and ts.isdigit()) or len(ts) > _TS_DIGITS or not _SIG.fullmatch(sig):
        raise Refused(401, "invalid signature")
    if abs((time.time() if now is None else now) - int(ts)) > MAX_AGE:
        raise Refused(401, "stale timestamp")
    expected = (
        "v0=" + hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
    )
    if not hmac.compare_digest(expected, sig):
        raise Refused(401, "invalid signature")


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise Refused(400, f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise Refused(400, f"{what} is not a JSON object")
    return value


def _str(d: Any, key: str) -> bool:
    return isinstance(d, dict) and isinstance(d.get(key), str)


def _check_interactive(p: dict[str, Any]) -> None:
    """The fields the listeners (and Bolt's matchers) index into, with the types they assume."""
    kind = p.get("type")
    if not isinstance(kind, str):
        raise Refused(400, "payload without a type")
    if "user" in p and not _str(p["user"], "id"):
        raise Refused(400, "payload user is malformed")
    for key in ("channel", "container", "team"):
        if p.get(key) is not None and not isinstance(p[key], dict):
            raise Refused(400, f"payload {key} is malformed")
    if "view" in p and not isinstance(p["view"], dict):  # Bolt's request logging indexes into any `view`
        raise Refused(400, "payload view is malformed")
    if "response_url" in p and not isinstance(p["response_url"], str):
        raise Refused(400, "payload response_url is malformed")
    if kind == "block_actions":
        actions = p.get("actions")
        if not isinstance(actions, list) or not actions or not all(_str(a, "action_id") for a in actions):
            raise Refused(400, "block_actions without actions")
        if not all(isinstance(a.get("value", ""), str) for a in actions):
            raise Refused(400, "action value is malformed")
    if kind in ("view_submission", "view_closed"):
        if not _str(p.get("view"), "callback_id"):
            raise Refused(400, "view without a callback_id")
        view: dict[str, Any] = p["view"]
        state = view.get("state", {})
        values = state.get("values", {}) if isinstance(state, dict) else None
        if not isinstance(values, dict) or not all(
            isinstance(block, dict) and all(isinstance(a, dict) for a in block.values())
            for block in values.values()
        ):
            raise Refused(400, "view state is malformed")
        if not isinstance(view.get("private_metadata", ""), str):
            raise Refused(400, "view private_metadata is malformed")


def _check_event(body: dict[str, Any]) -> Kind:
    kind = body.get("type")
    if kind == "url_verification":
        if not isinstance(body.get("challenge"), str):
            raise Refused(400, "url_verification without a challenge")
        return "url_verification"
    if not isinstance(kind, str):
        raise Refused(400, "event body without a type")
    if "view" in body and not isinstance(body["view"], dict):  # Bolt's request logging indexes into it
        raise Refused(400, "event body view is malformed")
    if kind == "event_callback":
        ev = body.get("event")
        if not _str(ev, "type"):
            raise Refused(400, "event_callback without an event type")
        if body.get("event_id") is not None and not isinstance(body["event_id"], str):
            raise Refused(400, "event_id is malformed")
    return "event"


def _check_command(fields: dict[str, Any], command_name: str) -> None:
    """A slash command's fields, from a form or a Socket Mode payload: all text (a form's always are), and
    our command; another app's is Refused(404)."""
    if not all(isinstance(v, str) for v in fields.values()):
        raise Refused(400, "command fields are malformed")
    if fields["command"] != command_name:
        raise Refused(404, "unknown command")


def _form(raw: bytes) -> dict[str, str]:
    # Counted on the bytes before any parser runs: parse_qsl on a million `&` is seconds of CPU.
    if raw.count(b"&") + 1 > MAX_FIELDS:
        raise Refused(400, "too many form fields")
    try:
        pairs = parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "form is not URL-encoded UTF-8") from None
    form: dict[str, str] = {}
    for k, v in pairs:
        form.setdefault(k, v)  # the first value wins, as in Slack's own parser
    return form


def parse(raw: bytes, content_type: str, command_name: str) -> Inbound:
    """A verified body -> Inbound, or Refused(400/404). Never raises anything else."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, "body is not UTF-8") from None
        body = _json_object(text, "body")
        return Inbound(_check_event(body), raw, clean(body))
    if media == "application/x-www-form-urlencoded":
        form = _form(raw)
        if "payload" in form:
            payload = _json_object(form["payload"], "payload")
            _check_interactive(payload)
            return Inbound("interactive", raw, clean(payload))
        if form.get("ssl_check") == "1":
            return Inbound("ssl_check", raw, {})
        if "command" in form:
            _check_command(form, command_name)
            return Inbound("command", raw, clean(form))
        raise Refused(400, "form is neither a command nor a payload")
    raise Refused(400, "unsupported content type")


INTERACTIVE = frozenset(
    {"block_actions", "view_submission", "view_closed", "shortcut", "message_action", "block_suggestion"}
)


def check_socket_payload(body: Any, command_name: str) -> dict[str, Any]:
    """A Socket Mode envelope's payload: the WebSocket is authenticated by the app token and Slack decoded it,
    so steps 1 and 2 do not apply, but the same shape checks (Refused 400/404) and text cleaning do."""
    if not isinstance(body, dict):
        raise Refused(400, "payload is not an object")
    if "command" in body:
        _check_command(body, command_name)
    elif body.get("type") in INTERACTIVE:
        _check_interactive(body)
    else:
        _check_event(body)
    cleaned: dict[str, Any] = clean(body)
    return cleaned


def refuse(exc: Refused, path: str) -> None:
    """The one log line a refused request is worth (no traceback, no caller-supplied text)."""
    log.warning("refused %s: %d %s", path, exc.status, exc.message)
