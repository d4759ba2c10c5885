"""ChatPort over the Slack Web API: the one place that knows it. Calls go out on the shared aiohttp session
with the bot token (slack_sdk's AsyncWebClient holds the token, URL and session, and makes the call itself
when no session is shared)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urljoin

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import response_url_allowed
from bot.metrics import Metrics
from bot.ports import MARK_EVENT, Blocks, ChatError, Mark
from handlers.rate_gate import RateGate

log = logging.getLogger("incident_bot.slack")


def make_client(token: str, base_url: str, timeout: int = 10) -> AsyncWebClient:
    """No SDK retries: SlackChat retries 429s, 5xx and connection errors itself, each retry through the rate
    gate (the SDK's handlers retried inside one call, past a pause another caller's 429 had just set)."""
    client = AsyncWebClient(token=token, base_url=base_url, timeout=timeout)
    client.retry_handlers[:] = []
    return client


def make_session(timeout: float) -> aiohttp.ClientSession:
    """One pooled HTTP session for Slack calls. With a shared session the SDK takes the timeout from it."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))


# A call that met 429 waits out Retry-After in the gate and tries again this many times before the caller
# (the outbox, a page timer) hears `ratelimited` and schedules it later.
RATE_LIMIT_RETRIES = 3
# A 5xx or a dropped connection is retried this many times, after SERVER_BACKOFF × n seconds, then through
# the gate (what the SDK's own handlers did, minus bypassing the gate). A timeout is not retried here: its
# outcome is unknown, and the callers (outbox, page timer, provisioning's name claim) own that decision.
SERVER_RETRIES = 2
SERVER_BACKOFF = 0.5
# How far back a once-only post is looked for (newest first): it was tried moments or minutes ago, but one
# person's DM can take hundreds of page DMs in that time (a burst of incidents all paging the same L1;
# chaos seed 1015590005 outran a 200-message search). 999 is conversations.history's largest page.
FIND_MARKED_DEPTH = 2000
FIND_MARKED_PAGE = 999


