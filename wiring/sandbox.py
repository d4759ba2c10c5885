"""`incident-bot sandbox` (`make run`): the whole product on one machine, no Slack account.

One loopback port serves the sandbox page (`/`, `/api/…`), the Slack Web API stand-in (`/standin/…`) and the
bot itself (`/slack/events`, `/healthz`, the PIR pages…); the simulated Factory and JWT Pizza service run on
their own free ports, and the worker runs in the same event loop. State lives in memory (Slack) and in a
SQLite file (the bot), which is started afresh each run unless `--keep-db`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import signal
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.clock import OffsetClock
from bot.config import Settings
from bot.context import Services
from bot.migrate import upgrade_async
from bot.playbook import load_roster
from bot.worker import Worker
from sandbox.factory_sim import FactoryServers, FactorySim
from sandbox.oncall import jump_to_next_handoff, rotating_schedules
from sandbox.page import SandboxPage, SandboxUser
from sandbox.servers import LoopServer
from sandbox.slack_standin import SlackStandin
from wiring.app import create_app
from wiring.services import build_services

log = logging.getLogger("incident_sandbox")

BOT_TOKEN = "xoxb-sandbox"
VIEWER = SandboxUser("UYOU", "you", "You (incident commander)", "you")
FAST_SCALE = 1 / 60  # --fast: a ladder minute lasts a second


class _Late:
    """An ASGI app set after the socket is bound: the bot's settings need the sandbox URL first."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "sandbox app not built yet"
        await self.app(scope, receive, send)


@dataclass
class Sandbox:
    url: str
    standin: SlackStandin
    factory: FactoryServers
    page: SandboxPage
    settings: Settings
    bot_app: FastAPI
    server: LoopServer
    worker_task: asyncio.Task[None] | None = None
    worker_svc: Services | None = None
    _worker_stop: asyncio.Event = field(default_factory=asyncio.Event)
    _session: aiohttp.ClientSession | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None
    _schedules_tmp: tempfile.TemporaryDirectory[str] | None = None
    _stopped: bool = False

    @property
    def svc(self) -> Services:
        """The services of the bot's web app (the worker has its own, on the same database)."""
        return self.bot_app.state.svc  # type: ignore[no-any-return]

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        await self.page.close()
        self._worker_stop.set()
        if self.worker_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.worker_task, timeout=15)
        if self.worker_svc is not None:
            try:
                await self.worker_svc.tasks.drain(timeout=10)
            except TimeoutError:
                await self.worker_svc.tasks.cancel_all()
            await self.worker_svc.aclose()
        if self._session is not None:
            await self._session.close()
        # The bot's tasks talk to the stand-in on this same server: let them finish while it still serves.
        with contextlib.suppress(Exception):
            await self.svc.tasks.drain(timeout=10)
        await self.server.stop()  # the bot's lifespan closes its database
        await asyncio.to_thread(self.factory.stop)
        if self._tmp is not None:
            self._tmp.cleanup()
        if self._schedules_tmp is not None:
            self._schedules_tmp.cleanup()

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def sandbox_users(oncall_file: Path) -> list[SandboxUser]:
    """ "You" plus everyone in the roster, named from its `names:` and labelled with their level or team."""
    roster = load_roster(oncall_file)
    roles: dict[str, str] = {}
    for level in sorted(roster.levels):
        for uid in roster.users(level):
            roles.setdefault(uid, f"L{level} · {roster.level_name(level)}")
    for team, members in roster.teams.items():
        for uid in members:
            roles.setdefault(uid, f"{team} team")
    users = [VIEWER]
    taken = {VIEWER.name}
    for uid in roster.all_users():
        real = roster.names.get(uid, uid)
        handle = real.split()[0].lower() if real != uid else uid.lower()
        handle = handle if handle not in taken else uid.lower()
        taken.add(handle)
        users.append(SandboxUser(uid, handle, real, roles.get(uid, "")))
    return users


