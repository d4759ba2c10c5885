"""The sandbox links to the public status page, and the page changes by itself during a simulated Factory
outage (the sandbox's own worker runs the monitor)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from wiring.sandbox import Sandbox, start_sandbox


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Sandbox]:
    sandbox = await start_sandbox(fast=True, db_url=f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}")
    try:
        yield sandbox
    finally:
        await sandbox.stop()


async def test_sandbox_links_to_the_status_page_and_it_follows_an_outage(box: Sandbox) -> None:
    async with httpx.AsyncClient(timeout=20) as http:
        home = await http.get(f"{box.url}/")
        assert 'href="/status"' in home.text
        assert "All systems operational" in (await http.get(f"{box.url}/status")).text
        box.factory.sim.set_chaos("fail")
        state = None
        for _ in range(120):  # the worker's monitor runs every second in --fast mode
            data = json.loads((await http.get(f"{box.url}/status.json")).text)
            state = data["components"][0]
            if state["status"] != "operational":
                break
            await asyncio.sleep(0.25)
        assert state is not None and state["status"] in ("degraded", "partial_outage") and state["automated"]
