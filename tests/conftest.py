"""Shared fixtures: the Slack stand-in over HTTP, a migrated database (SQLite, and PostgreSQL when
TEST_DATABASE_URL is set), and the bot itself served by uvicorn on a loopback port."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bot.clock import ManualClock
from bot.config import CONTENT_DIR, Settings
from bot.db import make_engine
from bot.migrate import upgrade
from bot.models import ALL_TABLES
from bot.playbook import load_roster
from sandbox.factory_sim import FactoryServers, FactorySim
from sandbox.servers import LoopServer, ServerThread
from sandbox.slack_standin import SlackStandin
from tests.support import BOT_TOKEN, SIGNING_SECRET, BotHarness
from wiring.app import create_app

LOCAL_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def _detect_pg() -> tuple[str | None, str]:
    """TEST_DATABASE_URL, else the local server when it answers (each session makes and drops its own
    database), else None with the reason, which the run prints at the top and bottom."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        return url, f"PostgreSQL tests on TEST_DATABASE_URL ({url.split('@')[-1]})"
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
    except OSError as exc:
        return (
            None,
            f"PostgreSQL tests SKIPPED: TEST_DATABASE_URL is not set and 127.0.0.1:5432 does not answer ({exc})",
        )
    import asyncio

    async def login() -> None:
        import asyncpg

        conn = await asyncpg.connect(
            user="postgres", host="127.0.0.1", port=5432, database="postgres", timeout=5
        )
        await conn.close()

    try:
        asyncio.run(login())
    except Exception as exc:
        return None, (
            "PostgreSQL tests SKIPPED: 127.0.0.1:5432 answers but logging in as postgres failed "
            f"({type(exc).__name__}: {exc}); set TEST_DATABASE_URL"
        )
    os.environ["TEST_DATABASE_URL"] = LOCAL_PG  # tests that read the variable themselves see it too
    return LOCAL_PG, "PostgreSQL tests on the local server 127.0.0.1:5432 (TEST_DATABASE_URL was not set)"


PG_URL, PG_STATUS = _detect_pg()
PG_SKIP = PG_STATUS


def pytest_report_header(config: pytest.Config) -> str:
    return ("" if PG_URL else "!!! ") + PG_STATUS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not PG_URL:
        terminalreporter.write_sep("!", PG_STATUS, red=True, bold=True)


TEST_USERS = ["UDECLARER", "UOTHER", "UOUTSIDER"]


@pytest.fixture(scope="session")
def standin_server() -> Iterator[tuple[SlackStandin, ServerThread]]:
    standin = SlackStandin(token=BOT_TOKEN)
    server = ServerThread(standin.app)
    standin.base_url = server.start()
    yield standin, server
    server.stop()


def _add_users(standin: SlackStandin) -> None:
    roster = load_roster(CONTENT_DIR / "oncall.example.yaml")
    for uid in roster.all_users():
        standin.add_user(uid, roster.names.get(uid, uid).split()[0].lower(), tz="America/Denver")
    for uid in TEST_USERS:
        standin.add_user(uid, uid.lower(), tz="Europe/Paris")


@pytest.fixture
def slack(standin_server: tuple[SlackStandin, ServerThread]) -> SlackStandin:
    standin, _ = standin_server
    standin.reset()
    _add_users(standin)
    return standin


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def _pg_admin(sql: str) -> None:
    """Run CREATE/DROP DATABASE on the server behind TEST_DATABASE_URL (autocommit, own event loop)."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(PG_URL or "", isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def pg_migrated() -> Iterator[str]:
    """A database of our own on the TEST_DATABASE_URL server, so parallel runs never share tables."""
    assert PG_URL
    from sqlalchemy.engine import make_url

    name = f"incident_bot_test_{os.getpid()}"
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}"')
    _pg_admin(f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _truncate(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(ALL_TABLES)} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A freshly migrated, empty database: each test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "bot.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    if not PG_URL:
        pytest.skip(PG_SKIP)
    url = request.getfixturevalue("pg_migrated")
    await _truncate(url)
    return url


@pytest.fixture
async def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "bot.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


MakeServers = Callable[..., FactoryServers]


@pytest.fixture
def make_servers() -> Iterator[MakeServers]:
    """Start simulated Factory + service servers (threads, loopback ports); stopped after the test."""
    started: list[FactoryServers] = []

    def make(**options: Any) -> FactoryServers:
        options.setdefault("throttle_delay", 0.3)
        servers = FactoryServers(FactorySim(**options)).start()
        started.append(servers)
        return servers

    yield make
    for servers in started:
        servers.stop()


@pytest.fixture
def servers(make_servers: MakeServers) -> FactoryServers:
    return make_servers()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_settings(db_url: str, slack: SlackStandin, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=f"{slack.base_url}/api/",
        database_url=db_url,
        public_url="http://bot.test",
        factory_url="http://127.0.0.1:9",
        factory_api_key="0123456789abcdef0123456789abcdef",
        pizza_service_url="http://127.0.0.1:9",
        server_secret="test-server-secret",
        worker_poll_interval=0.05,
        monitor_interval=0,  # tests that want the monitor call it themselves
        # Who may run drills and sign the DR plan (bot/permissions.py); tests/security varies these.
        dr_admins="UDECLARER",
        dr_product_owner="U03LEAD",
        dr_ops_owner="UOTHER",
        # Slack's real tiers would make bulk tests (200 pages to one DM) take minutes; the gate's own tests
        # (tests/once/test_rate_gate.py, the chaos test) run at 1.0.
        slack_rate_scale=50.0,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(db_url: str, slack: SlackStandin) -> Settings:
    return make_settings(db_url, slack)


@pytest.fixture
async def bot(settings: Settings, slack: SlackStandin, clock: ManualClock) -> AsyncIterator[BotHarness]:
    app = create_app(settings, clock=clock)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=30) as http:
        yield BotHarness(server.url, app.state.svc, slack, http, app)


@pytest.fixture
def factory(make_servers: MakeServers) -> FactoryServers:
    """A simulated Factory whose reportUrls point back at itself (http, loopback port)."""
    return make_servers(report_url_mode="self")


@pytest.fixture
async def hbot(
    db_url: str, slack: SlackStandin, clock: ManualClock, factory: FactoryServers
) -> AsyncIterator[BotHarness]:
    """The bot wired to the simulated Factory and service."""
    settings = make_settings(
        db_url,
        slack,
        factory_url=factory.factory_url,
        pizza_service_url=factory.service_url,
        factory_api_key=factory.sim.api_key,
    )
    app = create_app(settings, clock=clock)
    async with LoopServer(app) as server, httpx.AsyncClient(timeout=60) as http:
        yield BotHarness(server.url, app.state.svc, slack, http)