class SlackChat:
    def __init__(
        self,
        client: AsyncWebClient,
        metrics: Metrics | None = None,
        allow_response_url: Callable[[str], bool] | None = None,
        gate: RateGate | None = None,
    ) -> None:
        self.client = client
        self.allow_response_url = allow_response_url or (
            lambda url: response_url_allowed(url, str(client.base_url))
        )
        self.metrics = metrics
        self.gate = gate or RateGate()
        self._users: dict[str, dict[str, Any]] = {}
        self._dm: dict[str, str] = {}  # a user's IM channel never changes: one conversations.open per user

    async def _call(
        self,
        method: str,
        *,
        _found: Callable[[], Awaitable[dict[str, Any] | None]] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """`_found`: asked before a 5xx is retried (the failed call may have been carried out); what it
        returns is taken as the call's answer."""
        channel = kwargs.get("channel")
        limited_n = transient_n = 0
        while True:
            await self.gate.wait(method, str(channel) if channel else None)
            try:
                return await self._call_once(method, kwargs)
            except _RateLimited as limited:
                await self.gate.rate_limited(method, limited.error.retry_after)
                limited_n += 1
                if limited_n > RATE_LIMIT_RETRIES:
                    raise limited.error from None
            except _Transient as transient:
                transient_n += 1
                if transient_n > SERVER_RETRIES:
                    raise transient.error from None
                await asyncio.sleep(SERVER_BACKOFF * transient_n)
                if _found is not None and (answer := await _found()) is not None:
                    return answer

    async def _call_once(self, method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        session = self.client.session
        try:
            if session is not None and not session.closed:
                status, data, retry = await self._post(session, method, kwargs)
            else:  # no pooled session to share (some tests, one-off tools): the SDK opens one per call
                status, data, retry = await self._post_sdk(method, kwargs)
        except TimeoutError as exc:
            raise self._error(method, "timeout") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise _Transient(self._error(method, "connection_error")) from exc
        if status == 200 and isinstance(data, dict) and data.get("ok"):
            return data
        error = str((data if isinstance(data, dict) else {}).get("error") or f"http_{status}")
        err = self._error(method, error, _seconds(retry))
        if status == 429:
            raise _RateLimited(err)
        if status >= 500:
            raise _Transient(err)
        raise err

    async def _post(
        self, session: aiohttp.ClientSession, method: str, kwargs: dict[str, Any]
    ) -> tuple[int, Any, str | None]:
        """The Web API call itself, on the shared session, as the SDK makes it (a JSON body, or the
        arguments in the query string for methods that take no JSON; the bot token in the header) without
        the SDK's per-call machinery, which cost more CPU than the HTTP request (benchmark 3)."""
        url = urljoin(str(self.client.base_url), method)
        headers = {"Authorization": f"Bearer {self.client.token}", "User-Agent": USER_AGENT}
        if _json_ok(method):
            headers["Content-Type"] = "application/json;charset=utf-8"
            request: dict[str, Any] = {"data": json.dumps(kwargs)}
        else:
            request = {"params": _query(kwargs)}
        async with session.post(url, headers=headers, **request) as resp:
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = None  # not JSON (a proxy's error page): the status says what happened
            return resp.status, data, resp.headers.get("Retry-After")

    async def _post_sdk(self, method: str, kwargs: dict[str, Any]) -> tuple[int, Any, str | None]:
        try:
            resp = await self.client.api_call(
                method, json=kwargs if _json_ok(method) else None, params=None if _json_ok(method) else kwargs
            )
            return 200, resp.data, None
        except SlackApiError as exc:
            headers = exc.response.headers or {}
            return exc.response.status_code, exc.response.data, headers.get("Retry-After")

    def _error(self, method: str, error: str, retry_after: float | None = None) -> ChatError:
        if self.metrics is not None:
            self.metrics.slack_errors.labels(method=method, error=error).inc()
        log.warning("slack %s failed: %s", method, error)
        return ChatError(method, error, retry_after=retry_after)

    async def create_channel(self, name: str) -> str:
        data = await self._call("conversations.create", name=name)
        return str(data["channel"]["id"])

    async def invite(self, channel: str, users: Sequence[str]) -> None:
        try:
            await self._call("conversations.invite", channel=channel, users=",".join(users))
        except ChatError as exc:
            if exc.error != "already_in_channel":
                raise
            # Slack refuses the whole list when any one of them is a member already (e.g. a paged user the
            # page's own invite added first): invite the rest one by one.
            if len(users) > 1:
                for user in users:
                    await self.invite(channel, [user])

    async def set_topic(self, channel: str, topic: str) -> None:
        await self._call("conversations.setTopic", channel=channel, topic=topic[:250])

    async def post(
        self,
        channel: str,
        text: str,
        blocks: Blocks | None = None,
        thread_ts: str | None = None,
        *,
        mark: Mark | None = None,
    ) -> str:
        args: dict[str, Any] = {"channel": channel, "text": text}
        if blocks:
            args["blocks"] = blocks
        if thread_ts:
            args["thread_ts"] = thread_ts
        found: Callable[[], Awaitable[dict[str, Any] | None]] | None = None
        if mark is not None:
            payload = {"key": mark.key, **mark.data}
            args["metadata"] = {"event_type": MARK_EVENT, "event_payload": payload}
            found = functools.partial(self.find_marked, channel, mark.key)
        data = await self._call("chat.postMessage", _found=found, **args)
        return str(data["ts"])

    async def find_marked(self, channel: str, key: str) -> dict[str, Any] | None:
        """Search the newest FIND_MARKED_DEPTH messages. A channel we may not read (a missing history scope)
        finds nothing: the caller then sends again, at least once rather than never."""
        cursor = ""
        seen = 0
        while seen < FIND_MARKED_DEPTH:
            args: dict[str, Any] = {
                "channel": channel,
                "limit": FIND_MARKED_PAGE,
                "include_all_metadata": True,
            }
            if cursor:
                args["cursor"] = cursor
            try:
                data = await self._call("conversations.history", **args)
            except ChatError as exc:
                if exc.transient:
                    raise
                log.warning("cannot look for marked posts in %s: %s", channel, exc.error)
                return None
            messages = [m for m in data.get("messages") or [] if isinstance(m, dict)]
            for m in messages:
                meta = m.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if meta.get("event_type") == MARK_EVENT and payload.get("key") == key and m.get("ts"):
                    return {**payload, "ts": str(m["ts"])}
            seen += len(messages)
            cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor or not messages:
                return None
        return None

    async def post_to_name(self, name: str, text: str, blocks: Blocks | None = None) -> tuple[str, str]:
        """chat.postMessage takes a channel name (`#name`) where the other methods want an id, and its answer
        carries the id: the Web API's only name-to-id lookup among the methods this bot uses."""
        args: dict[str, Any] = {"channel": f"#{name}", "text": text}
        if blocks:
            args["blocks"] = blocks
        data = await self._call("chat.postMessage", **args)
        return str(data["channel"]), str(data["ts"])

    async def update(self, channel: str, ts: str, text: str, blocks: Blocks | None = None) -> None:
        args: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
        if blocks is not None:
            args["blocks"] = blocks
        await self._call("chat.update", **args)

    async def pin(self, channel: str, ts: str) -> None:
        await self._call("pins.add", channel=channel, timestamp=ts)

    async def open_dm(self, user: str) -> str:
        if user not in self._dm:
            data = await self._call("conversations.open", users=user)
            self._dm[user] = str(data["channel"]["id"])
        return self._dm[user]

    async def ephemeral(self, channel: str, user: str, text: str, blocks: Blocks | None = None) -> None:
        args: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if blocks:
            args["blocks"] = blocks
        await self._call("chat.postEphemeral", **args)

    async def respond(self, response_url: str, payload: dict[str, Any]) -> None:
        if not self.allow_response_url(response_url):
            # The URL comes from the payload: never POST (the answer, or anything) to a host Slack doesn't own.
            raise self._error("response_url", "untrusted_host")
        session = self.client.session
        own = session is None
        session = session or aiohttp.ClientSession()
        try:
            async with session.post(response_url, json=payload, timeout=aiohttp.ClientTimeout(total=10)) as r:
                if r.status >= 400:
                    raise self._error("response_url", f"http_{r.status}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._error("response_url", "connection_error") from exc
        finally:
            if own:
                await session.close()

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> str:
        data = await self._call("views.open", trigger_id=trigger_id, view=view)
        return str(data.get("view", {}).get("id", ""))

    async def publish_home(self, user: str, view: dict[str, Any]) -> None:
        await self._call("views.publish", user_id=user, view=view)

    async def permalink(self, channel: str, ts: str) -> str | None:
        try:
            data = await self._call("chat.getPermalink", channel=channel, message_ts=ts)
        except ChatError:
            return None
        return data.get("permalink")

    async def _user(self, user: str) -> dict[str, Any] | None:
        """users.info, cached per process: names and zones change rarely, and PIRs name many people."""
        if user not in self._users:
            try:
                data = await self._call("users.info", user=user)
            except ChatError:
                return None
            self._users[user] = dict(data.get("user") or {})
        return self._users[user]

    async def user_tz(self, user: str) -> str | None:
        u = await self._user(user)
        return None if u is None else u.get("tz")

    async def user_name(self, user: str) -> str | None:
        u = await self._user(user)
        if not u:
            return None
        profile = u.get("profile") or {}
        # A PIR is a document: full names read better there than handles.
        name = u.get("real_name") or profile.get("real_name") or profile.get("display_name") or u.get("name")
        return str(name) if name else None

    async def add_bookmark(self, channel: str, title: str, link: str, emoji: str | None = None) -> None:
        args: dict[str, Any] = {"channel_id": channel, "title": title, "type": "link", "link": link}
        if emoji:
            args["emoji"] = emoji
        await self._call("bookmarks.add", **args)

    async def archive(self, channel: str) -> None:
        await self._call("conversations.archive", channel=channel)

    async def members(self, channel: str) -> list[str]:
        out: list[str] = []
        cursor = None
        while True:
            args: dict[str, Any] = {"channel": channel, "limit": 200}
            if cursor:
                args["cursor"] = cursor
            data = await self._call("conversations.members", **args)
            out += [str(m) for m in data.get("members", [])]
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return out

    async def history_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The top-level message at `ts`, or None (thread replies are not in conversations.history)."""
        data = await self._call("conversations.history", channel=channel, latest=ts, inclusive=True, limit=1)
        messages = data.get("messages") or []
        first = messages[0] if messages else None
        return dict(first) if isinstance(first, dict) and first.get("ts") == ts else None

    async def usergroup_members(self, usergroup: str) -> list[str]:
        data = await self._call("usergroups.users.list", usergroup=usergroup)
        return [str(u) for u in data.get("users") or []]

    async def set_usergroup_members(self, usergroup: str, users: Sequence[str]) -> None:
        """Replace every member (Slack refuses an empty list: a group is emptied by disabling it)."""
        await self._call("usergroups.users.update", usergroup=usergroup, users=",".join(users))


class _Retryable(Exception):
    """A failed call `_call` may try again (through the gate) before the caller hears `error`."""

    def __init__(self, error: ChatError) -> None:
        super().__init__(str(error))
        self.error = error


class _RateLimited(_Retryable):
    """A 429: the method pauses for every caller, then the call tries again."""


class _Transient(_Retryable):
    """A 5xx or a dropped connection: tried again after a short backoff."""


# Methods whose Slack reference says they take no JSON body (shared/slack limits, section 4).
_FORM_ONLY = {
    "chat.getPermalink",
    "conversations.info",
    "conversations.members",
    "users.info",
    "users.lookupByEmail",
    "usergroups.users.list",
}


def _json_ok(method: str) -> bool:
    return method not in _FORM_ONLY


USER_AGENT = "incident-bot (aiohttp)"


def _query(kwargs: dict[str, Any]) -> dict[str, str]:
    """Arguments as a query string takes them: booleans as Slack's 1/0, no empty ones."""
    out: dict[str, str] = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "1" if value else "0"
        elif isinstance(value, dict | list):
            out[key] = json.dumps(value)
        else:
            out[key] = str(value)
    return out


def _seconds(header: str | None) -> float | None:
    try:
        return float(header) if header else None
    except ValueError:
        return None
