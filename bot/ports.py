"""Interfaces the domain talks through. The only Slack implementation is handlers/slack_chat.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # type-only: the report's module builds on Services, which holds a Renderer
    from bot.dr.report import DrillReport

Blocks = list[dict[str, Any]]

# The message metadata type our own once-only posts carry (chat.postMessage `metadata`).
MARK_EVENT = "incident_bot_effect"


@dataclass(frozen=True)
class Mark:
    """What makes a post findable again: Slack's chat.postMessage takes no idempotency key, so a post whose
    outcome is unknown (an answer lost to a 5xx or a timeout, a process killed after Slack took it) carries
    this in its metadata and is looked up in the channel's history before it is sent again. `data` rides
    along and comes back when the post is found (e.g. whether a page DM named the war room)."""

    key: str
    data: dict[str, Any] = field(default_factory=dict)


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
        self,
        channel: str,
        text: str,
        blocks: Blocks | None = None,
        thread_ts: str | None = None,
        *,
        mark: Mark | None = None,
    ) -> str:
        """Post a message; returns its ts. With `mark`, a 5xx is not blindly retried: the message is looked
        for first, and the one found is the answer."""
        ...

    async def find_marked(self, channel: str, key: str) -> dict[str, Any] | None:
        """A recent message of ours in `channel` posted with Mark(key): {"ts", **mark.data}, or None. Only the
        newest messages are searched (a marked post is looked for soon after its first try)."""
        ...

    async def post_to_name(self, name: str, text: str, blocks: Blocks | None = None) -> tuple[str, str]:
        """Post to a channel by its name; returns (channel id, ts)."""
        ...

    async def update(self, channel: str, ts: str, text: str, blocks: Blocks | None = None) -> None: ...
    async def pin(self, channel: str, ts: str) -> None: ...
    async def open_dm(self, user: str) -> str: ...
    async def ephemeral(self, channel: str, user: str, text: str, blocks: Blocks | None = None) -> None: ...
    async def respond(self, response_url: str, payload: dict[str, Any]) -> None: ...
    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> str: ...
    async def publish_home(self, user: str, view: dict[str, Any]) -> None: ...
    async def permalink(self, channel: str, ts: str) -> str | None: ...
    async def user_tz(self, user: str) -> str | None: ...
    async def user_name(self, user: str) -> str | None: ...
    async def archive(self, channel: str) -> None: ...
    async def add_bookmark(self, channel: str, title: str, link: str, emoji: str | None = None) -> None: ...
    async def members(self, channel: str) -> list[str]: ...
    async def history_message(self, channel: str, ts: str) -> dict[str, Any] | None: ...
    async def usergroup_members(self, usergroup: str) -> list[str]: ...
    async def set_usergroup_members(self, usergroup: str, users: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class Reply:
    """What a flow wants said back to the person who asked: rendered by the handler."""

    text: str
    blocks: Blocks | None = None
    ok: bool = True
    # Said to everyone in the channel the request came from, after the private answer (e.g. "X declared…").
    public: tuple[str, Blocks] | None = None


class Renderer(Protocol):
    """Turns domain data into chat messages (Block Kit lives in handlers/blocks.py)."""

    def template(self, card: Any) -> tuple[str, Blocks]: ...
    def declared_reply(self, card: Any, channel_id: str | None, error: str | None) -> tuple[str, Blocks]: ...
    def declared_public(self, card: Any, by: str, channel_id: str) -> tuple[str, Blocks]: ...
    def page_dm(self, page: Any) -> tuple[str, Blocks]: ...
    def page_acked(self, page: Any, by: str) -> tuple[str, Blocks]: ...
    def announcement(self, text: str, incident_id: str, channel_id: str | None) -> Blocks: ...
    def page_resolved(self, page: Any, by: str) -> tuple[str, Blocks]: ...
    def drill_started(self, drill_id: int, report: DrillReport) -> tuple[str, Blocks]: ...
    def drill_report(self, drill_id: int, report: DrillReport) -> tuple[str, Blocks]: ...
    def check_report(self, report: Any, incident_id: str | None, title: str) -> tuple[str, Blocks]: ...