async def start_sandbox(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    fast: bool = False,
    db_url: str | None = None,
    worker: bool = True,
    log_level: str = "WARNING",
    oncall_file: Path | None = None,
) -> Sandbox:
    """Start everything in the running loop; `await sandbox.stop()` undoes it. No db_url: a temp SQLite."""
    tmp = None
    if db_url is None:
        tmp = tempfile.TemporaryDirectory(prefix="incident-bot-sandbox-")
        db_url = f"sqlite+aiosqlite:///{Path(tmp.name) / 'sandbox.db'}"
    await upgrade_async(db_url)

    # A rotating roster on a clock the page can move ("jump to the next hand-off").
    clock = OffsetClock()
    schedules_tmp = tempfile.TemporaryDirectory(prefix="incident-bot-sandbox-schedules-")
    shell = _Late()
    server = LoopServer(shell, host=host, port=port)
    url = server.url
    factory = await asyncio.to_thread(FactoryServers(FactorySim(report_url_mode="self"), host=host).start)

    try:
        scale = FAST_SCALE if fast else 1.0
        values: dict[str, Any] = dict(
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=secrets.token_hex(16),  # the page signs with it, as Slack would
            server_secret=secrets.token_hex(16),
            slack_api_url=f"{url}/standin/api/",
            database_url=db_url,
            public_url=url,
            factory_url=factory.factory_url,
            factory_api_key=factory.sim.api_key,
            pizza_service_url=factory.service_url,
            time_scale=scale,
            monitor_interval=max(1.0, 60.0 * scale),
            worker_poll_interval=0.2 if fast else 0.5,
            log_level=log_level,
        )
        if oncall_file:
            values["oncall_file"] = oncall_file
        users = sandbox_users(values.get("oncall_file") or Settings.model_fields["oncall_file"].default)
        # The sandbox is a playground: "you" may run drills (its Factory is the simulator) and sign the
        # DR plan for both roles, which a real install gives to named people (DR_ADMINS, DR_*_OWNER).
        values.update(dr_admins=VIEWER.id, dr_product_owner=VIEWER.id, dr_ops_owner=VIEWER.id)
        values["schedules_file"] = Path(schedules_tmp.name) / "schedules.yaml"
        values["schedules_file"].write_text(rotating_schedules(clock.now()))
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        standin = SlackStandin(token=BOT_TOKEN)
        standin.base_url = f"{url}/standin"
        for u in users:
            standin.add_user(u.id, u.name, real_name=u.real_name)
        everyone = [standin.bot_user_id, *(u.id for u in users)]
        standin.add_channel("general", members=everyone, topic="Type /incident help to start")
        announce = standin.add_channel(
            "announcements", members=everyone, topic="Stakeholder updates from the incident bot"
        )
        settings.announce_channel = announce.id
        oncall = standin.add_channel("oncall", members=everyone, topic="On-call hand-offs and gaps")
        settings.oncall_channel = oncall.id

        bot_app = create_app(settings, clock=clock)
        info = {"fast": fast, "time_scale": scale, "db": db_url.split("///", 1)[-1]}
        page = SandboxPage(
            standin,
            signing_secret=settings.secret("slack_signing_secret"),
            bot_url=url,
            users=users,
            default_viewer=VIEWER.id,
            factory=factory,
            info=info,
            on_next_handoff=lambda: jump_to_next_handoff(bot_app.state.svc, clock),
        )

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            page.attach(asyncio.get_running_loop())
            async with bot_app.router.lifespan_context(bot_app):  # a mounted app's lifespan is not run for it
                yield

        # Page routes first; the bot is mounted at the root so its own links (public_url + path) work.
        routes = [*page.routes(), Mount("/standin", app=standin.app), Mount("", app=bot_app)]
        shell.app = Starlette(routes=routes, lifespan=lifespan)
    except BaseException:  # nothing may outlive a failed start: the Factory's threads, the socket
        await asyncio.to_thread(factory.stop)
        server.sock.close()
        if tmp is not None:
            tmp.cleanup()
        schedules_tmp.cleanup()
        raise
    box = Sandbox(
        url, standin, factory, page, settings, bot_app, server, _tmp=tmp, _schedules_tmp=schedules_tmp
    )
    try:
        await server.start()
        # Every person's DM with the bot exists from the start, so anyone can type in theirs.
        async with httpx.AsyncClient(timeout=10) as http:
            for u in users:
                await http.post(
                    f"{standin.base_url}/api/conversations.open",
                    data={"users": u.id},
                    headers={"Authorization": f"Bearer {BOT_TOKEN}"},
                )
        if worker:
            box._session = aiohttp.ClientSession()
            box.worker_svc = build_services(settings, session=box._session, clock=clock).svc
            box.worker_task = asyncio.create_task(Worker(box.worker_svc).run(box._worker_stop), name="worker")
    except BaseException:
        await box.stop()
        raise
    return box


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="incident-bot sandbox",
        description="The bot, a Slack stand-in with a web page, and a simulated Factory, on one machine.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--fast", action="store_true", help="ladder and reminder minutes last seconds")
    p.add_argument("--db", default="./sandbox.db", help="the bot's SQLite file (default ./sandbox.db)")
    p.add_argument("--keep-db", action="store_true", help="keep incidents from the last run (default: fresh)")
    p.add_argument("--no-worker", action="store_true", help="no timers: pages past L1 and the monitor stop")
    p.add_argument("--log-level", default="WARNING")
    return p


