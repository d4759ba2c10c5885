"""The Slack rate gate: every Web API call of a process waits here for its turn.

Slack limits calls per method and workspace (tiers), and chat.postMessage to about one message a second per
channel. One gate per process (it lives in the ChatPort) holds a token bucket per method and one per
chat.postMessage channel. A 429's Retry-After pauses the whole method for every caller, and is written to SQL
(`slack_pauses`) so the other processes stop too. Waiters of one channel leave in arrival order (outbox
order is kept); across channels a page goes before a reminder or an announcement when tokens are short.

Time here is the wall clock (time.monotonic / time.time), never the domain clock: Slack's windows are real.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot import slack_pauses
from bot.db import Database
from bot.priority import BACKGROUND, NORMAL, PAGE, priority, with_priority

log = logging.getLogger("incident_bot.slack.gate")

# Slack's tiers (shared/slack limits §4): calls per minute per method and workspace, and the burst we allow.
TIERS: dict[str, tuple[float, float]] = {
    "t1": (1, 1),
    "t2": (20, 3),
    "t3": (50, 5),
    "t4": (100, 10),
    # "Special": chat.postMessage is limited per channel (below); its workspace cap is undocumented, so
    # this is our conservative assumption rather than a Slack figure.
    "t5": (600, 30),
}
# The tier of each method, from Slack's method reference (shared/slack/methods/*.json, `rate_limits`).
METHOD_TIER: dict[str, str] = {
    "auth.test": "t5",
    "bookmarks.add": "t2",
    "chat.getPermalink": "t5",
    "chat.postEphemeral": "t4",
    "chat.postMessage": "t5",
    "chat.update": "t3",
    "conversations.archive": "t2",
    "conversations.create": "t2",
    "conversations.history": "t3",
    "conversations.info": "t3",
    "conversations.invite": "t3",
    "conversations.join": "t3",
    "conversations.members": "t4",
    "conversations.open": "t3",
    "conversations.setPurpose": "t2",
    "conversations.setTopic": "t2",
    "pins.add": "t2",
    "pins.remove": "t2",
    "reactions.add": "t3",
    "usergroups.users.list": "t2",
    "usergroups.users.update": "t2",  # not in shared/slack/methods: Slack's public reference says Tier 2
    "users.info": "t4",
    "users.lookupByEmail": "t3",
    "views.open": "t4",
    "views.publish": "t4",
    "views.update": "t4",
}
DEFAULT_TIER = "t3"
# chat.postMessage: about one message a second per channel, with short bursts.
PER_CHANNEL = (60.0, 3.0)
PER_CHANNEL_METHODS = {"chat.postMessage"}


class PauseStore:
    """Where Retry-After pauses are shared between processes. The default shares nothing."""

    async def load(self) -> dict[str, float]:
        return {}

    async def save(self, method: str, until: float) -> None:
        return None


@dataclass(order=True)
class _Waiter:
    prio: int
    seq: int
    fut: asyncio.Future[None] = field(compare=False)


class Bucket:
    """A token bucket whose waiters are served by (priority, arrival); `fifo` ignores priority."""

    def __init__(self, per_minute: float, burst: float, *, fifo: bool = False) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, burst)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.fifo = fifo
        self.waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._pump: asyncio.Task[None] | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, prio: int, paused_until: Callable[[], float]) -> None:
        loop = asyncio.get_running_loop()
        w = _Waiter(0 if self.fifo else prio, next(self._seq), loop.create_future())
        heapq.heappush(self.waiters, w)
        if self._pump is None or self._pump.done():
            self._pump = loop.create_task(self._serve(paused_until))
        try:
            await w.fut
        except asyncio.CancelledError:
            if not w.fut.done():
                w.fut.cancel()
            raise

    async def _serve(self, paused_until: Callable[[], float]) -> None:
        # One pump per bucket hands out tokens in order, so no caller can overtake a waiting one.
        while self.waiters:
            head = self.waiters[0]
            if head.fut.done():  # cancelled
                heapq.heappop(self.waiters)
                continue
            pause = paused_until() - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            self._refill()
            if self.tokens < 1:
                await asyncio.sleep((1 - self.tokens) / self.rate)
                continue
            self.tokens -= 1
            heapq.heappop(self.waiters)
            head.fut.set_result(None)


class RateGate:
    def __init__(
        self,
        *,
        scale: float = 1.0,
        store: PauseStore | None = None,
        tiers: dict[str, tuple[float, float]] | None = None,
        refresh: float = 0.25,
    ) -> None:
        self.scale = scale
        self.store = store or PauseStore()
        self.tiers = tiers or TIERS
        self.refresh = refresh
        self._methods: dict[str, Bucket] = {}
        self._channels: dict[str, Bucket] = {}
        self._paused: dict[str, float] = {}  # method -> monotonic time until which nobody calls it
        self._loaded_at = 0.0
        self._load_lock: asyncio.Lock | None = None

    def _bucket(self, method: str) -> Bucket:
        b = self._methods.get(method)
        if b is None:
            per_min, burst = self.tiers[METHOD_TIER.get(method, DEFAULT_TIER)]
            b = self._methods[method] = Bucket(per_min * self.scale, burst * self.scale)
        return b

    def _channel_bucket(self, channel: str) -> Bucket:
        b = self._channels.get(channel)
        if b is None:
            per_min, burst = PER_CHANNEL
            b = self._channels[channel] = Bucket(per_min * self.scale, burst * self.scale, fifo=True)
        return b

    def paused_until(self, method: str) -> float:
        return self._paused.get(method, 0.0)

    async def _sync(self) -> None:
        """Learn other processes' pauses (at most every `refresh` seconds: one small query)."""
        if time.monotonic() - self._loaded_at < self.refresh:
            return
        self._load_lock = self._load_lock or asyncio.Lock()
        async with self._load_lock:
            if time.monotonic() - self._loaded_at < self.refresh:
                return
            try:
                shared = await self.store.load()
            except Exception as exc:  # the database being down must not stop Slack calls
                log.debug("could not load shared Slack pauses: %s", exc)
                shared = {}
            self._loaded_at = time.monotonic()
            offset = time.monotonic() - time.time()
            for method, wall_until in shared.items():
                mono = wall_until + offset
                if mono > self._paused.get(method, 0.0):
                    self._paused[method] = mono

    async def wait(self, method: str, channel: str | None = None) -> None:
        """Return when this call may go out."""
        await self._sync()
        prio = priority.get()
        if channel and method in PER_CHANNEL_METHODS:
            await self._channel_bucket(channel).take(prio, lambda: self.paused_until(method))
        await self._bucket(method).take(prio, lambda: self.paused_until(method))
        # A 429 may have arrived while we were queued at the channel: the method bucket waited it out.

    async def rate_limited(self, method: str, retry_after: float | None) -> None:
        """Slack said 429: nobody here calls `method` for Retry-After seconds, and the others are told."""
        seconds = max(1.0, retry_after or 1.0)
        until = time.monotonic() + seconds
        if until > self._paused.get(method, 0.0):
            self._paused[method] = until
        try:
            await self.store.save(method, time.time() + seconds)
        except Exception as exc:
            log.debug("could not share the Slack pause for %s: %s", method, exc)


class SqlPauseStore(PauseStore):
    """`slack_pauses` rows (bot.slack_pauses): one per method, the latest Retry-After's end."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self) -> dict[str, float]:
        return await slack_pauses.load(self.db)

    async def save(self, method: str, until: float) -> None:
        await slack_pauses.save(self.db, method, until)


def sql_store(db: Database) -> SqlPauseStore:
    return SqlPauseStore(db)


__all__ = [
    "BACKGROUND",
    "NORMAL",
    "PAGE",
    "Awaitable",
    "PauseStore",
    "RateGate",
    "SqlPauseStore",
    "priority",
    "sql_store",
    "with_priority",
]
