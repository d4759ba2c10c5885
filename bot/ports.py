"""Interfaces the domain talks through. The only Slack implementation is handlers/slack_chat.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Blocks = list[dict[str, Any]]


class ChatError(Exception):
    """A chat call failed after the client's own retries. `error` is Slack's code (or 'timeout', 'http_500')."""

    def __init__(self, method: str, error: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.error in TRANSIENT_ERRORS or self.error.startswith("http_5")

    def backoff(self, attempts: int, cap: float) -> float:
        """Seconds to wait before retry number `attempts`: Slack's Retry-After when it gave one, else
        exponential, at most `cap`."""
        return max(self.retry_after or 0, min(2 ** min(attempts, 16), cap))


TRANSIENT_ERRORS = {
    "ratelimited",
    "rate_limited",
    "timeout",
    "connection_error",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}


class ChatPort(Protocol):
    async def create_channel(self, name: str) -> str: ...
    async def invite(self, channel: str, users: Sequence[str]) -> None: ...
    async def set_topic(self, channel: str, topic: str) -> None: ...
    async def post(
        self, channel: str, text: str, blocks: Blocks | None = None, thread_ts: str | None = None
    ) -> str: ...
    async def update(self, channel: str, ts: str, text: str, blocks: Blocks | None = None) -> None: ...
    async def pin(self, channel: str, ts: str) -> None: ...
    async def open_dm(self, user: str) -> str: ...
    async def ephemeral(self, channel: str, user: str, text: str, blocks: Blocks | None = None) -> None: ...
    async def respond(self, response_url: str, payload: dict[str, Any]) -> None: ...
    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> str: ...
    async def permalink(self, channel: str, ts: str) -> str | None: ...
    async def user_tz(self, user: str) -> str | None: ...
    async def archive(self, channel: str) -> None: ...
    async def members(self, channel: str) -> list[str]: ...
    async def history_message(self, channel: str, ts: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Reply:
    """What a flow wants said back to the person who asked: rendered by the handler."""

    text: str
    blocks: Blocks | None = None
    ok: bool = True


class Renderer(Protocol):
    """Turns domain data into chat messages (Block Kit lives in handlers/blocks.py)."""

    def template(self, card: Any) -> tuple[str, Blocks]: ...
    def declared_reply(self, card: Any, channel_id: str | None, error: str | None) -> tuple[str, Blocks]: ...
    def page_dm(self, page: Any) -> tuple[str, Blocks]: ...
    def page_acked(self, page: Any, by: str) -> tuple[str, Blocks]: ...
    def drill_started(self, drill_id: int, report: dict[str, Any]) -> tuple[str, Blocks]: ...
    def drill_report(self, drill_id: int, report: dict[str, Any]) -> tuple[str, Blocks]: ...