def _port_in_use(host: str, port: int) -> str | None:
    """Why `port` cannot be listened on, or None. Checked before anything is deleted or started."""
    if port == 0:
        return None
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are fine
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _lock_db(db: Path) -> tuple[Any, str | None]:
    """Hold `<db>.lock` for as long as this sandbox runs. Returns (the open lock file, None) or (None, why)."""
    lock_path = db.with_name(db.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")  # kept open on purpose: the lock lives as long as the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        return None, f"{db} is in use by another sandbox (pid {owner})"
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle, None


async def _serve(args: argparse.Namespace) -> int:
    db = Path(args.db)
    # Refuse before touching anything: a second `make run` must not delete the running sandbox's database.
    busy = _port_in_use(args.host, args.port)
    if busy:
        print(
            f"incident-bot sandbox: {args.host}:{args.port} is in use ({busy}); is a sandbox already "
            "running? Stop it, or pick another --port. Nothing was changed.",
            flush=True,
        )
        return 1
    lock, why = _lock_db(db)
    if lock is None:
        print(f"incident-bot sandbox: {why}; stop it or use another --db. Nothing was changed.", flush=True)
        return 1
    if not args.keep_db:  # Slack state is in memory, so old incidents would point at channels that are gone
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            path.unlink(missing_ok=True)
    stop = asyncio.Event()  # Ctrl-C while starting is honoured once started, so nothing is left half-built
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        box = await start_sandbox(
            args.port,
            host=args.host,
            fast=args.fast,
            db_url=f"sqlite+aiosqlite:///{db}",
            worker=not args.no_worker,
            log_level=args.log_level,
        )
    except OSError as exc:
        print(f"incident-bot sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return 1
    speed = "fast: a ladder minute lasts a second" if args.fast else "real time (add --fast for seconds)"
    print(f"incident-bot sandbox: open {box.url}/", flush=True)
    print(f"  {speed}; database {db}; Ctrl-C stops.", flush=True)
    try:
        await stop.wait()
    finally:
        print("stopping…", flush=True)
        await box.stop()
    return 0


def sandbox_main(argv: list[str]) -> int:
    # Tolerate a leading "--" (`incident-bot sandbox -- --fast`, as older CLIs needed).
    args = _parser().parse_args(argv[1:] if argv[:1] == ["--"] else argv)
    # Bolt warns that a custom authorize ignores the token: true, expected, and noise for a sandbox user.
    logging.getLogger("slack_bolt.AsyncApp").addFilter(lambda r: "installation_store" not in r.getMessage())
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130
