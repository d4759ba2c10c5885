"""1. Slash-command ack latency under concurrent signed requests, as a ratio to a bare FastAPI endpoint.

Both apps run as uvicorn subprocesses with the same flags; this process is only the load generator (aiohttp,
one keep-alive connection per concurrent client). `/incident help` is the pure ack path (answered in the ack,
no I/O); `/incident declare` acks first and then does its work in a background task, so its ack latency shows
what a busy web process does to acks. Measured in alternating rounds (bare, bot, bot, bare, …) so drift on a
shared machine hits both sides alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from bench.common import (
    BenchResult,
    Row,
    Server,
    StandinClient,
    WebStack,
    ms,
    signed_headers,
    slash_form,
    summary,
    verdict,
)

TARGET_RATIO = 1.2
SLACK_LIMIT_S = 3.0

BodyFactory = Callable[[int], bytes]


async def load(
    url: str, make_body: BodyFactory, n: int, concurrency: int, *, timeout: float = 30.0
) -> tuple[list[float], int]:
    """`n` signed POSTs with `concurrency` in flight (closed loop). Returns latencies (s) and failures."""
    latencies: list[float] = []
    failures = 0
    counter = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as http:

        async def client() -> None:
            nonlocal failures
            for i in counter:
                body = make_body(i)
                headers = signed_headers(body)
                t0 = time.perf_counter()
                try:
                    async with http.post(url, data=body, headers=headers) as r:
                        await r.read()
                        ok = r.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                latencies.append(time.perf_counter() - t0)
                failures += not ok

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, failures


def _help_body(response_url: str) -> BodyFactory:
    return lambda i: slash_form("help", response_url=response_url, trigger=f"bench-help-{i}")


async def _segment(
    server: Server, make_body: BodyFactory, n: int, concurrency: int, acc: dict[str, Any]
) -> None:
    cpu0 = server.cpu_seconds()
    lat, failed = await load(f"{server.url}/slack/events", make_body, n, concurrency)
    acc["lat"].extend(lat)
    acc["failed"] += failed
    acc["cpu"] += server.cpu_seconds() - cpu0
    acc["n"] += n


def _acc() -> dict[str, Any]:
    return {"lat": [], "failed": 0, "cpu": 0.0, "n": 0}


async def _run(stack: WebStack, requests: int, concurrency: int, declares: int) -> BenchResult:
    assert stack.bot and stack.bare and stack.standin
    res = BenchResult("1", "Slash-command ack latency")
    standin = StandinClient(stack.standin.url)
    [reply_url] = await standin.response_urls(1)
    help_body = _help_body(reply_url)
    targets = {"bare": stack.bare, "bot": stack.bot}

    # Warm up: imports, Bolt's first request, connection pools, CPU caches.
    for server in targets.values():
        await load(f"{server.url}/slack/events", help_body, 300, concurrency)

    unloaded = {k: _acc() for k in targets}
    for _ in range(4):
        for key, server in targets.items():
            await _segment(server, help_body, 50, 1, unloaded[key])

    loaded = {k: _acc() for k in targets}
    rounds = 10
    per_round = max(requests // rounds, concurrency)
    round_ratios: list[float] = []
    for r in range(rounds):
        order = ["bare", "bot"] if r % 2 == 0 else ["bot", "bare"]
        p99: dict[str, float] = {}
        for key in order:
            seg = _acc()
            await _segment(targets[key], help_body, per_round, concurrency, seg)
            p99[key] = summary(seg["lat"])["p99"]
            for k in ("lat",):
                loaded[key][k].extend(seg[k])
            for k in ("failed", "cpu", "n"):
                loaded[key][k] += seg[k]
        round_ratios.append(p99["bot"] / p99["bare"])

    stats: dict[str, Any] = {
        "unloaded": {k: summary(v["lat"]) for k, v in unloaded.items()},
        "loaded": {k: summary(v["lat"]) for k, v in loaded.items()},
        "cpu_per_request_us": {k: 1e6 * v["cpu"] / max(v["n"], 1) for k, v in loaded.items()},
        "failures": {k: loaded[k]["failed"] + unloaded[k]["failed"] for k in targets},
        "round_p99_ratios": round_ratios,
    }
    bare, bot = stats["loaded"]["bare"], stats["loaded"]["bot"]
    ratio_p50, ratio_p99 = bot["p50"] / bare["p50"], bot["p99"] / bare["p99"]
    ok = ratio_p99 <= TARGET_RATIO and bot["p99"] < SLACK_LIMIT_S and stats["failures"]["bot"] == 0

    # Declare: the listener acks, then provisions in a background task (same process, same loop).
    urls = await standin.response_urls(declares)
    run_id = time.time_ns()
    before = len(await standin.responses())
    declare_acc = _acc()
    await _segment(
        stack.bot,
        lambda i: slash_form(
            f"declare P2 Bench declare ack {i}", response_url=urls[i], trigger=f"bench-decl-ack-{run_id}-{i}"
        ),
        declares,
        concurrency,
        declare_acc,
    )
    t0 = time.monotonic()
    done = before
    while time.monotonic() - t0 < 120 and done < before + declares:
        await asyncio.sleep(0.25)
        done = len(await standin.responses())
    drain_s = time.monotonic() - t0
    dec = summary(declare_acc["lat"])
    stats["declare"] = dec | {
        "failures": declare_acc["failed"],
        "replied": done - before,
        "work_drained_after_s": drain_s,
        "cpu_per_request_ms": 1e3 * declare_acc["cpu"] / max(declares, 1),
    }
    dec_ratio = dec["p99"] / bare["p99"]
    dec_ok = dec["p99"] < SLACK_LIMIT_S and declare_acc["failed"] == 0

    res.data = stats | {
        "requests": requests,
        "concurrency": concurrency,
        "declares": declares,
        "server": stack.stack_name,
        "ratio_p50": ratio_p50,
        "ratio_p99": ratio_p99,
        "declare_ratio_p99": dec_ratio,
    }
    c = concurrency
    res.rows = [
        Row(
            f"ack p50/p99, bare FastAPI, c={c}",
            f"{ms(bare['p50'])} / {ms(bare['p99'])}",
            "baseline",
            f"{stats['cpu_per_request_us']['bare']:.0f} µs CPU/req",
        ),
        Row(
            f"ack p50/p99, bot `/incident help`, c={c}",
            f"{ms(bot['p50'])} / {ms(bot['p99'])}",
            f"p99 ≤ {TARGET_RATIO}× bare, < 3 s",
            f"{ratio_p50:.2f}× / {ratio_p99:.2f}× {verdict(ok)}",
            ok,
        ),
        Row(
            f"ack p50/p99, bot `/incident declare`, c={c}",
            f"{ms(dec['p50'])} / {ms(dec['p99'])}",
            "< 3 s (info: × bare)",
            f"{dec['p50'] / bare['p50']:.2f}× / {dec_ratio:.2f}× {verdict(dec_ok)}",
            dec_ok,
        ),
        Row(
            "ack p50/p99 unloaded (c=1), bare vs bot",
            f"{ms(stats['unloaded']['bare']['p50'])}/{ms(stats['unloaded']['bare']['p99'])} vs "
            f"{ms(stats['unloaded']['bot']['p50'])}/{ms(stats['unloaded']['bot']['p99'])}",
            "info",
            f"{stats['unloaded']['bot']['p50'] / stats['unloaded']['bare']['p50']:.2f}× p50",
        ),
    ]
    srt = sorted(round_ratios)
    res.notes.append(
        f"Per-round p99 ratio bot/bare: median {srt[len(srt) // 2]:.2f}, range {srt[0]:.2f}–{srt[-1]:.2f} "
        "(the spread is the noise of a shared 2-core machine)."
    )
    res.notes.append(
        f"{requests} help requests per app in {rounds} alternating rounds at c={c} after 300 warm-up each; "
        f"{declares} declares at c={c} (their war rooms were all built {drain_s:.1f} s after the last ack). "
        f"Server CPU per ack: bare {stats['cpu_per_request_us']['bare']:.0f} µs, "
        f"bot {stats['cpu_per_request_us']['bot']:.0f} µs; {stack.stack_name} for both."
    )
    return res


def run(stack: WebStack, *, requests: int = 3000, concurrency: int = 50, declares: int = 100) -> BenchResult:
    t = time.monotonic()
    res = asyncio.run(_run(stack, requests, concurrency, declares))
    res.seconds = time.monotonic() - t
    return res
