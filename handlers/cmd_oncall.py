"""`/incident oncall …`: who is on call, overrides, take / give / swap a shift. Works in any channel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.oncall import flows as oncall_flows
from bot.oncall import service
from bot.oncall.schedule import Schedule, gaps, handoffs, shifts_of
from bot.oncall.web import schedule_url
from bot.ports import ChatError, Reply
from handlers import lifecycle_blocks as lb
from handlers.blocks import Blocks, context, header, section
from handlers.cmd_lifecycle import _tell
from handlers.parse import Command, UsageError, oncall_window
from handlers.registry import VIEWS, Ctx, ViewHandler, command

MAX_LISTED = 25


def when(at: datetime | None) -> str:
    """A time every reader sees in their own zone (Slack's date token), with a UTC fallback."""
    if at is None:
        return "further than 35 days out"
    ts = int(at.timestamp())
    return f"<!date^{ts}^{{date_short_pretty}} {{time}}|{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC>"


def who(users: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"<@{u}>" for u in users) or "*nobody* ⚠️"


def _schedule(ctx: Ctx, ref: object) -> Schedule:
    sched = service.find_schedule(ctx.svc, str(ref))
    if sched is None:
        known = ", ".join(
            sorted(
                f"L{s.level}" if s.level else (s.team or s.name)
                for s in service.config_of(ctx.svc).book.schedules.values()
            )
        )
        raise UsageError(f"No schedule for `{str(ref)[:40]}`. Known: {known or 'none'}.")
    return sched


def _label(s: Schedule) -> str:
    if s.level:
        return f"L{s.level} {s.title}"
    return f"{s.team or s.name}"


def _describe(sched: Schedule, r: service.Resolved, now: datetime, *, detail: bool) -> list[str]:
    oc = r.at(now)
    via = f" via {oc.reason}" if oc.users else f" ({oc.reason})"
    lines = [f"*{_label(sched)}*: {who(oc.users)}{via}, until {when(oc.until)}"]
    if detail:
        for h in handoffs(r.schedule, now, now + timedelta(days=14), r.overrides)[:5]:
            lines.append(f"• {when(h.at)}: {who(h.after.users)} ({h.after.layer or 'nobody'})")
    for g in gaps(r.schedule, now, now + timedelta(days=7), r.overrides)[:3]:
        lines.append(f"⚠️ Nobody on call from {when(g.start)} to {when(g.end) if g.end else 'beyond 7 days'}")
    return lines


@command("oncall")
async def show(ctx: Ctx, cmd: Command) -> Reply:
    now = ctx.svc.clock.now()
    ref = cmd.args.get("ref")
    blocks: Blocks = []
    if ref:
        sched = _schedule(ctx, ref)
        [resolved] = await oncall_flows.resolve_all(ctx.svc, [sched], now)
        lines = _describe(sched, resolved, now, detail=True)
        link = schedule_url(ctx.svc, sched.name, now)
        blocks = [
            header(f"On call: {_label(sched)}"),
            section("\n".join(lines)),
            context(f"<{link}|📅 Subscribe (iCalendar)> · overrides: `/incident oncall overrides {ref}`"),
        ]
        return Reply("\n".join(lines), blocks)
    book = list(service.config_of(ctx.svc).book.schedules.values())
    by_name = {
        sched.name: r
        for sched, r in zip(book, await oncall_flows.resolve_all(ctx.svc, book, now), strict=True)
    }
    lines = []
    for sched in service.level_schedules(ctx.svc):
        lines.extend(_describe(sched, by_name[sched.name], now, detail=False))
    mine = []
    for sched in book:
        r = by_name[sched.name]
        for start, end, _oc in shifts_of(r.schedule, ctx.user, now, now + timedelta(days=14), r.overrides)[
            :3
        ]:
            mine.append(f"• {_label(sched)}: {when(start)} → {when(end)}")
    blocks = [header("Who is on call now"), section("\n".join(lines) or "No schedules.")]
    if mine:
        blocks.append(section("*Your shifts in the next 14 days*\n" + "\n".join(mine[:MAX_LISTED])))
    blocks.append(context("`/incident oncall <level|team>` for hand-offs and the calendar link"))
    return Reply("\n".join(lines), blocks)


async def _zone_time(ctx: Ctx, sched: Schedule, value: object, now: datetime) -> datetime:
    if value == "now":
        return now
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(sched.zone))


