"""`/incident check`, the recovery button and declaring from a check."""

from __future__ import annotations

import secrets
from typing import Any

from bot.dr.drill import recover_from_report
from bot.health.flows import RecoveryRun, check_count, run_check
from bot.health.probes import CheckReport, ProbeResult
from bot.health.report import render_progress, render_table
from bot.incidents.flows import DeclareRequest, IncidentFlows
from bot.permissions import Perm
from bot.ports import ChatError, Reply
from bot.slack_text import esc, esc_clip
from bot.states import IncidentStatus
from handlers import blocks as bk
from handlers.commands import declared_reply
from handlers.guard import button_incident
from handlers.parse import Command, UsageError
from handlers.registry import REPLACES_MESSAGE, Ctx, action, command

ICON = {"ok": "🟢", "degraded": "🟡", "down": "🔴", "skipped": "⚪"}
PROGRESS_EVERY = 5.0  # seconds between progress edits while a recovery runs


def report_blocks(
    report: CheckReport,
    *,
    incident_id: str | None,
    title: str = "Health check",
    offer_recovery: bool = True,
    key: str | None = None,
) -> bk.Blocks:
    """A check's report. Its buttons carry `key` (fresh for each report): a recovery or a declaration is done
    once per report, so a second press of the same button (a double click, an old copy) does nothing."""
    key = key or secrets.token_hex(6)
    sev = report.suggested_severity
    verdict = f"{ICON.get('ok' if report.verdict == 'healthy' else report.verdict, '')} *{report.verdict}*"
    out: bk.Blocks = [
        bk.section(
            f"*{title}*: {verdict}"
            + (f" · suggested severity *{sev}*" if sev else "")
            + f" · {report.checks} checks in {report.wall_ms:.0f} ms"
        ),
        # The table carries the Factory's own messages: escaped like people's text (Slack parses `<…>` in
        # code blocks too).
        bk.section(f"```{esc_clip(render_table(report), 2900)}```"),
    ]
    buttons = []
    if (report.report_url or report.chaos_type) and incident_id and offer_recovery:
        # Chaos known (the vendor record or a link).
        buttons.append(bk.button("Run recovery: end chaos", "run_recovery", f"{incident_id}|{key}", "danger"))
    if not incident_id and sev:
        summary = report.impact or next(
            (f"{r.name}: {r.detail}" for r in report.results if r.status == "down"), report.verdict
        )
        buttons.append(
            bk.button(
                f"Declare {sev} incident", "declare_from_check", f"{sev}|k={key}|Factory {summary}"[:300]
            )
        )
    if buttons:
        out.append(bk.actions(*buttons))
    return out


@command("check")
async def check(ctx: Ctx, cmd: Command) -> Reply | None:
    svc = ctx.svc
    inc = await ctx.war_room()
    total = check_count(svc)
    if inc is None:
        report = await run_check(svc, actor=ctx.user)
        return Reply(f"Health check: {report.verdict}", report_blocks(report, incident_id=None))
    ts = await svc.chat.post(ctx.channel, f"🩺 Running {total} checks…")
    lines: list[str] = []

    async def progress(result: ProbeResult) -> None:
        lines.append(f"{ICON.get(result.status, '')} {esc(render_progress(result, len(lines) + 1, total))}")
        text = f"🩺 Running {total} checks… ({len(lines)}/{total})\n" + "\n".join(lines)
        try:
            await svc.chat.update(ctx.channel, ts, text, [bk.section(esc_clip(text, 2900))])
        except ChatError:
            pass  # progress is cosmetic; the final message below is what counts

    report = await run_check(svc, incident_id=inc.id, on_result=progress, actor=ctx.user)
    await svc.chat.update(
        ctx.channel, ts, f"Health check: {report.verdict}", report_blocks(report, incident_id=inc.id)
    )
    return None


def _pressed_gone(body: dict[str, Any], action_id: str, note: str) -> tuple[str, str, str, bk.Blocks] | None:
    """The message a button was pressed on (as the client showed it), without that button and with `note`:
    (channel, ts, text, blocks), or None when Slack sent no message (an ephemeral, a test)."""
    message = body.get("message")
    container = body.get("container") or {}
    channel, ts = str(container.get("channel_id") or ""), str(container.get("message_ts") or "")
    if not isinstance(message, dict) or not channel or not ts or container.get("is_ephemeral"):
        return None
    blocks: bk.Blocks = []
    for block in message.get("blocks") or []:
        if isinstance(block, dict) and block.get("type") == "actions":
            kept = [e for e in block.get("elements") or [] if e.get("action_id") != action_id]
            if kept:
                blocks.append({**block, "elements": kept})
        elif isinstance(block, dict):
            blocks.append(block)
    blocks.append(bk.context(note))
    return channel, ts, str(message.get("text") or ""), blocks[: bk.MAX_BLOCKS]


