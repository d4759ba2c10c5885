"""Shared pieces of `make bench`: statistics, result rows, signed Slack requests, servers in subprocesses.

Every server under test runs in its own process (`uvicorn --factory`, the same flags for each) so the load
generator in the bench process never shares a GIL or an event loop with what it measures:
- `bare_app` is the baseline: one FastAPI POST endpoint that reads the body and answers a JSON ack;
- `wiring.app:create_app` is the product, configured through the environment like production;
- `standin_app` is the loopback Slack Web API plus a few `/_bench/` routes (call log with timestamps,
  response_url replies with arrival times, bulk channel creation) that benchmarks read over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Module level: FastAPI resolves the endpoint's (postponed) annotations against this module's globals.
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import event

from sandbox.page import sign as slack_sign

ROOT = Path(__file__).resolve().parent.parent
BOT_TOKEN = "xoxb-bench-token-0123456789"
SIGNING_SECRET = "bench-signing-secret-0123456789"
API_KEY = "0123456789abcdef0123456789abcdef"
BENCH_USERS = ("UDECLARER", "UBENCH")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- statistics and results --------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
        "mean": sum(values) / len(values) if values else math.nan,
    }


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    value = seconds * 1000
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


@dataclass
class Row:
    """One line of the table: what, measured value, target, ratio or verdict."""

    figure: str
    value: str
    target: str
    verdict: str
    ok: bool | None = None  # None: informational


@dataclass
class BenchResult:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISS"


# -- Slack-style signing -----------------------------------------------------------------------------------


def sign(body: bytes, secret: str = SIGNING_SECRET, ts: int | None = None) -> dict[str, str]:
    """Slack's request signature headers: the one implementation is the sandbox page's."""
    return slack_sign(secret, body, ts)


def slash_form(text: str, *, response_url: str, user: str = "UDECLARER", trigger: str = "") -> bytes:
    from urllib.parse import urlencode

    form = {
        "token": "legacy",
        "team_id": "T0STANDIN",
        "channel_id": "CGENERAL",
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/incident",
        "text": text,
        "response_url": response_url,
        "trigger_id": trigger or f"bench-{time.time_ns()}",
        "api_app_id": "A0BENCH",
    }
    return urlencode(form).encode()


def signed_headers(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}


# -- the apps served in subprocesses -----------------------------------------------------------------------


def bare_app() -> Any:
    """The baseline for the ack ratio: FastAPI, one POST endpoint, no Bolt, no signature check."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/slack/events")
    async def events(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"response_type": "ephemeral", "text": "ok"})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def standin_app() -> Any:
    """SlackStandin (roster users + bench users) and `/_bench/` routes; configured by BENCH_STANDIN_* env."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from bot.config import CONTENT_DIR
    from bot.playbook import load_roster
    from sandbox.slack_standin import SlackStandin

    standin = SlackStandin(token=os.environ.get("BENCH_STANDIN_TOKEN", BOT_TOKEN))
    standin.base_url = os.environ.get("BENCH_STANDIN_URL", "")
    roster = load_roster(CONTENT_DIR / "oncall.example.yaml")
    for uid in roster.all_users():
        standin.add_user(uid, roster.names.get(uid, uid).split()[0].lower())
    for uid in BENCH_USERS:
        standin.add_user(uid, uid.lower())
    replies: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == "response":
            payload = event.get("payload") or {}
            with lock:
                replies.append({"id": event["id"], "at": time.time(), "text": str(payload.get("text", ""))})

    standin.listeners.append(on_event)

    async def response_urls(request: Request) -> JSONResponse:
        n = int(request.query_params.get("n", "1"))
        return JSONResponse([standin.new_response_url() for _ in range(n)])

    async def calls(request: Request) -> JSONResponse:
        since = int(request.query_params.get("since", "0"))
        out = []
        for c in standin.calls[since:]:
            chan = c.args.get("channel") or c.args.get("channel_id") or ""
            got = c.response.get("channel")
            out.append(
                {
                    "method": c.method,
                    "ok": c.ok,
                    "error": c.error,
                    "at": c.at,
                    "channel": chan if isinstance(chan, str) else str(chan),
                    "name": str(c.args.get("name", "")),
                    "text": str(c.args.get("text", ""))[:200],
                    "result_channel": got.get("id") if isinstance(got, dict) else got,
                }
            )
        return JSONResponse(out)

    async def responses(request: Request) -> JSONResponse:
        with lock:
            return JSONResponse(list(replies))

    async def channels(request: Request) -> JSONResponse:
        n = int(request.query_params.get("n", "1"))
        prefix = request.query_params.get("prefix", "bench")
        made = [standin.add_channel(f"{prefix}-{i}", members=[standin.bot_user_id]).id for i in range(n)]
        return JSONResponse(made)

    async def reset(request: Request) -> JSONResponse:
        standin.reset()
        with lock:
            replies.clear()
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/_bench/response_urls", response_urls, methods=["POST"]),
            Route("/_bench/calls", calls, methods=["GET"]),
            Route("/_bench/responses", responses, methods=["GET"]),
            Route("/_bench/channels", channels, methods=["POST"]),
            Route("/_bench/reset", reset, methods=["POST"]),
            Mount("/", app=standin.app),
        ]
    )


# -- subprocess servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra or {})
    return env


def bot_env(database_url: str, slack_url: str, **extra: str) -> dict[str, str]:
    """The bot's Settings, the way production passes them: environment variables."""
    values = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": f"{slack_url}/api/",
        "DATABASE_URL": database_url,
        "PUBLIC_URL": "http://bot.bench",
        "FACTORY_URL": "http://127.0.0.1:9",
        "FACTORY_API_KEY": API_KEY,
        "PIZZA_SERVICE_URL": "http://127.0.0.1:9",
        "SERVER_SECRET": "bench-server-secret",
        "LOG_LEVEL": "WARNING",
        # These benches measure the bot, not Slack's tiers: at 1.0 the rate gate would pace 1,000 pages to one
        # on-call's DM at Slack's ~1/s per channel. The gate itself is measured in tests/once/test_rate_gate.py.
        "SLACK_RATE_SCALE": "1000",
    }
    values.update(extra)
    return child_env(values)


