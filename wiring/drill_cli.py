"""`incident-bot drill …`: start a drill from a shell, optionally wait for it and print its report."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from bot.config import Settings, get_settings
from bot.context import Services
from bot.dr.drill import DrillStarted, start_drill, wait_for_drill
from bot.dr.fault import DrillRefused, Target
from bot.dr.report import STILL_SCHEDULED, report_text
from bot.health.monitor import MONITOR_USER
from bot.health.scenarios import SCENARIOS

# How the CLI gets its services: wiring.services.open_services (the domain does not build them itself).
OpenServices = Callable[[Settings], AbstractAsyncContextManager[Services]]


def drill_main(argv: Sequence[str], open_services: OpenServices, *, settings: Settings | None = None) -> int:
    """`incident-bot drill fail|throttle|badjwt|service-down [--wait [--recover]]`."""
    p = argparse.ArgumentParser(
        prog="incident-bot drill",
        description="Run a disaster-recovery drill: a [DRILL] incident in Slack, a fault injected into the "
        "Factory (the simulator at once; a real Factory through its chaos API, which starts the next day), "
        "times to detect, acknowledge and recover measured against the RTO in dr.yaml.",
    )
    p.add_argument("scenario", choices=list(SCENARIOS))
    p.add_argument(
        "--wait", action="store_true", help="check every --interval until recovered, then print the report"
    )
    p.add_argument(
        "--recover",
        action="store_true",
        help="with --wait: run the recovery action once the fault shows (unattended)",
    )
    p.add_argument(
        "--interval", type=float, default=15.0, help="seconds between checks with --wait (default 15)"
    )
    p.add_argument("--timeout", type=float, help="stop waiting after S seconds (default: the RTO)")
    p.add_argument("--target", choices=["auto", "simulator", "factory"], default="auto")
    p.add_argument(
        "--allow-real-factory",
        action="store_true",
        help="allow a drill against a FACTORY_URL that is not the simulator (starts real chaos there)",
    )
    p.add_argument(
        "--user", default=MONITOR_USER, help="who runs the drill (a Slack user id shows as a mention)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(list(argv))
    try:
        return asyncio.run(_drill_cli(open_services(settings or get_settings()), args))
    except DrillRefused as exc:
        print(f"incident-bot drill: {exc.message}", file=sys.stderr)
        return 1


async def _drill_cli(services: AbstractAsyncContextManager[Services], args: argparse.Namespace) -> int:
    async with services as svc:
        target: Target | None = None if args.target == "auto" else args.target
        started = await start_drill(
            svc,
            args.scenario,
            args.user,
            target=target,
            allow_real_factory=args.allow_real_factory,
            via="cli",
        )
        _print_started(started, args.json)
        if not args.wait:
            if started.report.target == "factory":
                when = started.report.chaos_start or "an unknown time"
                print(
                    f"Note: chaos is scheduled for {when} and cannot be cancelled; the monitor and the"
                    " drill incident will catch it when it starts.",
                    file=sys.stderr,
                )
            return 0
        report = await wait_for_drill(
            svc,
            started,
            args.user,
            interval=args.interval,
            timeout=args.timeout,
            run_recovery=args.recover,
        )
        if report is None:
            print(
                "incident-bot drill: not recovered before the timeout; the drill stays open "
                f"({started.incident_id}).",
                file=sys.stderr,
            )
            if started.report.target == "factory":
                when = started.report.chaos_start or "an unknown time"
                print(f"WARNING: {STILL_SCHEDULED.format(when=when)}", file=sys.stderr)
            return 1
        print(
            json.dumps(report.as_json(), indent=2) if args.json else report_text(report),
            end="" if not args.json else "\n",
        )
        return 0


def _print_started(started: DrillStarted, as_json: bool) -> None:
    r = started.report
    if as_json:
        print(json.dumps({"drill_id": started.drill_id, **r.as_json()}, indent=2))
        return
    print(
        f"Drill #{started.drill_id} started: {started.scenario} → {started.incident_id}"
        f" (war room {started.channel_id or 'not ready yet'})"
    )
    print(f"  {r.injection}")
    print(
        f"  clock starts {r.origin}; finish with the recovery action (dr-plan.md §{r.section}),"
        " then the report is posted in the war room."
    )
