"""4. Health-check fan-out: `run_probes` wall time vs its slowest probe (target ≤ 1.1× + 50 ms).

The simulated Factory and pizza service (sandbox.factory_sim) are served by uvicorn in a thread of this
process, each wrapped in an ASGI layer that holds every request for an artificial per-endpoint delay (the sim
itself has none), so the probes' latencies differ the way real endpoints' do. `verify` needs the JWT that
`order` returns, so order → verify is one chain by design; the uniform-delay scenario shows that chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import statistics
import threading
import time
from typing import Any

import uvicorn

from bench.common import API_KEY, BenchResult, Row, free_port

TARGET_FACTOR, TARGET_SLACK_MS = 1.1, 50.0

# (app, method, path) -> seconds. Mixed: a slow independent probe (service docs) dominates.
MIXED = {
    ("factory", "GET", "/api/docs"): 0.120,
    ("factory", "GET", "/api/vendor"): 0.200,
    ("factory", "POST", "/api/order"): 0.150,
    ("factory", "POST", "/api/order/verify"): 0.060,
    ("factory", "GET", "/.well-known/jwks.json"): 0.080,
    ("service", "GET", "/"): 0.040,
    ("service", "GET", "/api/docs"): 0.250,
}
UNIFORM = dict.fromkeys(MIXED, 0.100)


class Delay:
    """ASGI wrapper: sleep `delays[(name, method, path)]` before handing the request on."""

    def __init__(self, app: Any, name: str, delays: dict[tuple[str, str, str], float]) -> None:
        self.app, self.name, self.delays = app, name, delays

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            pause = self.delays.get((self.name, scope["method"], scope["path"]), 0.0)
            if pause:
                await asyncio.sleep(pause)
        await self.app(scope, receive, send)


class ThreadServer:
    """uvicorn on host/port (so asyncio sets TCP_NODELAY on its sockets) in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False, loop="asyncio"
        )
        self.server = uvicorn.Server(config)
        setattr(self.server, "capture_signals", contextlib.nullcontext)  # noqa: B010 (the bench owns signals)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("simulated Factory did not start")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _measure(report: Any) -> dict[str, float]:
    lat = {r.name: r.latency_ms for r in report.results}
    chain = lat.get("order", 0.0) + lat.get("verify", 0.0)
    slowest = max(lat.values())
    return {
        "wall_ms": report.wall_ms,
        "slowest_ms": slowest,
        "chain_ms": chain,
        "critical_ms": max(slowest, chain),
        "sum_ms": sum(lat.values()),
        "ok_probes": sum(1 for r in report.results if r.status == "ok"),
        "probes": len(report.results),
    }


async def _scenario(
    run_probes: Any, factory: str, service: str, repeats: int, shared: bool
) -> list[dict[str, float]]:
    """`shared`: one httpx client for all checks, as bot.health.flows.run_check calls it (Services.http);
    otherwise run_probes builds its own each time (the standalone `incident-bot check`)."""
    import httpx

    async with httpx.AsyncClient(timeout=5.0) as http:
        kw = {"client": http} if shared else {}
        await run_probes(factory, API_KEY, service, timeout=5.0, **kw)  # warm-up: imports, JWT key, pool
        out = []
        for _ in range(repeats):
            out.append(_measure(await run_probes(factory, API_KEY, service, timeout=5.0, **kw)))
    return out


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _client_cost(n: int = 5) -> float:
    """Median ms to construct an httpx.AsyncClient (what run_probes does when given no client)."""
    import httpx

    times = []
    for _ in range(n):
        t = time.perf_counter()
        httpx.AsyncClient(timeout=5.0)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def run(*, repeats: int = 15) -> BenchResult:
    res = BenchResult("4", "Health-check fan-out")
    t = time.monotonic()
    try:
        probes = importlib.import_module("bot.health.probes")
        sim_mod = importlib.import_module("sandbox.factory_sim")
    except ModuleNotFoundError as exc:
        res.skipped = f"{exc.name} is not in this build"
        return res
    delays: dict[tuple[str, str, str], float] = {}
    sim = sim_mod.FactorySim(throttle_delay=1.0)
    factory = ThreadServer(Delay(sim.app, "factory", delays))
    service = ThreadServer(Delay(sim.service_app, "service", delays))
    try:
        sim.base_url = factory.start()
        sim.service_factory_url = sim.base_url
        service.start()
        scenarios: dict[str, list[dict[str, float]]] = {}
        plan: tuple[tuple[str, dict[tuple[str, str, str], float], bool], ...] = (
            ("mixed", MIXED, False),
            ("mixed_shared_client", MIXED, True),
            ("uniform_shared_client", UNIFORM, True),
            ("none", {}, False),
            ("none_shared_client", {}, True),
        )
        for name, table, shared in plan:
            delays.clear()
            delays.update(table)
            scenarios[name] = asyncio.run(
                _scenario(probes.run_probes, factory.url, service.url, repeats, shared)
            )
        client_ms = _client_cost()
    finally:
        sim.release_hangs()
        service.stop()
        factory.stop()

    def line(name: str, label: str, against: str) -> Row:
        runs = scenarios[name]
        wall, ref = _median(runs, "wall_ms"), _median(runs, against)
        worst = max(r["wall_ms"] - (TARGET_FACTOR * r[against] + TARGET_SLACK_MS) for r in runs)
        ok = wall <= TARGET_FACTOR * ref + TARGET_SLACK_MS
        return Row(
            label,
            f"{wall:.0f} ms vs {ref:.0f} ms",
            "≤ 1.1× + 50 ms",
            f"{wall / ref:.2f}× (+{wall - ref:.0f} ms) {'OK' if ok else 'MISS'}; worst run {worst:+.0f} ms vs limit",
            ok,
        )

    mixed = scenarios["mixed"]
    res.rows = [
        line(
            "mixed_shared_client", "check wall vs slowest probe (shared client, as run_check)", "slowest_ms"
        ),
        line("mixed", "  same, a new client per check (CLI `incident-bot check`)", "slowest_ms"),
        line("uniform_shared_client", "  all 100 ms: wall vs order→verify chain", "critical_ms"),
        line("none_shared_client", "  no added delay (sim as is), shared client", "slowest_ms"),
        line("none", "  no added delay, a new client per check (CLI)", "slowest_ms"),
    ]
    uni = scenarios["uniform_shared_client"]
    res.data = {
        "repeats": repeats,
        "delays_ms": {"/".join(k): v * 1000 for k, v in MIXED.items()},
        "new_httpx_client_ms": client_ms,
        "scenarios": {
            name: {k: _median(runs, k) for k in runs[0]} | {"max_wall_ms": max(r["wall_ms"] for r in runs)}
            for name, runs in scenarios.items()
        },
    }
    res.notes.append(
        f"7 probes, {repeats} runs per scenario (median shown); mixed delays 40–250 ms per endpoint, sequential "
        f"probes would take {_median(mixed, 'sum_ms'):.0f} ms. run_probes without `client=` builds an "
        f"httpx.AsyncClient per check: {client_ms:.0f} ms here (SSL context + CA bundle), synchronously, inside "
        f"the timed fan-out and blocking the event loop. With 100 ms everywhere the check takes "
        f"{_median(uni, 'wall_ms') / _median(uni, 'slowest_ms'):.2f}× the slowest single probe: verify starts "
        "when order has produced the JWT it verifies."
    )
    res.seconds = time.monotonic() - t
    return res