@command("oncall_override")
async def override(ctx: Ctx, cmd: Command) -> Reply:
    reply = await _override(ctx, cmd, request_key=None)
    assert reply is not None  # only a form's repeat is answered with nothing
    return reply


async def _override(ctx: Ctx, cmd: Command, *, request_key: str | None) -> Reply | None:
    now = ctx.svc.clock.now()
    sched = _schedule(ctx, cmd.args["ref"])
    start = await _zone_time(ctx, sched, cmd.args["start"], now)
    raw_end = cmd.args["end"]
    end = start + raw_end if isinstance(raw_end, timedelta) else await _zone_time(ctx, sched, raw_end, now)
    user = str(cmd.args["user"])
    try:
        row = await oncall_flows.override_once(
            ctx.svc, sched, user, max(start, now), end, ctx.user, request_key=request_key
        )
    except service.OncallError as exc:
        return Reply(str(exc), ok=False)
    if row is None:
        return None  # a double submit (or Slack's retry) of the same form overrides once
    return Reply(
        f"Override #{row.id}: <@{user}> covers {_label(sched)} from {when(row.start_at)} to {when(row.end_at)}."
    )


@command("oncall_overrides")
async def list_overrides(ctx: Ctx, cmd: Command) -> Reply:
    now = ctx.svc.clock.now()
    ref = cmd.args.get("ref")
    names = [_schedule(ctx, ref).name] if ref else list(service.config_of(ctx.svc).book.schedules)
    rows = await service.upcoming_overrides(ctx.svc, names, now, limit=MAX_LISTED)
    if not rows:
        return Reply("No current or upcoming overrides.")
    book = service.config_of(ctx.svc).book.schedules
    lines = [
        f"#{r.id} {_label(book[r.schedule]) if r.schedule in book else r.schedule}: <@{r.user_id}> "
        f"{when(r.start_at)} → {when(r.end_at)} ({r.kind}, by <@{r.made_by}>)"
        for r in rows
    ]
    return Reply(
        "\n".join(lines),
        [section("*Overrides*\n" + "\n".join(lines)), context("`/incident oncall remove <n>`")],
    )


@command("oncall_remove")
async def remove(ctx: Ctx, cmd: Command) -> Reply:
    try:
        row = await service.remove_override(ctx.svc, int(cmd.args["number"]), ctx.user)  # type: ignore[call-overload]
    except service.OncallError as exc:
        return Reply(str(exc), ok=False)
    return Reply(f"Removed override #{row.id} (<@{row.user_id}> {when(row.start_at)} → {when(row.end_at)}).")


@command("oncall_take")
async def take(ctx: Ctx, cmd: Command) -> Reply:
    """I take the shift running now, until it would have ended."""
    now = ctx.svc.clock.now()
    sched = _schedule(ctx, cmd.args["ref"])
    try:
        taken = await oncall_flows.take_shift(ctx.svc, sched, ctx.user, now)
    except service.OncallError as exc:
        return Reply(str(exc), ok=False)
    if taken.row is None:
        return Reply(f"You are already on call for {_label(sched)}.", ok=False)
    return Reply(
        f"Override #{taken.row.id}: you cover {_label(sched)} (for {who(taken.was.users)}) until {when(taken.end)}."
    )


@command("oncall_give")
async def give(ctx: Ctx, cmd: Command) -> Reply:
    """ "Take my shift": my current or next shift goes to @user."""
    now = ctx.svc.clock.now()
    sched = _schedule(ctx, cmd.args["ref"])
    user = str(cmd.args["user"])
    try:
        given = await oncall_flows.give_shift(ctx.svc, sched, ctx.user, user, now)
    except service.OncallError as exc:
        return Reply(str(exc), ok=False)
    row = given.row
    return Reply(
        f"Override #{row.id}: <@{user}> takes your {_label(sched)} shift {when(row.start_at)} → {when(given.end)}."
    )


