"""App factory, security and the real processes: `incident-bot serve`, `worker`, `migrate`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.conftest import make_settings
from tests.support import BOT_TOKEN, SIGNING_SECRET, BotHarness, sign

BIN = Path(sys.executable).parent / "incident-bot"


async def test_healthz_and_readyz(bot: BotHarness) -> None:
    assert (await bot.http.get(f"{bot.url}/healthz")).json() == {"status": "ok"}
    ready = await bot.http.get(f"{bot.url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"database": "ok"}


def _command_body(text: str) -> bytes:
    return urlencode(
        {
            "command": "/incident",
            "text": text,
            "user_id": "UDECLARER",
            "channel_id": "C1",
            "team_id": "T0STANDIN",
            "trigger_id": "standin-sig",
            "response_url": "http://127.0.0.1:9/x",
        }
    ).encode()


async def test_bad_signature_is_401_and_stores_nothing(bot: BotHarness) -> None:
    body = _command_body("declare P1 forged")
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, secret="wrong-secret")}
    resp = await bot.http.post(f"{bot.url}/slack/events", content=body, headers=headers)
    assert resp.status_code == 401
    await bot.drain()
    assert await bot.incidents() == []
    assert bot.slack.calls == []


async def test_stale_timestamp_is_401(bot: BotHarness) -> None:
    body = _command_body("declare P1 replayed")
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, ts=int(time.time()) - 301)}
    resp = await bot.http.post(f"{bot.url}/slack/events", content=body, headers=headers)
    assert resp.status_code == 401
    await bot.drain()
    assert await bot.incidents() == []


async def test_readyz_503_when_database_unreachable(slack, tmp_path: Path) -> None:
    from sandbox.servers import LoopServer
    from wiring.app import create_app

    settings = make_settings("postgresql+asyncpg://nobody@127.0.0.1:1/nothing", slack)
    app = create_app(settings)
    async with LoopServer(app) as server, httpx.AsyncClient() as http:
        resp = await http.get(f"{server.url}/readyz")
        assert resp.status_code == 503 and resp.json() == {"database": "unreachable"}
        assert (await http.get(f"{server.url}/healthz")).status_code == 200


def _env(db_url: str, slack_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=f"{slack_url}/api/",
        DATABASE_URL=db_url,
        **extra,
    )
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    out = subprocess.run(
        [str(BIN), "serve"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 2
    assert "SLACK_BOT_TOKEN" in out.stderr and "SLACK_SIGNING_SECRET" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_migrate_then_serve_declares_over_http(db_url: str, slack, tmp_path: Path) -> None:
    """The issue's 'done when': a signed POST to a running `incident-bot serve` builds the war room."""
    env = _env(db_url, slack.base_url)
    if "postgresql" in db_url:
        subprocess.run(
            [str(BIN), "migrate", "--downgrade", "base"], env=env, check=True, timeout=120, cwd=tmp_path
        )
    mig = subprocess.run(
        [str(BIN), "migrate"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert mig.returncode == 0, mig.stderr
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        body = _command_body("declare P1 Factory orders failing")
        resp = httpx.post(
            f"{base}/slack/events",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)},
        )
        assert resp.status_code == 200 and "Declaring P1" in resp.json()["text"]
        for _ in range(200):
            if slack.calls_to("pins.add", ok=True):
                break
            time.sleep(0.05)
        channel = next(c for c in slack.channels.values() if c.name.startswith("incident-"))
        pinned = [m for m in slack.messages[channel.id] if m.pinned]
        assert len(pinned) == 1 and "Incident ID" in json.dumps(pinned[0].blocks)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    # ...and the rows are in the database the process used.
    import asyncio

    from sqlalchemy import select

    from bot.db import Database
    from bot.models import Incident, TimelineEvent

    async def rows() -> tuple[list[Incident], list[TimelineEvent]]:
        db = Database(db_url)
        try:
            async with db.session() as s:
                return (
                    list((await s.execute(select(Incident))).scalars()),
                    list((await s.execute(select(TimelineEvent))).scalars()),
                )
        finally:
            await db.dispose()

    incidents, events = asyncio.run(rows())
    assert [i.channel_id for i in incidents] == [channel.id]
    assert {"declared", "slack", "war_room_ready"} <= {e.kind for e in events}


def test_worker_exits_cleanly_on_sigterm(sqlite_url_sync: str, slack, tmp_path: Path) -> None:
    env = _env(sqlite_url_sync, slack.base_url)
    proc = subprocess.Popen([str(BIN), "worker"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the worker logs once its loop runs
    assert "started" in first, first
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert "stopped" in proc.stderr.read()


@pytest.fixture
def sqlite_url_sync(tmp_path: Path, sqlite_template: Path) -> str:
    import shutil

    path = tmp_path / "worker.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


async def test_bolt_listener_answers_like_the_fast_path(bot: BotHarness) -> None:
    """Socket Mode (and anything not served by the HTTP fast path) uses the Bolt listener: same ack, same effect."""
    from slack_bolt.request.async_request import AsyncBoltRequest

    body = urlencode(
        {
            "command": "/incident",
            "text": "declare P2 via bolt",
            "user_id": "UDECLARER",
            "channel_id": "C1",
            "team_id": "T0STANDIN",
            "trigger_id": "standin-bolt",
            "response_url": bot.slack.new_response_url(),
        }
    )
    assert bot.app is not None
    headers = {"content-type": "application/x-www-form-urlencoded", **sign(body.encode())}
    resp = await bot.app.state.bolt.async_dispatch(AsyncBoltRequest(body=body, headers=headers))
    assert resp.status == 200 and "Declaring P2" in resp.body
    await bot.drain()
    [inc] = await bot.incidents()
    assert inc.summary == "via bolt" and inc.provision_state == "ready"


async def test_unsigned_or_garbled_headers_are_401(bot: BotHarness) -> None:
    body = _command_body("declare P1 no signature")
    for headers in (
        {},
        {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": "v0=x"},
        {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=x"},
    ):
        resp = await bot.http.post(
            f"{bot.url}/slack/events",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        )
        assert resp.status_code == 401
    await bot.drain()
    assert await bot.incidents() == []
