"""The `incident-bot` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from bot import __version__


def _serve(args: argparse.Namespace) -> int:
    from bot.config import get_settings

    settings = get_settings()
    missing = settings.missing_for_serve()
    if args.socket_mode and not settings.secret("slack_app_token"):
        missing.append("SLACK_APP_TOKEN")
    if missing:
        print(f"incident-bot serve: set {' and '.join(missing)} (see README, Configuration)", file=sys.stderr)
        return 2
    if args.socket_mode:
        from wiring.socket_mode import run_socket_mode

        asyncio.run(run_socket_mode(settings))
        return 0
    import uvicorn

    uvicorn.run("wiring.app:create_app", factory=True, host=args.host, port=args.port, log_level="info")
    return 0


def _worker(args: argparse.Namespace) -> int:
    import signal

    # A SIGTERM that lands while modules are still importing must stop the worker cleanly too.
    early: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: early.append(signum))
    from bot.config import get_settings
    from bot.logging import configure_logging
    from wiring.worker import run_worker

    settings = get_settings()
    if not (settings.secret("server_secret") or settings.secret("slack_signing_secret")):
        # PIR reminders carry signed links: no key, no worker (there is no built-in default key).
        print("incident-bot worker: set SERVER_SECRET or SLACK_SIGNING_SECRET", file=sys.stderr)
        return 2
    configure_logging(settings)
    asyncio.run(run_worker(settings, stop_requested=early))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from bot.config import get_settings
    from bot.migrate import downgrade, upgrade

    url = get_settings().database_url
    if args.downgrade:
        downgrade(url, args.downgrade)
    else:
        upgrade(url, args.revision)
    print(f"database at {args.downgrade or args.revision}")
    return 0


def _version(args: argparse.Namespace) -> int:
    print(f"incident-bot {__version__}")
    return 0


# Subcommands whose options live with their feature: `incident-bot check --json` -> check_main([...]). Each
# imports its module on use (not to dodge a cycle: so `incident-bot worker` starts without loading the
# sandbox, the PIR renderer or the drill catalogue).
Main = Callable[[list[str]], int]


def _sandbox(argv: list[str]) -> int:
    from wiring.sandbox import sandbox_main

    return sandbox_main(argv)


def _check(argv: list[str]) -> int:
    from bot.health.report import check_main

    return check_main(argv)


def _factory_sim(argv: list[str]) -> int:
    from sandbox.factory_sim import sim_main

    return sim_main(argv)


def _chaos(argv: list[str]) -> int:
    from sandbox.factory_sim import chaos_main

    return chaos_main(argv)


def _pir(argv: list[str]) -> int:
    from bot.pir.cli import pir_main

    return pir_main(argv)


def _stats(argv: list[str]) -> int:
    from bot.pir.cli import stats_main

    return stats_main(argv)


def _backup(argv: list[str]) -> int:
    from bot.dr.backup import backup_main

    return backup_main(argv)


def _restore(argv: list[str]) -> int:
    from bot.dr.backup import restore_main

    return restore_main(argv)


def _drill(argv: list[str]) -> int:
    from wiring.drill_cli import drill_main
    from wiring.services import open_services

    return drill_main(argv, open_services)


def _statuspage(argv: list[str]) -> int:
    from bot.statuspage.cli import statuspage_main

    return statuspage_main(argv)


DELEGATED: dict[str, tuple[Main, str]] = {
    "sandbox": (_sandbox, "the whole product on one machine (no Slack account)"),
    "check": (_check, "health-check the Factory and the pizza service"),
    "factory-sim": (_factory_sim, "serve the simulated Factory and service"),
    "chaos": (_chaos, "switch the simulated Factory's chaos mode"),
    "pir": (_pir, "print an incident's post-incident review (Markdown)"),
    "stats": (_stats, "incident metrics: MTTD, MTTA, MTTR, escalation rate"),
    "backup": (_backup, "back up the bot's database"),
    "restore": (_restore, "restore a backup"),
    "drill": (_drill, "run a disaster-recovery drill"),
    "statuspage": (_statuspage, "status-page webhook subscribers and maintenance"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="incident-bot", description="ChatOps incident bot for JWT Pizza")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve the Slack app (HTTP, or Socket Mode)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--socket-mode", action="store_true", help="connect out to Slack (needs SLACK_APP_TOKEN)")
    s.set_defaults(fn=_serve)
    sub.add_parser("worker", help="run timers: escalations, reminders, monitor").set_defaults(fn=_worker)
    m = sub.add_parser("migrate", help="apply database migrations (Alembic)")
    m.add_argument("--revision", default="head")
    m.add_argument("--downgrade", metavar="REV", help="roll back to REV instead")
    m.set_defaults(fn=_migrate)
    sub.add_parser("version").set_defaults(fn=_version)
    for name, (run, help_) in DELEGATED.items():
        d = sub.add_parser(name, help=help_, add_help=False)
        d.add_argument("rest", nargs=argparse.REMAINDER)
        d.set_defaults(fn=lambda args, run=run: int(run(list(args.rest))))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        # argparse.REMAINDER refuses a leading option (`check --json`): hand the rest over untouched.
        return int(DELEGATED[argv[0]][0](argv[1:]))
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