@command("oncall_swap")
async def swap(ctx: Ctx, cmd: Command) -> Reply:
    """My next shift and @user's next shift change hands: two overrides, made together."""
    now = ctx.svc.clock.now()
    sched = _schedule(ctx, cmd.args["ref"])
    other = str(cmd.args["user"])
    if other == ctx.user:
        return Reply("Swap with someone else.", ok=False)
    try:
        sw = await oncall_flows.swap_shifts(ctx.svc, sched, ctx.user, other, now)
    except service.OncallError as exc:
        return Reply(str(exc), ok=False)
    mine, theirs, a, b = sw.mine, sw.theirs, sw.covers_mine, sw.covers_theirs
    return Reply(
        f"Swapped on {_label(sched)}: <@{other}> covers {when(mine[0])} → {when(mine[1])} (#{a.id}); "
        f"you cover {when(theirs[0])} → {when(theirs[1])} (#{b.id})."
    )


# -- the override form (`/incident oncall override` with no arguments) ----------------------------------------

OVERRIDE_CALLBACK = "oncall_override"


def override_modal(ctx: Ctx) -> dict[str, Any]:
    options = [
        (_label(s), s.name)
        for s in sorted(
            service.config_of(ctx.svc).book.schedules.values(), key=lambda s: (s.level or 9, s.team or s.name)
        )
    ][:100]
    blocks: Blocks = [
        lb.input_block(
            "user",
            "Who covers",
            {"type": "users_select", "action_id": lb.VALUE, "placeholder": lb.plain("Pick a person", 150)},
        ),
        lb.input_block("schedule", "Level or team", lb.select(options, None, "Which schedule")),
        lb.input_block(
            "start",
            "From",
            lb.text_input("now", 40, placeholder="now or 2026-12-01T18:00"),
            hint="In the schedule's time zone unless you add Z or +hh:mm.",
        ),
        lb.input_block(
            "end", "For how long, or until", lb.text_input("8h", 40, placeholder="8h, 30m, 2d or an end time")
        ),
    ]
    return lb.modal(OVERRIDE_CALLBACK, "On-call override", blocks, submit="Override", metadata=ctx.channel)


@command("oncall_override_modal")
async def override_form(ctx: Ctx, cmd: Command) -> Reply | None:
    fallback = "Use `/incident oncall override @user <level> <start> <duration|end>`."
    if not ctx.trigger_id:
        raise UsageError(fallback)
    try:
        await ctx.svc.chat.open_view(ctx.trigger_id, override_modal(ctx))
    except ChatError as exc:
        raise UsageError(f"Slack would not open the form ({exc.error}). {fallback}") from None
    return None


def validate_override(values: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not values.get("user"):
        errors["user"] = "Pick who covers."
    if not values.get("schedule"):
        errors["schedule"] = "Pick a level or team."
    try:
        oncall_window(str(values.get("start") or ""), "1h")
    except UsageError as exc:
        errors["start"] = exc.message[:150]
    try:
        oncall_window("now", str(values.get("end") or ""))
    except UsageError as exc:
        errors["end"] = exc.message[:150]
    return errors


async def submit_override(ctx: Ctx, view: dict[str, Any], values: dict[str, Any]) -> None:
    ctx.channel = str(view.get("private_metadata") or "")
    try:
        start, end = oncall_window(str(values.get("start")), str(values.get("end")))
        cmd = Command(
            "oncall_override",
            {"user": str(values["user"]), "ref": str(values["schedule"]), "start": start, "end": end},
        )
        # A double submit (or Slack's retry) of the same form overrides once, and is answered once.
        reply = await _override(ctx, cmd, request_key=f"view:{view['id']}" if view.get("id") else None)
    except UsageError as exc:
        reply = Reply(exc.message, ok=False)
    if reply is not None:
        await _tell(ctx, reply)


VIEWS[OVERRIDE_CALLBACK] = ViewHandler(validate_override, submit_override)
