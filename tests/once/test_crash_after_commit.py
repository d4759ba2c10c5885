"""A web process SIGKILLed after the ack committed and before its effects reached Slack: the worker
delivers each of them exactly once (the DM edit, the template edit, the war-room line)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from sqlalchemy import select

from bot.db import Database
from bot.models import Incident, OutboxMessage, Page
from sandbox.slack_standin import SlackStandin
from tests.chaos.procs import Proc, bot_env, command_body, post_command


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


async def test_kill_after_commit_before_delivery(db_url: str, slack: SlackStandin, tmp_path: Path) -> None:
    env = bot_env(db_url, slack.base_url)
    db = Database(db_url)
    web = Proc("web", env, tmp_path).start()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            body = command_body(
                "declare P1 Orders failing",
                user="UDECLARER",
                channel="CGENERAL",
                trigger_id=f"t-{uuid.uuid4().hex}",
                response_url=slack.new_response_url(),
            )
            assert (await post_command(http, web.url, body)).status_code == 200

            async def paged() -> bool:
                async with db.session() as s:
                    inc = (await s.execute(select(Incident))).scalar_one_or_none()
                    page = (await s.execute(select(Page))).scalar_one_or_none()
                    # The DM itself is an outbox row: it has gone out once its channel and ts are recorded.
                    sent = bool(page and (page.dm.get("U01PRIMARY") or {}).get("ts"))
                    return bool(inc and inc.provision_state == "ready" and sent)

            await _until(paged)
            async with db.session() as s:
                inc = (await s.execute(select(Incident))).scalar_one()
                page = (await s.execute(select(Page))).scalar_one()
            dm = page.dm["U01PRIMARY"]
            # Slack refuses edits at the moment of the ack: the web process commits, fails to deliver, dies.
            slack.fail_always("chat.update", status=500)
            body = command_body(
                "ack",
                user="UDECLARER",
                channel=str(inc.channel_id),
                trigger_id=f"t-{uuid.uuid4().hex}",
                response_url=slack.new_response_url(),
            )
            assert (await post_command(http, web.url, body)).status_code == 200

            async def committed_and_tried() -> bool:
                async with db.session() as s:
                    rows = list((await s.execute(select(OutboxMessage))).scalars())
                # Committed, tried, and not held by a delivery (a held row would wait out its lease).
                tried = any(r.method == "page_edit" and r.attempts > 0 for r in rows)
                return tried and not any(r.state == "sending" for r in rows)

            await _until(committed_and_tried)
        web.kill()
    finally:
        web.kill()
    slack.clear_faults()
    posts_before = len(slack.calls_to("chat.postMessage", ok=True))

    worker = Proc("worker", env, tmp_path).start()
    try:

        async def drained() -> bool:
            async with db.session() as s:
                rows = (await s.execute(select(OutboxMessage))).scalars()
                return all(r.state == "sent" for r in rows)

        await _until(drained)
    finally:
        worker.stop()
        await db.dispose()

    edits = [c for c in slack.calls_to("chat.update", ok=True) if c.args.get("ts") == dm["ts"]]
    assert len(edits) == 1
    template_edits = [
        c for c in slack.calls_to("chat.update", ok=True) if c.args.get("ts") == inc.template_ts
    ]
    assert len(template_edits) == 1
    lines = [
        c
        for c in slack.calls_to("chat.postMessage", ok=True)[posts_before:]
        if "Acknowledged by" in str(c.args.get("text"))
    ]
    assert len(lines) == 1
