"""`incident-bot pir INC-… [--tz Area/City] [--out file]` and `incident-bot stats [30d] [--json]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from bot import timefmt
from bot.clock import Clock, SystemClock
from bot.config import Settings, get_settings
from bot.context import Services
from bot.db import Database, DatabaseUnavailable
from bot.pir.data import load_for
from bot.pir.flows import stats
from bot.pir.metrics import Stats
from bot.pir.render import render_markdown, render_stats_markdown, stats_dict

_PERIOD = re.compile(r"^(\d{1,4})d?$")


class _Offline:
    """What read-only commands need (bot.pir.data.ReadDeps): a database, the playbook, a clock; no Slack."""

    def __init__(self, settings: Settings) -> None:
        self.db = Database(settings.database_url)
        self.clock: Clock = SystemClock()
        self.playbook = Services.load_playbook(settings)


def _zone(name: str) -> ZoneInfo | None:
    return timefmt.zone(name)


def pir_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="incident-bot pir", description="Print an incident's PIR as Markdown.")
    p.add_argument("incident", help="incident id, e.g. INC-20261123-120000")
    p.add_argument("--tz", help="time zone shown next to UTC (default: DISPLAY_TZ)")
    p.add_argument("--out", type=Path, help="write to this file instead of standard output")
    args = p.parse_args(list(argv))
    settings = get_settings()
    tz_name = args.tz or settings.display_tz or "UTC"
    zone = _zone(tz_name)
    if zone is None:
        print(f"incident-bot pir: unknown time zone {tz_name!r}; use an Area/City name", file=sys.stderr)
        return 2
    try:
        text = asyncio.run(_pir(settings, args.incident.strip().upper(), zone))
    except DatabaseUnavailable as exc:
        print(f"incident-bot pir: database unavailable: {exc}", file=sys.stderr)
        return 1
    if text is None:
        print(f"incident-bot pir: no incident {args.incident!r}", file=sys.stderr)
        return 1
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out} ({len(text.splitlines())} lines)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


async def _pir(settings: Settings, incident_id: str, zone: ZoneInfo) -> str | None:
    svc = _Offline(settings)
    try:
        pir = await load_for(svc, incident_id)
    finally:
        await svc.db.dispose()
    return None if pir is None else render_markdown(pir, svc.playbook.severities, zone)


def stats_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="incident-bot stats", description="MTTD, MTTA, MTTR per severity, escalation rate and MTTF."
    )
    p.add_argument("period", nargs="?", default="30d", help="look-back period, e.g. 30d (default) or 90d")
    p.add_argument("--days", type=int, help="same as the period, as a number of days")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(list(argv))
    m = _PERIOD.match(args.period.lower())
    days = args.days if args.days is not None else int(m.group(1)) if m else 0
    if days <= 0:
        print("incident-bot stats: give the period as a number of days, e.g. 30d", file=sys.stderr)
        return 2

    async def run() -> Stats:
        svc = _Offline(get_settings())
        try:
            return await stats(svc, days)
        finally:
            await svc.db.dispose()

    try:
        result = asyncio.run(run())
    except DatabaseUnavailable as exc:
        print(f"incident-bot stats: database unavailable: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(stats_dict(result), indent=2))
    else:
        sys.stdout.write(render_stats_markdown(result, days))
    return 0
