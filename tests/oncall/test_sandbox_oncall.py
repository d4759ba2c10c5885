"""The sandbox's rotating roster and its "jump to the next hand-off" control, through the page's API."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.sandbox.test_sandbox_api import eventually
from wiring.sandbox import start_sandbox


async def test_jump_to_the_next_handoff_rotates_the_roster_and_sends_the_notices(tmp_path: Path) -> None:
    box = await start_sandbox(fast=True, db_url=f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}")
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(f"{box.url}/api/oncall/next-handoff", json={})
            assert r.status_code == 200
            body = r.json()
            assert body["ok"] and body["level"] == 1 and body["users"] == ["U08SRE"]
            assert 4 * 3600 - 120 <= body["offset_s"] <= 4 * 3600 + 5  # the rota started on the minute

            # Other levels' hand-offs (the sandbox's rota just started) may post around this one: look for it.
            def said(channel: str, words: str) -> bool:
                return any(words in m.text for m in box.standin.messages.get(channel, []))

            await eventually(lambda: said("DU08SRE", "now on call for L1"), within=30)
            channel = box.standin.channel_by_name("oncall")
            assert channel is not None
            await eventually(lambda: said(channel.id, "<@U08SRE> on call"), within=30)
    finally:
        await box.stop()
