"""The per-user declare limit is atomic: concurrent declarations from one user cannot all pass the count."""

from __future__ import annotations

import asyncio

from tests.support import BotHarness

LIMIT = 5  # DECLARE_RATE_LIMIT's default, which make_settings keeps


async def test_twelve_concurrent_declares_from_one_user_create_at_most_five(bot: BotHarness) -> None:
    sent = await asyncio.gather(*(bot.command(f"declare P3 Burst {i}", wait=False) for i in range(12)))
    await bot.drain()
    assert all(resp.status_code == 200 for resp, _ in sent)
    incidents = await bot.incidents()
    assert len(incidents) == LIMIT, [i.summary for i in incidents]
    refused = [url for _, url in sent if "Slow down" in bot.last_reply(url)]
    assert len(refused) == 12 - LIMIT
    # The limit is per user: someone else is not held back by the burst.
    await bot.command("declare P3 Someone else", user="UOTHER")
    assert len(await bot.incidents()) == LIMIT + 1
