"""`/incident drill …` (fault drills and the tabletop), `/incident dr signoff|status`, and their buttons.
The Block Kit of drill messages lives here too (bot/dr posts it through the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.dr.drill import check_drill, start_drill
from bot.dr.fault import REAL_CHAOS_NOTE, DrillRefused, target_name
from bot.dr.plan import CriticalService, load_dr
from bot.dr.report import TABLETOP, DrillReport, report_line
from bot.dr.signoff import DrStatus, SignoffError, SignoffView, dr_status, sign
from bot.dr.tabletop import (
    TabletopAnswer,
    TabletopStep,
    answer_step,
    run_tabletop,
)
from bot.dr.times import fmt_secs, parse_time
from bot.permissions import Perm, signoff_perm
from bot.playbook import format_duration
from bot.ports import ChatError, Reply
from handlers.blocks import (
    SECTION_MAX,
    Blocks,
    actions,
    button,
    clip,
    context,
    header,
    section,
)
from handlers.guard import button_incident, button_tabletop
from handlers.parse import Command, UsageError
from handlers.registry import Ctx, action, command

_MET = {True: " ✅", False: " ❌"}
DEFINITIONS = (
    "Measured from the fault: detect = first failing check · acknowledge = first acknowledgement · "
    "recover = first all-green check after the last failing one."
)


DETECTED_BY = {"monitor": "the monitor", "check": "`/incident check`", "drill": "the drill's own checks"}


def _mark(value: object) -> str:
    return _MET.get(value, "") if isinstance(value, bool) else ""


def _hhmm(value: object) -> str:
    at = parse_time(value)
    return f"{at:%Y-%m-%d %H:%M:%S} UTC" if at else "—"


def _who(user: object) -> str:
    return f"<@{user}>" if isinstance(user, str) and user[:1] in ("U", "W") else str(user or "—")


# -- drill messages (also rendered for bot/dr) --------------------------------------------------------


def drill_started_message(drill_id: int, r: DrillReport) -> tuple[str, Blocks]:
    scenario, incident_id = str(r.scenario), str(r.incident_id)
    text = f"[DRILL] 🧪 Drill `{scenario}` started: {r.injection}"
    objective = _objective(r)
    rto = format_duration(objective.rto) if objective else "—"
    rpo = "no data at risk" if objective is None or objective.rpo is None else format_duration(objective.rpo)
    blocks: Blocks = [
        header(f"[DRILL] 🧪 Drill started: {scenario}"),
        section(f"This is a *DRILL*, not a real outage: {r.title or scenario}.\n*Fault*: {r.injection}"),
        section(
            "*Respond as for real*: acknowledge (`/incident ack`), run `/incident check`, and follow "
            f"dr-plan.md §{r.section}. The drill ends when the checks are green again; its report is "
            f"posted here.\n*Objectives*: recover within the RTO ({rto}) · RPO: {rpo}"
        ),
        actions(button("Check recovery now", "drill_check", incident_id)),
        context(f"Drill #{drill_id} · clock started {_hhmm(r.origin)} · {DEFINITIONS}"),
    ]
    return text, blocks


def _objective(r: DrillReport) -> CriticalService | None:
    services = load_dr().services
    return services.get(str(r.service)) or services.get("factory")


def drill_report_message(drill_id: int, r: DrillReport) -> tuple[str, Blocks]:
    scenario = str(r.scenario)
    if r.state == "finished":
        result = "✅ recovered within the RTO" if r.rto_met else "❌ recovered, but past the RTO"
    else:
        result = "⚠️ ended before the checks were green again"
    detect = (
        f"*Time to detect* {fmt_secs(r.ttd_s)}{_mark(r.ttd_met)}"
        f" (by {DETECTED_BY.get(str(r.detected_by), '—')};"
        f" target < {fmt_secs(r.ttd_target_s)})"
    )
    ack = f"*Time to acknowledge* {fmt_secs(r.tta_s)}"
    if r.acknowledged_by:
        ack += f" (by {_who(r.acknowledged_by)}"
        if r.ack_after_detect_s is not None:
            ack += (
                f"; {fmt_secs(r.ack_after_detect_s)} after detection{_mark(r.response_met)},"
                f" response target {fmt_secs(r.response_target_s)}"
            )
        ack += ")"
    else:
        ack += " (nobody acknowledged)"
    if r.ack_note:
        ack += f" — {r.ack_note}"
    action_line = r.recovery_outcome or "none recorded (checks went green)"
    if r.recovery_action_by:
        action_line += f" by {_who(r.recovery_action_by)} at {_hhmm(r.recovery_action_at)}"
    recover = (
        f"*Time to recover* {fmt_secs(r.ttr_s)}{_mark(r.rto_met)}"
        f" · RTO {fmt_secs(r.rto_s)} · recovery action: {action_line}"
    )
    blocks: Blocks = [
        header(f"[DRILL] 🧪 Drill report: {scenario}"),
        section(
            f"*{r.title or scenario}*",
            fields=[
                f"*Incident*\n{r.incident_id}",
                f"*Target*\n{target_name(str(r.target))}",
                f"*Fault at*\n{_hhmm(r.origin)}",
                f"*Result*\n{result}",
            ],
        ),
        section(clip("\n".join([detect, ack, recover, f"*RPO* {r.rpo_text}"]), SECTION_MAX)),
        context(
            f"{DEFINITIONS} Stored as drill #{drill_id}. A missed objective becomes an action item "
            "(`/incident action add`). The drill incident is now closed."
        ),
    ]
    if r.starts_later:
        blocks.append(context(REAL_CHAOS_NOTE))
    if r.warning:  # e.g. chaos never started and stays scheduled in the real Factory
        blocks.append(section(clip(f"⚠️ {r.warning}", SECTION_MAX)))
    return f"[DRILL] {report_line(r)}", blocks


# -- /incident drill ---------------------------------------------------------------------------------------------


@command("drill")
async def drill(ctx: Ctx, cmd: Command) -> Reply:
    scenario = str(cmd.args.get("scenario", ""))
    await ctx.require(Perm.DRILL)  # DR admins only, before anything reaches the Factory
    if scenario == TABLETOP:
        return await _tabletop(ctx)
    try:
        started = await start_drill(
            ctx.svc,
            scenario,
            ctx.user,
            request_key=f"trigger:{ctx.trigger_id}" if ctx.trigger_id else None,
            allow_real_factory=ctx.svc.settings.drills_allow_real_factory,
        )
    except DrillRefused as exc:
        raise UsageError(f"🛑 {exc.message}") from exc
    where = f"<#{started.channel_id}>" if started.channel_id else "(its war room is not ready yet)"
    r = started.report
    if started.duplicate:
        return Reply(f"That drill is already running: {started.incident_id} {where}.")
    text = f"🧪 Drill `{scenario}` started: [DRILL] {started.incident_id} in {where}."
    blocks: Blocks = [section(f"{text}\n{r.injection}")]
    if r.starts_later:
        blocks.append(context(REAL_CHAOS_NOTE))
    return Reply(text, blocks)


@action("drill_check")
async def drill_check(ctx: Ctx, body: dict[str, Any]) -> Reply | None:
    """Check now and finish the drill if the checks are green (e.g. service-down, once the Factory is back)."""
    inc = await button_incident(ctx.svc, str(body["actions"][0].get("value", "")), ctx.channel)
    await ctx.require(Perm.CHANGE, inc)  # war-room members only
    checked = await check_drill(ctx.svc, inc.id, ctx.user)
    report = checked.report
    if checked.finished is not None:
        return Reply(
            f"Checks are {report.verdict}: the drill is finished and its report is in <#{inc.channel_id}>."
        )
    return Reply(
        f"Checks: {report.verdict}. The drill goes on until a check is green after the fault was detected."
    )


# -- tabletop ------------------------------------------------------------------------------------------------------


def tabletop_step_message(step: TabletopStep) -> tuple[str, Blocks]:
    value = f"{step.drill_id}:{step.index}"
    title = f"🗺️ Tabletop step {step.index + 1}/{step.total} · {step.section}"
    return f"Tabletop step {step.index + 1}/{step.total}: {step.section}", [
        section(clip(f"*{title}*\n{step.text}", SECTION_MAX)),
        actions(
            button("Done", "tabletop_done", value, "primary"),
            button("Blocked", "tabletop_blocked", value, "danger"),
            block_id=f"tabletop_{value}",
        ),
        context("*Done*: the team agrees the step works as written · *Blocked*: it would not (a gap to fix)"),
    ]


def tabletop_answered_message(ans: TabletopAnswer) -> tuple[str, Blocks]:
    step = ans.step
    assert step is not None
    mark = "✅ Done" if ans.outcome == "done" else "⛔ Blocked"
    title = f"🗺️ Tabletop step {step.index + 1}/{step.total} · {step.section}"
    took = fmt_secs(ans.seconds)
    return f"{title}: {mark}", [
        section(clip(f"*{title}*\n{step.text}", SECTION_MAX)),
        context(f"{mark} by <@{ans.by}> after {took}"),
    ]


def tabletop_summary_message(drill_id: int, sm: dict[str, Any]) -> tuple[str, Blocks]:
    blocked: list[dict[str, Any]] = list(sm.get("blocked") or [])
    text = (
        f"🗺️ Tabletop finished: {sm.get('done')}/{sm.get('steps')} steps done, {len(blocked)} blocked, "
        f"in {fmt_secs(sm.get('total_s'))}"
    )
    blocks: Blocks = [
        header("🗺️ DR tabletop finished"),
        section(
            text,
            fields=[
                f"*Steps*\n{sm.get('steps')}",
                f"*Done*\n{sm.get('done')}",
                f"*Blocked*\n{len(blocked)}",
                f"*Time*\n{fmt_secs(sm.get('total_s'))}",
            ],
        ),
    ]
    if blocked:
        lines = [f"• Step {b['index'] + 1} ({b['section']}): {clip(str(b['text']), 200)}" for b in blocked]
        blocks.append(section(clip("*Gaps to fix in dr-plan.md*\n" + "\n".join(lines), SECTION_MAX)))
    slowest = sm.get("slowest") or {}
    if slowest:
        blocks.append(
            context(
                f"Longest discussion: step {slowest['index'] + 1} ({slowest['section']}), "
                f"{fmt_secs(slowest.get('seconds'))}"
            )
        )
    blocks.append(
        context(
            f"Stored as drill #{drill_id}. Editing dr-plan.md needs new sign-offs (`/incident dr signoff`)."
        )
    )
    return text, blocks


async def _tabletop(ctx: Ctx) -> Reply:
    chat = ctx.svc.chat

    async def post(step: TabletopStep) -> str:
        if not step.resumed and step.index == 0:
            await chat.post(
                step.channel,
                f"🗺️ <@{ctx.user}> started a DR tabletop: {step.total} steps of dr-plan.md's recovery procedures, "
                "one at a time. Talk each one through, then press *Done* or *Blocked*.",
            )
        text, blocks = tabletop_step_message(step)
        return await chat.post(step.channel, text, blocks)

    try:
        step = await run_tabletop(ctx.svc, ctx.channel, ctx.user, post)
    except DrillRefused as exc:
        raise UsageError(exc.message) from exc
    except ChatError as exc:
        raise UsageError(
            f"Could not post in this channel ({exc.error}). Invite the bot (`/invite @incident-bot`) and run "
            "`/incident drill tabletop` again: it resumes where it stopped."
        ) from exc
    if step.resumed:
        return Reply(f"Resumed the tabletop (drill #{step.drill_id}) at step {step.index + 1}/{step.total}.")
    return Reply(f"Tabletop started (drill #{step.drill_id}): {step.total} steps.")


@action("tabletop_done", "tabletop_blocked")
async def tabletop_answer(ctx: Ctx, body: dict[str, Any]) -> Reply | None:
    act = body["actions"][0]
    outcome = "done" if act.get("action_id") == "tabletop_done" else "blocked"
    drill_id, _, index = str(act.get("value", "")).partition(":")
    if not (drill_id.isdigit() and index.isdigit() and len(drill_id) < 16 and len(index) < 6):
        raise UsageError("That button is out of date; run `/incident drill tabletop` again.")
    room = await button_tabletop(ctx.svc, int(drill_id), ctx.channel)
    await ctx.require(Perm.TABLETOP, channel=room)
    chat = ctx.svc.chat

    async def show(ans: TabletopAnswer) -> str | None:
        if ans.answered_ts:
            text, blocks = tabletop_answered_message(ans)
            try:
                await chat.update(ans.channel, ans.answered_ts, text, blocks)
            except ChatError:
                pass  # cosmetic: the answer is recorded
        if ans.next is not None:
            text, blocks = tabletop_step_message(ans.next)
            return await chat.post(ans.channel, text, blocks)
        if ans.summary is not None:
            text, blocks = tabletop_summary_message(ans.drill_id, ans.summary)
            await chat.post(ans.channel, text, blocks)
        return None

    try:
        ans = await answer_step(ctx.svc, int(drill_id), int(index), outcome, ctx.user, show)
    except ChatError as exc:
        return Reply(
            f"Recorded, but the next message failed ({exc.error}). Run `/incident drill tabletop` to resume.",
            ok=False,
        )
    if ans.state == "missing":
        return Reply("That tabletop no longer exists.", ok=False)
    if ans.state == "stale":
        if ans.outcome:
            return Reply(f"Step {ans.index + 1} was already answered ({ans.outcome} by <@{ans.by}>).")
        return Reply("That step is not the current one; answer the latest step posted.")
    return None


# -- /incident dr signoff | status --------------------------------------------------------------------------------


@command("dr_signoff")
async def dr_signoff(ctx: Ctx, cmd: Command) -> Reply:
    role = str(cmd.args.get("role", ""))
    await ctx.require(signoff_perm(role))  # the configured owner for that role, by Slack id
    try:
        result = await sign(
            ctx.svc, role, ctx.user, request_key=f"trigger:{ctx.trigger_id}" if ctx.trigger_id else None
        )
    except SignoffError as exc:
        raise UsageError(exc.message) from exc
    so = result.signoff
    digest = f"`{(so.plan_hash or '')[:12]}…`"
    if result.state == "already":
        when = f" on {so.at:%Y-%m-%d}" if so.at else ""
        return Reply(
            f"Already recorded: {_who(so.user_id)} signed dr-plan.md ({digest}) for {so.title}{when}."
        )
    text = f"✍️ Recorded: <@{ctx.user}> signs dr-plan.md for {so.title} (sha256 {digest}) at {_at(so.at)}."
    prev = result.previous
    if prev is not None and prev.stale:
        text += f" It replaces {_who(prev.user_id)}'s sign-off of an older text ({_at(prev.at)})."
    elif prev is not None:
        text += f" Previously signed by {_who(prev.user_id)} ({_at(prev.at)})."
    return Reply(text)


def _at(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else "—"


def _signoff_line(x: SignoffView) -> str:
    if not x.signed:
        return f"• {x.title}: ❌ not signed · `/incident dr signoff {x.role}`"
    if x.stale:
        return (
            f"• {x.title}: ⚠️ stale: {_who(x.user_id)} signed an older text (`{(x.plan_hash or '')[:12]}…`)"
            f" on {_at(x.at)} · sign again with `/incident dr signoff {x.role}`"
        )
    return f"• {x.title}: ✅ {_who(x.user_id)} on {_at(x.at)} (this text)"


def dr_status_blocks(st: DrStatus) -> tuple[str, Blocks]:
    rv = st.review
    if rv.due:
        review = "⚠️ *Review due*: " + "; ".join(rv.reasons) + "."
    else:
        review = f"✅ Review not due: next by {rv.next_due:%Y-%m-%d}" if rv.next_due else "✅ Review not due"
    drill_lines = []
    for d in st.drills:
        every = format_duration(d.every)
        if d.last_at is None:
            line = f"• `{d.scenario}` (every {every}): ⚠️ never run, due"
        else:
            state = "⚠️ due" if d.due else f"next by {d.next_due:%Y-%m-%d}" if d.next_due else ""
            line = (
                f"• `{d.scenario}` (every {every}): {d.last_at:%Y-%m-%d}: {d.summary}{_mark(d.ok)} · {state}"
            )
        if d.running_since is not None:
            line += f" · 🧪 running since {_at(d.running_since)}"
        drill_lines.append(line)
    blocks: Blocks = [
        header("🛟 Disaster recovery status"),
        section(
            f"*Plan*: `dr-plan.md` sha256 `{st.plan_hash[:12]}…` · review every {format_duration(rv.interval)}"
        ),
        section(clip("*Sign-offs*\n" + "\n".join(_signoff_line(x) for x in st.signoffs), SECTION_MAX)),
        section(clip(review, SECTION_MAX)),
        section(clip("*Drills* (last completed, against RTO/RPO)\n" + "\n".join(drill_lines), SECTION_MAX)),
        context(DEFINITIONS),
    ]
    due = "review due" if rv.due else "review not due"
    signed = sum(1 for x in st.signoffs if x.signed and not x.stale)
    return f"DR status: {signed}/{len(st.signoffs)} current sign-offs, {due}", blocks


@command("dr_status")
async def dr_status_cmd(ctx: Ctx, cmd: Command) -> Reply:
    text, blocks = dr_status_blocks(await dr_status(ctx.svc))
    return Reply(text, blocks)
