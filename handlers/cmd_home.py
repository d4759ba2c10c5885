"""`/incident list [open|recent]` and App Home: where people see every incident without typing an id."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.context import Services
from bot.incidents import listing
from bot.oncall.schedule import Schedule
from bot.ports import ChatError, Reply
from bot.timefmt import fmt_duration, zone
from handlers.blocks import MAX_BLOCKS, Blocks, context, divider, header, section
from handlers.parse import Command
from handlers.registry import Ctx, command, event

SEV_ICON = {"P0": "🔴", "P1": "🟠", "P2": "🟡", "P3": "⚪"}


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _room(channel_id: str | None) -> str:
    return f"<#{channel_id}>" if channel_id else "war room not ready yet"


def open_line(row: listing.IncidentRow, now: datetime) -> str:
    drill = "[DRILL] " if row.is_drill else ""
    who = f"<@{row.commander}>" if row.commander else "no commander"
    return (
        f"{SEV_ICON.get(row.severity, '')} *{drill}{row.id}* {row.severity} · {row.status} · "
        f"{_mrkdwn(row.summary)[:200]}\n{who} · open {fmt_duration(now - row.declared_at)} · {_room(row.channel_id)}"
    )


def recent_line(row: listing.IncidentRow) -> str:
    took = fmt_duration(row.resolved_at - row.declared_at) if row.resolved_at else "—"
    pir = f" · <{row.pir_url}|PIR>" if row.pir_url else ""
    resolved = f"{row.resolved_at:%Y-%m-%d %H:%M} UTC" if row.resolved_at else ""
    return (
        f"✅ *{row.id}* {row.severity} · {_mrkdwn(row.summary)[:200]}\nresolved {resolved} after {took}{pir}"
    )


def _lines(blocks: Blocks, lines: list[str], empty: str) -> None:
    if not lines:
        blocks.append(context(empty))
    for line in lines:
        blocks.append(section(line))


def list_blocks(which: str, rows: list[listing.IncidentRow], now: datetime) -> tuple[str, Blocks]:
    if which == "recent":
        title = f"Resolved in the last {listing.RECENT.days} days: {len(rows)}"
        blocks: Blocks = [header(title)]
        _lines(blocks, [recent_line(r) for r in rows], "Nothing resolved lately.")
    else:
        title = f"Open incidents: {len(rows)}"
        blocks = [header(title)]
        _lines(blocks, [open_line(r, now) for r in rows], "No open incidents. 🎉")
    blocks.append(context("`/incident list open` · `/incident list recent` · the App Home tab shows both"))
    return title, blocks[:MAX_BLOCKS]


MAX_SHIFTS = 10
HORIZON_TEXT = "beyond the next 35 days"


def _zone(ov: listing.Overview) -> tuple[ZoneInfo, str]:
    """The viewer's zone and how the view names it (UTC, said so, when Slack gave none)."""
    z = zone(ov.tz)
    if z is None:
        return ZoneInfo("UTC"), "UTC (Slack gave no time zone for you)"
    return z, f"{ov.tz} (your Slack time zone)"


def _at(at: datetime | None, z: ZoneInfo) -> str:
    return f"{at.astimezone(z):%a %d %b %H:%M}" if at else HORIZON_TEXT


def _label(s: Schedule) -> str:
    return f"L{s.level} {s.title}" if s.level else (s.team or s.name)


def oncall_now_text(ov: listing.Overview) -> str:
    z, named = _zone(ov)
    lines = []
    for lv in ov.on_call:
        oc = lv.oncall
        who = ", ".join(f"<@{u}>" for u in oc.users)
        if who:
            lines.append(
                f"*{_mrkdwn(_label(lv.schedule))}*: {who} via {_mrkdwn(oc.layer or '')}, until {_at(oc.until, z)}"
            )
        else:
            lines.append(
                f"*{_mrkdwn(_label(lv.schedule))}*: *nobody* ⚠️ ({_mrkdwn(oc.reason)}), until {_at(oc.until, z)}"
            )
    body = "\n".join(lines) or "No schedules or roster configured."
    return f"*On call now*\n{body}\n_Times in {named}; `/incident oncall` for hand-offs._"


def my_shifts_text(ov: listing.Overview) -> str:
    z, named = _zone(ov)
    lines = []
    for sh in ov.my_shifts[:MAX_SHIFTS]:
        start = "now" if sh.start <= ov.now else _at(sh.start, z)
        via = f" ({sh.oncall.layer})" if (sh.oncall.layer or "").startswith("override") else ""
        lines.append(f"• {_mrkdwn(_label(sh.schedule))}: {start} → {_at(sh.end, z)}{via}")
    if len(ov.my_shifts) > MAX_SHIFTS:
        lines.append(f"…and {len(ov.my_shifts) - MAX_SHIFTS} more (`/incident oncall`)")
    body = "\n".join(lines) or "No shifts for you in the next 7 days."
    return f"*Your shifts in the next 7 days*\n{body}\n_Times in {named}._"


def home_view(ov: listing.Overview, user: str) -> dict[str, Any]:
    blocks: Blocks = [header("🍕 JWT Pizza incidents")]
    if ov.my_pages:
        blocks.append(section(f"*📟 Waiting for you ({len(ov.my_pages)})*"))
        for p in ov.my_pages[:10]:
            blocks.append(
                section(
                    f"*{p.incident_id}* {p.severity} · L{p.level} · {_mrkdwn(p.summary)[:200]} · "
                    f"{_room(p.channel_id)} — use the Acknowledge button in your DM, or `/incident ack` there"
                )
            )
        blocks.append(divider())
    blocks.append(section(f"*Open incidents ({len(ov.open)})*"))
    _lines(blocks, [open_line(r, ov.now) for r in ov.open[:15]], "No open incidents. 🎉")
    blocks.append(divider())
    blocks.append(section(oncall_now_text(ov)))
    blocks.append(section(my_shifts_text(ov)))
    blocks.append(divider())
    blocks.append(section(f"*Resolved lately ({len(ov.recent)})*"))
    _lines(blocks, [recent_line(r) for r in ov.recent[:10]], "Nothing resolved in the last two weeks.")
    blocks.append(
        context(f"Updated {ov.now:%Y-%m-%d %H:%M} UTC for <@{user}> · `/incident help` for commands")
    )
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}


@command("list")
async def list_(ctx: Ctx, cmd: Command) -> Reply:
    which = str(cmd.args.get("which") or "open")
    if which == "recent":
        rows = await listing.recent_resolved(ctx.svc)
    else:
        rows = await listing.open_incidents(ctx.svc)
    text, blocks = list_blocks(which, rows, ctx.svc.clock.now())
    return Reply(text, blocks)


@event("app_home_opened")
async def app_home_opened(svc: Services, ev: dict[str, Any]) -> None:
    user = ev.get("user")
    if ev.get("tab", "home") != "home" or not isinstance(user, str) or not user:
        return
    view = home_view(await listing.overview(svc, user), user)
    try:
        await svc.chat.publish_home(user, view)
    except ChatError:
        pass  # cosmetic: the tab is rebuilt the next time it is opened
