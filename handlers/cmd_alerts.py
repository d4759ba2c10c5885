"""`/incident alerts`: in a war room, the incident's alerts; elsewhere, the alerts that were only recorded
(no routing rule matched, or the rule only records), so nothing a sender reported is invisible."""

from __future__ import annotations

from bot.alerts import flows
from bot.ports import Reply
from bot.states import AlertStatus
from handlers.blocks import MAX_BLOCKS, Blocks, context, section
from handlers.parse import Command
from handlers.registry import Ctx, command


@command("alerts")
async def alerts(ctx: Ctx, cmd: Command) -> Reply:
    inc = await ctx.war_room()
    if inc is not None:
        rows = await flows.incident_alerts(ctx.svc, inc.id)
        if not rows:
            return Reply(f"{inc.id} has no alerts from Grafana or Alertmanager.")
        firing = sum(1 for a in rows if a.status == AlertStatus.FIRING)
        title = f"*Alerts of {inc.id}*: {firing} firing, {len(rows) - firing} resolved"
    else:
        rows = await flows.unattached_alerts(ctx.svc)
        if not rows:
            return Reply(
                "No recorded-only alerts. Alerts that open or join an incident are listed in its war room."
            )
        title = f"*Recorded alerts* (not attached to an incident), newest first: {len(rows)}"
    parts = flows.list_text(rows, title)
    blocks: Blocks = [section(p) for p in parts[: MAX_BLOCKS - 1]]
    if len(parts) >= MAX_BLOCKS:
        blocks.append(context("More alerts than fit here; the PIR lists them all."))
    return Reply(title, blocks)
