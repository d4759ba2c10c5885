"""The sandbox over real HTTP: its page API signs Slack-shaped requests to the real bot, shows the result."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.models import Incident, TimelineEvent
from wiring.sandbox import Sandbox, start_sandbox

L1 = "U01PRIMARY"


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Sandbox]:
    sandbox = await start_sandbox(fast=True, db_url=f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}")
    try:
        yield sandbox
    finally:
        await sandbox.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def eventually(check: Callable[[], Any], within: float = 15.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def state(http: httpx.AsyncClient, box: Sandbox, viewer: str = "UYOU", **q: str) -> dict[str, Any]:
    r = await http.get(f"{box.url}/api/state", params={"viewer": viewer, **q})
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


def general(box: Sandbox) -> str:
    ch = box.standin.channel_by_name("general")
    assert ch is not None
    return ch.id


async def declare(http: httpx.AsyncClient, box: Sandbox, text: str = "declare P1 Orders failing") -> str:
    r = await http.post(
        f"{box.url}/api/command", json={"user": "UYOU", "channel": general(box), "text": text}
    )
    assert r.status_code == 200
    assert r.json()["status"] == 200
    room = await eventually(
        lambda: next((c for c in box.standin.channels.values() if c.name.startswith("incident-")), None)
    )
    await eventually(lambda: any(m.pinned for m in box.standin.messages.get(room.id, [])))
    # The L1 page (sent by the web app or by the worker, whichever claims the timer first).
    await eventually(lambda: box.standin.messages.get(f"D{L1}"))
    await box.svc.tasks.drain(timeout=15)
    return str(room.id)


async def test_page_and_initial_state(box: Sandbox, http: httpx.AsyncClient) -> None:
    page = await http.get(f"{box.url}/")
    assert page.status_code == 200 and "/_sandbox/sandbox.js" in page.text
    for name in ("sandbox.js", "sandbox.css"):
        assert (await http.get(f"{box.url}/_sandbox/{name}")).status_code == 200
    assert (await http.get(f"{box.url}/_sandbox/../run.py")).status_code == 404
    assert (await http.get(f"{box.url}/healthz")).json() == {"status": "ok"}  # the bot, on the same port

    st = await state(http, box)
    assert st["viewer"] == "UYOU"
    assert st["roster"][0] == "UYOU" and L1 in st["roster"]
    names = {u["id"]: u["real_name"] for u in st["users"]}
    assert names[L1] == "Priya Primary"
    kinds = {c["name"]: c["kind"] for c in st["channels"]}
    assert kinds["general"] == kinds["announcements"] == "channel"
    assert kinds["Priya Primary"] == "im"
    assert st["factory"]["mode"] == "healthy"
    assert box.settings.announce_channel == box.standin.channel_by_name("announcements").id  # type: ignore[union-attr]
    assert box.settings.time_scale == pytest.approx(1 / 60)


async def test_declare_through_the_page(box: Sandbox, http: httpx.AsyncClient) -> None:
    room = await declare(http, box)

    st = await state(http, box)
    war = next(c for c in st["channels"] if c["id"] == room)
    assert war["kind"] == "incident" and "UYOU" in war["members"]
    pinned = [m for m in st["messages"][room] if m["pinned"]]
    assert len(pinned) == 1 and pinned[0]["blocks"][0]["type"] == "header"
    assert "Orders failing" in pinned[0]["text"]
    # The bot's answer to the response_url replaced the ack, visible to the declarer only.
    mine = [m for m in st["messages"][general(box)] if m.get("ephemeral")]
    assert len(mine) == 1 and "declared" in mine[0]["text"]
    others = await state(http, box, viewer=L1)
    assert not [m for m in others["messages"][general(box)] if m.get("ephemeral")]
    # L1 was paged by DM: an unread message with an Acknowledge button.
    dm = next(c for c in others["channels"] if c["id"] == f"D{L1}")
    assert dm["unread"] >= 1
    # The page, among the DMs (an on-call hand-off notice may land in the same DM, before or after it).
    buttons = [
        e
        for m in others["messages"][f"D{L1}"]
        for b in m.get("blocks") or []
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert any(b["action_id"] == "ack_incident" for b in buttons)
    # Looking at a channel marks it read for that viewer.
    await state(http, box, viewer=L1, channel=f"D{L1}")
    after = await state(http, box, viewer=L1)
    assert next(c for c in after["channels"] if c["id"] == f"D{L1}")["unread"] == 0


async def test_acknowledge_button_sends_block_actions(box: Sandbox, http: httpx.AsyncClient) -> None:
    await declare(http, box)
    # The page DM (an on-call hand-off notice may be the DM's latest message).
    dm = next(
        m for m in reversed(box.standin.messages[f"D{L1}"]) if m.blocks and "ack_incident" in str(m.blocks)
    )
    assert dm.blocks is not None
    button = next(e for b in dm.blocks if b["type"] == "actions" for e in b["elements"])
    r = await http.post(
        f"{box.url}/api/action",
        json={"user": L1, "channel": f"D{L1}", "ts": dm.ts, "block_id": "page_ack", "action": button},
    )
    assert r.status_code == 200 and r.json()["status"] == 200
    await box.svc.tasks.drain(timeout=15)

    def acked() -> bool:  # the page DM is edited in place
        msg = box.standin.message(f"D{L1}", dm.ts)
        return msg is not None and "acknowledged by" in msg.text.lower()

    await eventually(acked)
    async with box.svc.db.session() as s:
        inc = (await s.execute(select(Incident))).scalar_one()
    assert inc.acknowledged_at is not None
    st = await state(http, box, viewer=L1)
    assert any(m.get("ephemeral") and "Acknowledged" in m["text"] for m in st["messages"][f"D{L1}"])


async def test_view_submission_round_trip(box: Sandbox, http: httpx.AsyncClient) -> None:
    room = await declare(http, box)
    r = await http.post(
        f"{box.url}/api/command", json={"user": "UYOU", "channel": room, "text": "/incident update"}
    )
    assert r.json()["status"] == 200
    await box.svc.tasks.drain(timeout=15)
    views = (await state(http, box))["views"]
    assert len(views) == 1, "views.open should have shown the update form to its user"
    view = views[0]
    assert not (await state(http, box, viewer=L1))["views"]  # nobody else sees it

    def values(summary: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for block in view["view"]["blocks"]:
            if block["type"] != "input":
                continue
            el = block["element"]
            if el["type"] == "static_select":
                value = {"type": el["type"], "selected_option": el.get("initial_option")}
            else:
                text = {"summary": summary, "impact": "Every checkout fails"}.get(block["block_id"])
                value = {"type": el["type"], "value": text}
            out[block["block_id"]] = {el["action_id"]: value}
        return out

    bad = await http.post(
        f"{box.url}/api/view", json={"user": "UYOU", "view_id": view["id"], "values": values(None)}
    )
    assert bad.json()["errors"].get("summary") and not bad.json()["closed"]
    assert (await state(http, box))["views"], "a refused form stays open"

    good = await http.post(
        f"{box.url}/api/view",
        json={"user": "UYOU", "view_id": view["id"], "values": values("Orders failing")},
    )
    assert good.json() | {"seconds": 0} == {"status": 200, "errors": {}, "closed": True, "seconds": 0}
    await box.svc.tasks.drain(timeout=15)
    assert not (await state(http, box))["views"]

    def edited() -> bool:  # the web app or the worker's outbox edits the template
        template = next(m for m in box.standin.messages[room] if m.pinned)
        return template.edited and "Every checkout fails" in json.dumps(template.blocks)

    await eventually(edited)


async def test_pushpin_reaction_reaches_the_timeline(box: Sandbox, http: httpx.AsyncClient) -> None:
    room = await declare(http, box)
    said = await http.post(
        f"{box.url}/api/message", json={"user": L1, "channel": room, "text": "Factory returns 500 for @you"}
    )
    ts = said.json()["ts"]
    assert box.standin.message(room, ts).text == "Factory returns 500 for <@UYOU|you>"  # type: ignore[union-attr]
    r = await http.post(f"{box.url}/api/reaction", json={"user": "UYOU", "channel": room, "ts": ts})
    assert r.json()["added"] is True and r.json()["status"] == 200
    await box.svc.tasks.drain(timeout=15)
    async with box.svc.db.session() as s:
        kinds = (await s.execute(select(TimelineEvent.kind, TimelineEvent.text))).all()
    assert ("pinned", "Factory returns 500 for <@UYOU|you>") in kinds
    st = await state(http, box)
    msg = next(m for m in st["messages"][room] if m["ts"] == ts)
    assert msg["reactions"] == [{"name": "pushpin", "users": ["UYOU"], "count": 1}]


async def test_factory_controls(box: Sandbox, http: httpx.AsyncClient) -> None:
    r = await http.post(f"{box.url}/api/factory/fail")
    assert r.json()["factory"]["mode"] == "fail"
    login = {"email": "d@jwt.com", "password": "diner"}
    token = (await http.put(f"{box.factory.service_url}/api/auth", json=login)).json()["token"]
    order = await http.post(
        f"{box.factory.service_url}/api/order",
        json={"items": [{"menuId": 1}]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert order.status_code == 500 and order.json()["followLinkToEndChaos"].startswith(
        box.factory.factory_url
    )
    assert (await http.post(f"{box.url}/api/factory/healthy")).json()["factory"]["mode"] == "healthy"
    assert (await http.post(f"{box.url}/api/factory/bogus")).status_code == 400


async def test_events_stream_announces_changes(box: Sandbox, http: httpx.AsyncClient) -> None:
    async with http.stream("GET", f"{box.url}/api/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()

        async def next_version() -> int:
            async for line in lines:
                if line.startswith("data:"):
                    return int(json.loads(line[5:])["version"])
            raise AssertionError("stream ended")

        first = await asyncio.wait_for(next_version(), 5)
        await http.post(
            f"{box.url}/api/message", json={"user": "UYOU", "channel": general(box), "text": "hello"}
        )
        assert await asyncio.wait_for(next_version(), 5) > first


async def test_bad_requests_are_refused(box: Sandbox, http: httpx.AsyncClient) -> None:
    r = await http.post(
        f"{box.url}/api/command", json={"user": "UNOBODY", "channel": general(box), "text": "help"}
    )
    assert r.status_code == 400
    assert (await http.post(f"{box.url}/api/command", content=b"nope")).status_code == 400
    # An unsigned request straight to the bot is refused: the page's requests get through only by signing.
    raw = await http.post(f"{box.url}/slack/events", data={"command": "/incident", "text": "help"})
    assert raw.status_code == 401


def test_cli_prints_one_url_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "cli.db"
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "wiring.cli", "sandbox", "--port", str(port), "--db", str(db), "--fast"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        urls = re.findall(r"https?://\S+", first)
        assert urls == [f"http://127.0.0.1:{port}/"], first
        assert httpx.get(urls[0], timeout=10).status_code == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert not re.findall(r"https?://", out), "only one URL is printed"
    assert db.exists()
