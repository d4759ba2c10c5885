"""Post-incident subcommands: pir, action add/done, actions, stats. Thin: one flow call, then Block Kit."""

from __future__ import annotations

from datetime import date
from typing import Any

from bot.incidents import closing
from bot.models import Incident
from bot.pir import flows
from bot.pir.metrics import Measure, Stats, fmt_duration, fmt_rate, fmt_target
from bot.ports import ChatError, Reply
from bot.slack_text import esc, esc_clip, from_slack
from handlers.blocks import MAX_BLOCKS, SECTION_MAX, Blocks, context, header, section
from handlers.cmd_lifecycle import incident_by_id
from handlers.parse import Command
from handlers.registry import Ctx, action, command

_MARK = {"met": " ✅", "missed": " ❌"}


def _measure(m: Measure) -> str:
    target = f" ({fmt_target(m.target)})" if m.target is not None else ""
    return f"{m.name} {fmt_duration(m.value)}{_MARK.get(m.verdict, '')}{target}"


def _mrkdwn(text: str) -> str:
    """People's text inside our mrkdwn: keep Slack from reading it as markup or mentions."""
    return esc(text)


def pir_blocks(p: flows.PirSummary) -> tuple[str, Blocks]:
    drill = "[DRILL] " if p.is_drill else ""
    items = f"{p.open_items} open · {p.done_items} done" if p.open_items or p.done_items else "none yet"
    blocks: Blocks = [
        header(f"{drill}📝 Post-incident review: {p.incident_id}"),
        section(
            f"*{esc_clip(p.summary, 1500)}*",
            fields=[
                f"*Severity*\n{p.severity_label}",
                f"*Status*\n{p.status}",
                f"*Duration*\n{p.duration}",
                f"*Escalation*\n{f'reached L{p.top_level}' if p.top_level else 'nobody paged'}",
                f"*Action items*\n{items}",
            ],
        ),
        section(" · ".join(_measure(m) for m in p.measures)),
        section(f"<{p.url}|📄 PIR (Markdown)> · <{p.html_url}|🌐 Web view>"),
        context(
            f"Signed links, valid until {p.expires_at:%Y-%m-%d %H:%M} UTC. "
            "Run `/incident pir` again for a fresh one · add follow-ups with `/incident action add`"
        ),
    ]
    return f"{drill}PIR for {p.incident_id}: {p.url}", blocks


@command("pir")
async def pir(ctx: Ctx, cmd: Command) -> Reply:
    inc = await ctx.incident_here()
    summary = await flows.share_pir(ctx.svc, inc.id, ctx.user)
    if summary is None:
        return Reply("No such incident.", ok=False)
    text, blocks = pir_blocks(summary)
    try:
        await ctx.svc.chat.post(ctx.channel, text, blocks)
    except ChatError as exc:
        # The war room is gone or Slack refused: the person who asked still gets the link.
        return Reply(f"Could not post in the war room ({exc.error}). Your PIR link: {summary.url}", blocks)
    return Reply(f"Posted the PIR summary for {inc.id} in <#{ctx.channel}>.")


@command("pir_done")
async def pir_done(ctx: Ctx, cmd: Command) -> Reply:
    return await _pir_done(ctx, await ctx.incident_to_change())


@action("template_pir_done")
async def template_pir_done(ctx: Ctx, body: dict[str, Any]) -> Reply:
    """On a resolved template: what `/incident pir done` does (war-room members; a second press is answered)."""
    return await _pir_done(
        ctx, await incident_by_id(ctx, str(body["actions"][0].get("value", "")), change=True)
    )


async def _pir_done(ctx: Ctx, inc: Incident) -> Reply:
    result = await closing.pir_done(ctx.svc, inc.id, ctx.user)
    if result.state == "not_resolved":
        return Reply(
            f"{inc.id} is not resolved yet: resolve it, hold the review, then mark the PIR done.", ok=False
        )
    if result.state == "already":
        return Reply(f"The war room of {inc.id} is already closed.")
    return Reply(f"📦 PIR of {inc.id} marked done: the war room is being archived.")


@command("action_add")
async def action_add(ctx: Ctx, cmd: Command) -> Reply:
    inc = await ctx.incident_to_change()
    a = cmd.args
    due = a.get("due")
    owner = a.get("owner")
    result = await flows.add_action(
        ctx.svc,
        inc.id,
        from_slack(str(a["text"])),  # stored as typed: Slack sends a typed `<` as `&lt;`
        str(owner) if owner else None,
        due if isinstance(due, date) else None,
        ctx.user,
        request_key=f"action:{ctx.trigger_id}" if ctx.trigger_id else None,
    )
    if result.state == "duplicate" or result.item is None:
        return Reply("That request was already handled.")
    item = result.item
    late = " ⚠️ That due date is already past." if item.due_date and item.due_date < _today(ctx) else ""
    return Reply(f"✅ Action item #{item.number} added to {inc.id}: {_line(item, _today(ctx))}{late}")