@action("run_recovery")
async def run_recovery_button(ctx: Ctx, body: dict[str, Any]) -> Reply | None:
    incident_id, _, key = str(body["actions"][0].get("value", "")).partition("|")
    inc = await button_incident(ctx.svc, incident_id, ctx.channel)
    room = inc.channel_id
    assert room is not None
    await ctx.require(Perm.CHANGE, inc)  # war-room members only
    if inc.status == IncidentStatus.RESOLVED:
        return Reply(f"{inc.id} is already resolved: nothing was recovered.", ok=False)
    chat = ctx.svc.chat
    started = f"🛠️ <@{ctx.user}> started the recovery action (ending Factory chaos)…"
    ts = ""

    async def on_started() -> None:
        nonlocal ts
        gone = _pressed_gone(body, "run_recovery", f"🛠️ Recovery run by <@{ctx.user}>")
        if gone is not None:
            try:
                await chat.update(*gone)
            except ChatError:
                pass  # the claim is what keeps a second press from running it again
        ts = await chat.post(room, started)

    async def on_waiting(waited: float) -> None:
        # The recovery's long order runs in the background while the message shows it is still waiting.
        text = (
            f"{started} still waiting for the Factory ({waited:.0f} s; throttle answers after ~32 s,"
            " the recovery order waits up to 40 s)"
        )
        try:
            await chat.update(room, ts, text, [bk.section(text)])
        except ChatError:
            pass  # progress is cosmetic

    async def on_ran(run: RecoveryRun) -> None:
        verdict = "✅ chaos ended" if run.recovery.resolved else f"⚠️ not resolved: {esc(run.recovery.detail)}"
        text = f"Recovery: {verdict}. Before: {run.before.verdict} → after: {run.after.verdict}"
        after = report_blocks(
            run.after, incident_id=inc.id, title="After recovery", offer_recovery=not run.recovery.resolved
        )
        await chat.post(room, text, [bk.section(f"*{text}*"), *after])

    # A drill incident is measured, reported and closed after the recovery (finish_drill_if_any).
    outcome = await recover_from_report(
        ctx.svc,
        inc.id,
        ctx.user,
        key,
        started=on_started,
        waiting=on_waiting,
        ran=on_ran,
        every=PROGRESS_EVERY,
    )
    if outcome.claimed_by is not None:
        return Reply(
            f"<@{outcome.claimed_by}> already ran the recovery from that report: nothing was done again."
            " Run `/incident check` for a fresh report (it offers recovery if chaos is still on).",
            ok=False,
        )
    return None


REPLACES_MESSAGE.add("declare_from_check")  # the answer replaces the report: its suggestion is used up


@action("declare_from_check")
async def declare_from_check(ctx: Ctx, body: dict[str, Any]) -> Reply:
    sev, _, summary = str(body["actions"][0].get("value", "")).partition("|")
    key = None
    if summary.startswith("k="):  # the report's key: one declaration per suggestion, however often pressed
        key, _, summary = summary.removeprefix("k=").partition("|")
    if sev not in ("P0", "P1", "P2", "P3") or not summary:
        raise UsageError("That button is out of date; run `/incident check` again.")
    if key:
        request_key: str | None = f"suggestion:{key}"
    else:
        request_key = f"action:{ctx.trigger_id}" if ctx.trigger_id else None
    req = DeclareRequest(
        severity=sev, summary=summary[:480], user=ctx.user, area="api", request_key=request_key
    )
    declared = await IncidentFlows(ctx.svc).declare_and_show(req)
    result = declared.result
    if result.state == "duplicate" and result.incident_id and key:
        room = f" (war room <#{result.channel_id}>)" if result.channel_id else ""
        return Reply(
            f"That suggestion was already declared as {result.incident_id}{room}: nothing new was declared.",
            ok=False,
        )
    return declared_reply(ctx, declared)
