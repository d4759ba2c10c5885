"""`/incident check`, the recovery button, declaring from a check, and `/incident playbook`."""

from __future__ import annotations

from typing import Any

from bot import incident_store as service
from bot.dr.drill import finish_drill_if_any
from bot.health.flows import check_count, recover, run_check
from bot.health.playbook_doc import sections
from bot.health.probes import CheckReport, ProbeResult
from bot.health.report import render_progress, render_table
from bot.incidents.flows import DeclareRequest
from bot.ports import ChatError, Reply
from handlers import blocks as bk
from handlers.commands import run_declare
from handlers.parse import Command, UsageError
from handlers.registry import Ctx, action, command

ICON = {"ok": "🟢", "degraded": "🟡", "down": "🔴", "skipped": "⚪"}


def report_blocks(report: CheckReport, *, incident_id: str | None, title: str = "Health check") -> bk.Blocks:
    sev = report.suggested_severity
    verdict = f"{ICON.get('ok' if report.verdict == 'healthy' else report.verdict, '')} *{report.verdict}*"
    out: bk.Blocks = [
        bk.section(
            f"*{title}*: {verdict}"
            + (f" · suggested severity *{sev}*" if sev else "")
            + f" · {report.checks} checks in {report.wall_ms:.0f} ms"
        ),
        bk.section(f"```{bk.clip(render_table(report), 2900)}```"),
    ]
    buttons = []
    if report.report_url and incident_id:
        buttons.append(bk.button("Run recovery: end chaos", "run_recovery", incident_id, "danger"))
    if not incident_id and sev:
        summary = next(
            (f"{r.name}: {r.detail}" for r in report.results if r.status == "down"), report.verdict
        )
        buttons.append(
            bk.button(f"Declare {sev} incident", "declare_from_check", f"{sev}|Factory {summary}"[:300])
        )
    if buttons:
        out.append(bk.actions(*buttons))
    return out


@command("check")
async def check(ctx: Ctx, cmd: Command) -> Reply | None:
    svc = ctx.svc
    inc = await service.load_by_channel(svc.db, ctx.channel)
    total = check_count(svc)
    if inc is None:
        report = await run_check(svc, actor=ctx.user)
        return Reply(f"Health check: {report.verdict}", report_blocks(report, incident_id=None))
    ts = await svc.chat.post(ctx.channel, f"🩺 Running {total} checks…")
    lines: list[str] = []

    async def progress(result: ProbeResult) -> None:
        lines.append(f"{ICON.get(result.status, '')} {render_progress(result, len(lines) + 1, total)}")
        text = f"🩺 Running {total} checks… ({len(lines)}/{total})\n" + "\n".join(lines)
        try:
            await svc.chat.update(ctx.channel, ts, text, [bk.section(bk.clip(text, 2900))])
        except ChatError:
            pass  # progress is cosmetic; the final message below is what counts

    report = await run_check(svc, incident_id=inc.id, on_result=progress, actor=ctx.user)
    await svc.chat.update(
        ctx.channel, ts, f"Health check: {report.verdict}", report_blocks(report, incident_id=inc.id)
    )
    return None


@action("run_recovery")
async def run_recovery_button(ctx: Ctx, body: dict[str, Any]) -> Reply | None:
    incident_id = str(body["actions"][0].get("value", ""))
    inc = await service.load(ctx.svc.db, incident_id)
    if inc is None or not inc.channel_id:
        return Reply("That incident has no war room.", ok=False)
    ctx.channel = inc.channel_id
    await ctx.incident_to_change()  # war-room members only
    await ctx.svc.chat.post(
        inc.channel_id, f"🛠️ <@{ctx.user}> started the recovery action (ending Factory chaos)…"
    )
    run = await recover(ctx.svc, inc.id, ctx.user)
    verdict = "✅ chaos ended" if run.recovery.resolved else f"⚠️ not resolved: {run.recovery.detail}"
    text = f"Recovery: {verdict}. Before: {run.before.verdict} → after: {run.after.verdict}"
    blocks = [bk.section(f"*{text}*"), *report_blocks(run.after, incident_id=inc.id, title="After recovery")]
    await ctx.svc.chat.post(inc.channel_id, text, blocks)
    await finish_drill_if_any(ctx.svc, inc.id, ctx.user)  # a DRILL incident: measure, report, close
    return None


@action("declare_from_check")
async def declare_from_check(ctx: Ctx, body: dict[str, Any]) -> Reply:
    sev, _, summary = str(body["actions"][0].get("value", "")).partition("|")
    if sev not in ("P0", "P1", "P2", "P3") or not summary:
        raise UsageError("That button is out of date; run `/incident check` again.")
    req = DeclareRequest(
        severity=sev,
        summary=summary[:480],
        user=ctx.user,
        area="api",
        request_key=f"action:{ctx.trigger_id}" if ctx.trigger_id else None,
    )
    return await run_declare(ctx, req)


@command("playbook")
async def playbook(ctx: Ctx, cmd: Command) -> Reply:
    wanted = cmd.args.get("section")
    parts = sections()
    if wanted:
        match = [(t, b) for t, b in parts if str(wanted) in t.lower()]
        if not match:
            names = ", ".join(t for t, _ in parts)
            raise UsageError(f"No section matches `{wanted}`. Sections: {names}")
        parts = match
    out: bk.Blocks = [bk.header("JWT Pizza Factory playbook")]
    for title, body in parts:
        out.append(bk.section(f"*{title}*"))
        for i in range(0, len(body), 2900):
            out.append(bk.section(body[i : i + 2900]))
    if len(out) > bk.MAX_BLOCKS:
        out = [
            *out[: bk.MAX_BLOCKS - 1],
            bk.context("…more: ask for one section, e.g. `/incident playbook recovery`"),
        ]
    return Reply("JWT Pizza Factory playbook", out)