@command("action_done")
async def action_done(ctx: Ctx, cmd: Command) -> Reply:
    inc = await ctx.incident_to_change()
    number = int(cmd.args["number"])  # type: ignore[call-overload]
    result = await flows.complete_action(ctx.svc, inc.id, number, ctx.user)
    if result.state == "missing":
        return Reply(f"{inc.id} has no action item #{number}. See `/incident actions`.", ok=False)
    if result.state == "already":
        return Reply(f"Action item #{number} was already done.")
    return Reply(f"☑️ Action item #{number} done: {_mrkdwn(result.item.text if result.item else '')}")


def _today(ctx: Ctx) -> date:
    return ctx.svc.clock.now().date()


def _line(item: flows.ActionView, today: date) -> str:
    box = "☑️" if item.status == flows.DONE else "⬜"
    owner = f"<@{item.owner}>" if item.owner else "no owner"
    due = item.due_date.isoformat() if item.due_date else "no due date"
    overdue = " ⚠️ overdue" if item.status != flows.DONE and item.due_date and item.due_date < today else ""
    return f"{box} `#{item.number}` {_mrkdwn(item.text)} — {owner}, due {due}{overdue}"


def actions_blocks(incident_id: str, items: list[flows.ActionView], today: date) -> tuple[str, Blocks]:
    done = sum(1 for i in items if i.status == flows.DONE)
    title = f"Action items for {incident_id}: {len(items) - done} open, {done} done"
    blocks: Blocks = [header(title)]
    if not items:
        blocks.append(section('None yet. Add one with `/incident action add "<text>" @owner YYYY-MM-DD`.'))
        return title, blocks
    chunk = ""
    for item in items:
        line = _line(item, today)[:1000]
        if len(chunk) + len(line) + 1 > SECTION_MAX:
            blocks.append(section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    blocks.append(section(chunk))
    if len(blocks) > MAX_BLOCKS - 1:
        blocks = [*blocks[: MAX_BLOCKS - 2], section("…more: see the PIR for the full list.")]
    blocks.append(context("`/incident action done <n>` marks one done · they all appear in `/incident pir`"))
    return title, blocks


@command("actions")
async def actions(ctx: Ctx, cmd: Command) -> Reply:
    inc = await ctx.incident_here()
    items = await flows.list_actions(ctx.svc, inc.id)
    text, blocks = actions_blocks(inc.id, items, _today(ctx))
    return Reply(text, blocks)


def stats_blocks(st: Stats, days: int) -> tuple[str, Blocks]:
    by = st.by_severity
    counts = " · ".join(f"{k} {v.count}" for k, v in by.items())
    fields = [
        f"*{k}* ({v.count})\n" + "\n".join(_measure(m) for m in v.measures) if v.count else f"*{k}* (0)\n—"
        for k, v in by.items()
    ]
    esc = "" if st.escalation_met is None else (" ✅" if st.escalation_met else " ❌")
    trend = {"up": " ↑", "down": " ↓", "flat": " →"}.get(st.mttf_trend or "", "")
    mttf = fmt_duration(st.mttf) if st.mttf is not None else "no incidents"
    prev = f", previous {days} d: {fmt_duration(st.previous_mttf)}" if st.previous_total is not None else ""
    blocks: Blocks = [
        header(f"📊 Incident metrics: last {days} days"),
        section(f"*{st.total} incidents* ({counts}), {st.open} still open. Drills are not counted."),
        section("*Per severity* (means, against the targets)", fields=fields),
        section(
            f"*Escalation rate* {fmt_rate(st.escalation_rate)} ({st.escalated} of {st.total}"
            " escalated beyond their first page), "
            f"target < {st.escalation_target * 100:.0f} %{esc}\n"
            f"*MTTF* {mttf}{trend} (uptime {fmt_duration(st.uptime)} / {st.total}){prev}"
        ),
        context(
            "MTTD = declared − detected · MTTA = acknowledged − declared · MTTR = resolved − declared · "
            "`incident-bot stats` prints the same"
        ),
    ]
    return f"Incident metrics, last {days} days: {st.total} incidents", blocks


@command("stats")
async def stats(ctx: Ctx, cmd: Command) -> Reply:
    days = int(cmd.args.get("days") or 30)  # type: ignore[call-overload]
    st = await flows.stats(ctx.svc, days)
    text, blocks = stats_blocks(st, days)
    return Reply(text, blocks)
