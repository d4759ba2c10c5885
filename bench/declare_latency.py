"""2. `/incident declare` → channel created, template pinned and L1 paged, against the loopback stand-in.

A signed P1 declare goes to the bot's web process (uvicorn subprocess, SQLite); the stand-in (its own
subprocess) timestamps every Web API call. Per declare we take, from the moment the request was sent:
`conversations.create` (war room), `pins.add` (template pinned), the L1 page DM (`chat.postMessage` into a
DM channel naming the incident) and the reply on the response_url. "Done" is when all three of channel, pin and
L1 page have happened. Sequential declares give the latency one responder sees; a burst of simultaneous
declares (every on-call declaring at once) is reported alongside.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp

from bench.common import BenchResult, Row, StandinClient, WebStack, ms, signed_headers, slash_form, summary

TARGET_P95_S = 0.300
INC_RE = re.compile(r"INC-\d{8}-\d{6}(?:-\d+)?")
CHAN_RE = re.compile(r"<#(C[A-Z0-9]+)>")


async def _declare(
    http: aiohttp.ClientSession, url: str, text: str, response_url: str, trigger: str
) -> tuple[float, float, int]:
    body = slash_form(text, response_url=response_url, trigger=trigger)
    headers = signed_headers(body)
    sent = time.time()
    t0 = time.perf_counter()
    async with http.post(f"{url}/slack/events", data=body, headers=headers) as r:
        await r.read()
        status = r.status
    return sent, time.perf_counter() - t0, status


def _stages(
    sent: float, reply: dict[str, Any] | None, calls: list[dict[str, Any]]
) -> dict[str, float] | None:
    """Seconds from `sent` to each stage of the declare whose response_url got `reply`."""
    if reply is None:
        return None
    m_inc, m_chan = INC_RE.search(reply["text"]), CHAN_RE.search(reply["text"])
    if not m_inc or not m_chan:
        return None
    inc, chan = m_inc.group(0), m_chan.group(1)
    created = next(
        (c["at"] for c in calls if c["method"] == "conversations.create" and c["result_channel"] == chan),
        None,
    )
    pinned = next(
        (c["at"] for c in calls if c["method"] == "pins.add" and c["ok"] and c["channel"] == chan), None
    )
    paged = next(
        (
            c["at"]
            for c in calls
            if c["method"] == "chat.postMessage"
            and c["ok"]
            and c["channel"].startswith("D")
            and f"Page L1: {inc} " in c["text"]
        ),
        None,
    )
    if created is None or pinned is None or paged is None:
        return None
    return {
        "channel": created - sent,
        "pinned": pinned - sent,
        "l1_paged": paged - sent,
        "done": max(created, pinned, paged) - sent,
        "replied": reply["at"] - sent,
    }


async def _wait_replies(standin: StandinClient, urls: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    wanted = {u.rsplit("/", 1)[-1] for u in urls}
    deadline = time.monotonic() + timeout
    got: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        got = {r["id"]: r for r in await standin.responses() if r["id"] in wanted}
        # The first reply of a declare is the result (declare posts once, replacing the "Declaring…" ack).
        if len(got) == len(wanted):
            break
        await asyncio.sleep(0.05)
    return got


async def _batch(
    http: aiohttp.ClientSession, stack: WebStack, standin: StandinClient, n: int, concurrent: bool, tag: str
) -> tuple[list[dict[str, float]], list[float], int]:
    assert stack.bot is not None
    bot_url = stack.bot.url
    urls = await standin.response_urls(n)
    since = len(await standin.calls())
    acks: list[float] = []
    sent_at: dict[str, float] = {}
    bad = 0
    run_id = time.time_ns()  # trigger ids must be new: a repeated one is (rightly) treated as Slack's retry

    async def one(i: int) -> None:
        nonlocal bad
        sent, ack, status = await _declare(
            http,
            bot_url,
            f"declare P1 Bench {tag} {i}: checkout failing",
            urls[i],
            f"bench-{tag}-{run_id}-{i}",
        )
        acks.append(ack)
        sent_at[urls[i].rsplit("/", 1)[-1]] = sent
        bad += status != 200

    if concurrent:
        await asyncio.gather(*(one(i) for i in range(n)))
        replies = await _wait_replies(standin, urls, 60)
    else:
        replies = {}
        for i in range(n):
            await one(i)
            replies |= await _wait_replies(standin, urls[i : i + 1], 30)
    calls = await standin.calls(since)
    stages = []
    for rid, sent in sent_at.items():
        st = _stages(sent, replies.get(rid), calls)
        if st is None:
            bad += 1
        else:
            stages.append(st)
    return stages, acks, bad


async def _run(stack: WebStack, n: int, burst: int) -> BenchResult:
    assert stack.standin is not None
    res = BenchResult("2", "Declare → war room + L1 page")
    standin = StandinClient(stack.standin.url)
    async with aiohttp.ClientSession() as http:
        await _batch(http, stack, standin, 3, False, "warm")
        seq, seq_acks, seq_bad = await _batch(http, stack, standin, n, False, "seq")
        await asyncio.sleep(0.5)
        bur, _, bur_bad = await _batch(http, stack, standin, burst, True, "burst")
    keys = ("channel", "pinned", "l1_paged", "done", "replied")
    seq_s = {k: summary([s[k] for s in seq]) for k in keys}
    bur_s = {k: summary([s[k] for s in bur]) for k in keys}
    done = seq_s["done"]
    ok = done["p95"] <= TARGET_P95_S and seq_bad == 0
    res.data = {
        "sequential": seq_s,
        "burst": bur_s,
        "sequential_n": n,
        "burst_n": burst,
        "failures": {"sequential": seq_bad, "burst": bur_bad},
        "ack": summary(seq_acks),
    }
    res.rows = [
        Row(
            f"declare → channel+pin+L1 page, p50/p95 (sequential, n={n})",
            f"{ms(done['p50'])} / {ms(done['p95'])}",
            f"p95 ≤ {TARGET_P95_S * 1000:.0f} ms",
            f"{done['p95'] / TARGET_P95_S:.2f}× of target {'OK' if ok else 'MISS'}",
            ok,
        ),
        Row(
            "  stages p50: channel / pinned / L1 paged / reply",
            " / ".join(ms(seq_s[k]["p50"]) for k in ("channel", "pinned", "l1_paged", "replied")),
            "info",
            f"ack p50 {ms(res.data['ack']['p50'])}",
        ),
        Row(
            f"declare → done p50/p95, burst of {burst} at once",
            f"{ms(bur_s['done']['p50'])} / {ms(bur_s['done']['p95'])}",
            "info",
            f"{bur_bad} failed" if bur_bad else "all complete",
        ),
    ]
    if seq_bad or bur_bad:
        res.notes.append(f"{seq_bad + bur_bad} declares did not complete all stages (see data.failures)")
    return res


def run(stack: WebStack, *, n: int = 30, burst: int = 10) -> BenchResult:
    t = time.monotonic()
    res = asyncio.run(_run(stack, n, burst))
    res.seconds = time.monotonic() - t
    return res
