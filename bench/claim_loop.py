"""The baseline of benchmark 3: the least a worker can do per page, on the same `timers` table.

One statement claims a batch of due rows (`SELECT … FOR UPDATE SKIP LOCKED` inside an `UPDATE … RETURNING`),
each claimed row goes to the Slack stand-in over HTTP with the same calls a page makes (the DM to the on-call,
the war-room line, the on-call's invite to the war room; the DM channel opened once per process) and is marked
done in its own transaction. Same engine settings as the bot (bot.db.make_engine: asyncpg, pool, pre-ping), same batch
(100) and concurrency (16) as `Worker`/`run_due`, same poll interval. No domain logic, no page rows, no
timeline, no outbox, no rate gate, no claim renewal: the figure the bot's CPU per page is compared with.

`python -m bench.claim_loop ID` runs one such process (configured by the bot's environment variables plus
BENCH_BASELINE_STEP and BENCH_BASELINE_USER); it prints `ready`, loops until SIGTERM, then prints `STATS {…}`
with the same keys as the bench's bot workers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any

import aiohttp
from sqlalchemy import bindparam, text
from sqlalchemy.types import DateTime

from bench.common import count_round_trips
from bot.db import make_engine

TEXT = "Baseline page {step}: {incident} is due"  # what the bench counts in the stand-in's calls
ROOM = "Baseline paging {step}: {incident}"

CLAIM = text(
    "UPDATE timers AS t SET state = 'claimed', claimed_by = :worker, claimed_at = :now "
    "FROM incidents AS i "
    "WHERE t.id IN (SELECT id FROM timers WHERE state = 'pending' AND kind = 'page' AND step = :step "
    "AND due_at <= :now ORDER BY due_at LIMIT :batch FOR UPDATE SKIP LOCKED) AND i.id = t.incident_id "
    "RETURNING t.id, t.incident_id, i.channel_id"
).bindparams(bindparam("now", type_=DateTime(timezone=True)))
MARK = text(
    "UPDATE timers SET state = 'done', fired_at = :now WHERE id = :id AND claimed_by = :worker"
).bindparams(bindparam("now", type_=DateTime(timezone=True)))


class Slack:
    def __init__(self, http: aiohttp.ClientSession, api: str, token: str) -> None:
        self.http, self.api = http, api
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, **args: str) -> dict[str, Any]:
        async with self.http.post(self.api + method, data=args, headers=self.headers) as r:
            body: dict[str, Any] = await r.json()
        if not body.get("ok"):
            raise RuntimeError(f"{method}: {body.get('error')}")
        return body


async def main(worker: str) -> None:
    step = os.environ.get("BENCH_BASELINE_STEP", "L4")
    user = os.environ.get("BENCH_BASELINE_USER", "UBENCH")
    poll = float(os.environ.get("WORKER_POLL_INTERVAL", "0.5"))
    batch, concurrency = 100, 16
    engine = make_engine(os.environ["DATABASE_URL"])
    counts = count_round_trips(engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fired = 0
    async with aiohttp.ClientSession() as http:
        slack = Slack(http, os.environ["SLACK_API_URL"], os.environ["SLACK_BOT_TOKEN"])
        dm = str((await slack.call("conversations.open", users=user))["channel"]["id"])
        gate = asyncio.Semaphore(concurrency)

        async def fire(timer_id: int, incident: str, channel: str) -> None:
            async with gate:
                await slack.call(
                    "chat.postMessage", channel=dm, text=TEXT.format(step=step, incident=incident)
                )
                await slack.call(
                    "chat.postMessage", channel=channel, text=ROOM.format(step=step, incident=incident)
                )
                await slack.call("conversations.invite", channel=channel, users=user)
                async with engine.begin() as conn:
                    await conn.execute(MARK, {"now": datetime.now(UTC), "id": timer_id, "worker": worker})

        async def tick() -> int:
            async with engine.begin() as conn:
                rows = (
                    await conn.execute(
                        CLAIM, {"worker": worker, "now": datetime.now(UTC), "step": step, "batch": batch}
                    )
                ).all()
            await asyncio.gather(*(fire(r.id, r.incident_id, r.channel_id) for r in rows))
            return len(rows)

        await tick()  # connect and warm up, as the bot's workers do before `ready`
        counts.clear()
        cpu0 = os.times()
        print("ready", flush=True)
        while not stop.is_set():
            n = await tick()
            fired += n
            if n < batch:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=poll)
                except TimeoutError:
                    pass
    cpu = os.times()
    await engine.dispose()
    stats = {
        "worker": worker,
        "fired": fired,
        "user_s": cpu.user - cpu0.user,
        "system_s": cpu.system - cpu0.system,
        **counts,
    }
    print("STATS " + json.dumps(stats), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
