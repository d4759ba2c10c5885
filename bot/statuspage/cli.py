"""`incident-bot statuspage …`: webhook subscribers and scheduled maintenance, from the command line.

    incident-bot statuspage subscribe https://example.com/hook   # prints the id and the signing secret
    incident-bot statuspage unsubscribe 3
    incident-bot statuspage subscribers
    incident-bot statuspage maintenance "Database upgrade" 2026-12-02T03:00Z 1h --component ordering \
        --message "Ordering may pause for up to 5 minutes."
    incident-bot statuspage cancel-maintenance 2
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlparse

from sqlalchemy import select

from bot.config import Settings, get_settings
from bot.db import Database, DatabaseUnavailable
from bot.models import StatusMaintenance, StatusSubscriber
from bot.playbook import PlaybookError
from bot.statuspage.config import load_config
from bot.statuspage.store import schedule_maintenance
from bot.timefmt import parse_duration


def _when(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError("give the time zone, e.g. 2026-12-02T03:00Z")
    return dt.astimezone(UTC)


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url)
    now = datetime.now(UTC)
    try:
        async with db.session() as s:
            if args.cmd == "subscribe":
                parsed = urlparse(args.url)
                if parsed.scheme not in ("http", "https") or not parsed.netloc:
                    print("a webhook URL must be http(s)://host/…", file=sys.stderr)
                    return 2
                sub = StatusSubscriber(
                    kind="webhook", url=args.url, secret=secrets.token_hex(32), active=True, created_at=now
                )
                s.add(sub)
                await s.flush()
                print(
                    f"subscriber {sub.id}: {sub.url}\nsigning secret (X-Status-Signature, HMAC-SHA256): {sub.secret}"
                )
            elif args.cmd == "unsubscribe":
                row = await s.get(StatusSubscriber, args.id)
                if row is None:
                    print(f"no subscriber {args.id}", file=sys.stderr)
                    return 1
                row.active = False
                print(f"subscriber {args.id} unsubscribed")
            elif args.cmd == "subscribers":
                for row in (
                    await s.execute(select(StatusSubscriber).order_by(StatusSubscriber.id))
                ).scalars():
                    print(f"{row.id}\t{'active' if row.active else 'off'}\t{row.url}")
            elif args.cmd == "maintenance":
                start = _when(args.start)
                length = parse_duration(args.duration)
                assert length is not None
                m = await schedule_maintenance(
                    s,
                    load_config(settings.statuspage_file),
                    title=args.title,
                    message=args.message,
                    starts_at=start,
                    ends_at=start + length,
                    components=list(args.component or []),
                    by="cli",
                    at=now,
                )
                print(f"maintenance {m.id} scheduled {m.starts_at:%Y-%m-%d %H:%M}–{m.ends_at:%H:%M} UTC")
            elif args.cmd == "cancel-maintenance":
                maint = await s.get(StatusMaintenance, args.id)
                if maint is None:
                    print(f"no maintenance {args.id}", file=sys.stderr)
                    return 1
                maint.cancelled = True
                print(f"maintenance {args.id} cancelled")
        return 0
    finally:
        await db.dispose()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="incident-bot statuspage", description="status-page subscribers and maintenance"
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("subscribe", help="add a webhook subscriber").add_argument("url")
    sub.add_parser("unsubscribe", help="stop a webhook subscriber").add_argument("id", type=int)
    sub.add_parser("subscribers", help="list webhook subscribers")
    m = sub.add_parser("maintenance", help="schedule maintenance")
    m.add_argument("title")
    m.add_argument("start", help="ISO time with zone, e.g. 2026-12-02T03:00Z")
    m.add_argument("duration", help="e.g. 30m, 2h")
    m.add_argument("--component", action="append", help="component key (repeatable)")
    m.add_argument("--message", default="")
    sub.add_parser("cancel-maintenance", help="cancel scheduled maintenance").add_argument("id", type=int)
    return p


def statuspage_main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        return asyncio.run(_run(args, get_settings()))
    except (ValueError, PlaybookError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return 3