def server_flags(loop: str, http: str) -> list[str]:
    return ["--loop", loop, "--http", http, "--log-level", "warning", "--no-access-log", "--lifespan", "on"]


def resolved_server_stack(loop: str, http: str) -> str:
    """What uvicorn's `auto` picks here, for the report."""

    def have(mod: str) -> bool:
        try:
            __import__(mod)
        except ImportError:
            return False
        return True

    lp = ("uvloop" if have("uvloop") else "asyncio") if loop == "auto" else loop
    hp = ("httptools" if have("httptools") else "h11") if http == "auto" else http
    return f"uvicorn {importlib.metadata.version('uvicorn')} --loop {lp} --http {hp}"


class Proc:
    """A child process (own process group) that is always stopped: SIGTERM, then SIGKILL."""

    def __init__(
        self, argv: list[str], *, env: dict[str, str], cwd: str | None = None, name: str = ""
    ) -> None:
        self.name = name or argv[-1]
        self.argv = argv
        self.log = tempfile.NamedTemporaryFile(
            prefix=f"bench-{self.name.replace('/', '_').replace(':', '_')}-", suffix=".log", delete=False
        )
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)
        return self.popen.returncode

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> dict[str, float]:
        return rss_mb(self.pid)


class Server(Proc):
    """`python -m uvicorn --factory TARGET` on a free loopback port; ready when GET /healthz answers."""

    def __init__(
        self,
        target: str,
        *,
        env: dict[str, str],
        loop: str = "auto",
        http: str = "auto",
        port: int | None = None,
        cwd: str | None = None,
        health: str = "/healthz",
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.health = health
        argv = [sys.executable, "-m", "uvicorn", "--factory", target, "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), *server_flags(loop, http)]
        super().__init__(argv, env=env, cwd=cwd, name=target)

    def wait_ready(self, timeout: float = 30.0) -> str:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.output()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + self.health, timeout=1) as r:
                    if r.status < 500:
                        return self.url
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start within {timeout:g} s:\n{self.output()[-3000:]}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


# -- databases ---------------------------------------------------------------------------------------------


def count_round_trips(engine: Any) -> Counter[str]:
    """Counters of what an (async) engine sends to the database, from SQLAlchemy events inside the process:
    statements (`before_cursor_execute`), commits, rollbacks, pool checkouts, new connections and the pool's
    pre-ping round trips. `round_trips(counts)` turns them into one figure."""
    counts: Counter[str] = Counter()
    sync = engine.sync_engine

    @event.listens_for(sync, "before_cursor_execute")
    def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counts["statements"] += 1

    @event.listens_for(sync, "commit")
    def _commit(conn: Any) -> None:
        counts["commits"] += 1

    @event.listens_for(sync, "rollback")
    def _rollback(conn: Any) -> None:
        counts["rollbacks"] += 1

    @event.listens_for(sync.pool, "checkout")
    def _checkout(*args: Any) -> None:
        counts["checkouts"] += 1

    @event.listens_for(sync.pool, "connect")
    def _connect(*args: Any) -> None:
        counts["connects"] += 1

    dialect = sync.dialect
    ping = dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:  # pool_pre_ping: one round trip per checkout
        counts["pings"] += 1
        return bool(ping(dbapi_connection))

    dialect.do_ping = counted_ping
    return counts


def round_trips(counts: dict[str, Any]) -> float:
    """Statements, BEGIN + COMMIT per transaction (asyncpg sends both; neither is a cursor execute), pings."""
    return (
        float(counts.get("statements", 0))
        + 2 * float(counts.get("commits", 0))
        + float(counts.get("pings", 0))
    )


@contextlib.contextmanager
def sqlite_db() -> Iterator[str]:
    from bot.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="incident-bot-bench-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bot.db'}"
        upgrade(url)
        yield url


PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def _pg_admin(sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def pg_free_connections() -> int:
    """Connections the local server still accepts (max_connections minus those open, whoever holds them)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_ADMIN_URL)
    try:
        async with engine.connect() as conn:
            limit = int((await conn.execute(text("SHOW max_connections"))).scalar_one())
            used = int((await conn.execute(text("SELECT count(*) FROM pg_stat_activity"))).scalar_one())
    finally:
        await engine.dispose()
    return limit - used


async def wait_for_pg_connections(needed: int, timeout: float = 120.0) -> None:
    """The PostgreSQL server is shared (other test runs): wait until `needed` connections are free, and say so."""

    async def free_now() -> int:
        try:
            return await pg_free_connections()
        except Exception:  # "too many clients already": none free
            return 0

    deadline = time.monotonic() + timeout
    free = await free_now()
    if free < needed:
        print(f"[bench] PostgreSQL has {free} free connections, {needed} wanted: waiting", file=sys.stderr)
    while free < needed and time.monotonic() < deadline:
        await asyncio.sleep(2)
        free = await free_now()
    if free < needed:
        print(f"[bench] going on with {free} free PostgreSQL connections (may fail)", file=sys.stderr)


@contextlib.asynccontextmanager
async def pg_db() -> Any:
    """A throwaway, migrated PostgreSQL database `incident_bot_bench_<pid>`, dropped afterwards."""
    from sqlalchemy.engine import make_url

    from bot.migrate import upgrade_async

    name = f"incident_bot_bench_{os.getpid()}"
    await wait_for_pg_connections(5)
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _pg_admin(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade_async(url)
        yield url
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the stand-in over HTTP --------------------------------------------------------------------------------


class StandinClient:
    """Reads the `/_bench/` routes of a stand-in served by `standin_app`."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def _get(self, path: str) -> Any:
        import aiohttp

        async with aiohttp.ClientSession() as http, http.get(self.url + path) as r:
            r.raise_for_status()
            return await r.json()

    async def _post(self, path: str) -> Any:
        import aiohttp

        async with aiohttp.ClientSession() as http, http.post(self.url + path) as r:
            r.raise_for_status()
            return await r.json()

    async def response_urls(self, n: int) -> list[str]:
        return list(await self._post(f"/_bench/response_urls?n={n}"))

    async def calls(self, since: int = 0) -> list[dict[str, Any]]:
        return list(await self._get(f"/_bench/calls?since={since}"))

    async def responses(self) -> list[dict[str, Any]]:
        return list(await self._get("/_bench/responses"))

    async def channels(self, n: int, prefix: str) -> list[str]:
        return list(await self._post(f"/_bench/channels?n={n}&prefix={prefix}"))


def start_standin(loop: str = "auto", http: str = "auto") -> Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = child_env({"BENCH_STANDIN_TOKEN": BOT_TOKEN, "BENCH_STANDIN_URL": url})
    server = Server(
        "bench.common:standin_app",
        env=env,
        loop=loop,
        http=http,
        port=port,
        cwd=tempfile.gettempdir(),
        health="/_bench/responses",
    )
    server.wait_ready()
    return server


# -- the machine -------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = math.nan
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    versions = {}
    for pkg in ("fastapi", "uvicorn", "slack_bolt", "SQLAlchemy", "asyncpg", "aiosqlite", "aiohttp", "httpx"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[pkg] = importlib.metadata.version(pkg)
    pg = ""
    with contextlib.suppress(Exception):
        pg = asyncio.run(_pg_version())
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": pg,
        "packages": versions,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


async def _pg_version() -> str:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_ADMIN_URL)
    try:
        async with engine.connect() as conn:
            full = str((await conn.execute(text("SHOW server_version"))).scalar_one())
    finally:
        await engine.dispose()
    return full.split()[0]


def dumps(obj: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, float) and math.isnan(o):
            return None
        return str(o)

    return json.dumps(obj, indent=2, default=default, sort_keys=True)


# -- the web stack shared by benchmarks 1, 2 and 6 ---------------------------------------------------------


class WebStack:
    """Stand-in, bot web process (migrated SQLite) and the bare FastAPI app, each in its own process."""

    def __init__(self, loop: str = "auto", http: str = "auto") -> None:
        self.loop, self.http = loop, http
        self._stack = contextlib.ExitStack()
        self.standin: Server | None = None
        self.bot: Server | None = None
        self.bare: Server | None = None

    @property
    def stack_name(self) -> str:
        return resolved_server_stack(self.loop, self.http)

    def __enter__(self) -> WebStack:
        try:
            db_url = self._stack.enter_context(sqlite_db())
            self.standin = start_standin(self.loop, self.http)
            self._stack.callback(self.standin.stop)
            tmp = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cwd-"))
            # Declare is rate limited per user (5 a minute): off here, the bench declares from one user.
            env = bot_env(db_url, self.standin.url, DECLARE_RATE_LIMIT="0")
            self.bot = Server("wiring.app:create_app", env=env, loop=self.loop, http=self.http, cwd=tmp)
            self._stack.callback(self.bot.stop)
            self.bare = Server(
                "bench.common:bare_app", env=child_env(), loop=self.loop, http=self.http, cwd=tmp
            )
            self._stack.callback(self.bare.stop)
            self.bot.wait_ready()
            self.bare.wait_ready()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
