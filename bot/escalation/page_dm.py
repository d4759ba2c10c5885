"""Page DMs as outbox effects: what a page DM shows, the `page_dm` effect that sends it and the `page_edit`
effect that later edits it (acknowledged, resolved, the war room now exists).

A page is written in one transaction with one `page_dm` row per person paged (bot.escalation.flows). Rows of
one page's DM to one person and its edits share an ordering key, so every edit is delivered after the DM itself,
even when the edit is queued while the DM is still waiting on Slack's rate limits. The DM is rendered when it
is sent, so it names the war room if the room exists by then, and it is not sent at all once the incident is
acknowledged or resolved: a page that waited in the queue past the answer would only be noise. Where the DM
went (channel, ts) is recorded on the page row in the transaction that marks the outbox row sent
(`record_page_dm`, registered with the effect), which is what the edits read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import Services
from bot.models import Incident, OutboxMessage, Page
from bot.outbox import effect_row, enqueue, find_posted, may_be_done, post_marked
from bot.priority import PAGE
from bot.states import IncidentStatus
from bot.timefmt import fmt_elapsed

PAGE_DM = "page_dm"
PAGE_EDIT = "page_edit"


@dataclass(frozen=True)
class PageView:
    incident_id: str
    severity_label: str
    summary: str
    open_for: str
    channel_id: str | None
    level: int
    level_name: str
    reason: str
    is_drill: bool
    # Set once the page's moment has passed: the DM is edited to say so and keeps the context above.
    acked_by: str | None = None
    acked_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    pir_url: str | None = None


def page_view(svc: Services, inc: Incident, page: Page, now: datetime, **final: Any) -> PageView:
    """What a page DM shows of its incident; `final` adds the ack / resolve fields."""
    acked = inc.ack_cycle == inc.cycle and page.cycle == inc.cycle
    return PageView(
        incident_id=inc.id,
        severity_label=svc.playbook.severities.label(inc.severity),
        summary=inc.summary,
        open_for=fmt_elapsed(now - inc.declared_at),
        channel_id=inc.channel_id,
        level=page.level,
        level_name=svc.playbook.roster.level_name(page.level),
        reason=page.reason,
        is_drill=inc.is_drill,
        acked_by=page.acked_by or (inc.acknowledged_by if acked else None),
        acked_at=page.acked_at or (inc.acknowledged_at if acked else None),
        **final,
    )


def order_key(page: Page, user: str) -> str:
    """The outbox ordering key of one page's DM to one person and its edits: they go out in order, while
    the DMs of other pages (other incidents paging the same person) do not wait behind them."""
    return f"page:{page.id}:{user}"


def page_dm_row(page: Page, user: str, now: datetime) -> dict[str, Any]:
    """The outbox row of `page`'s DM to `user`, for the page's transaction (bot.outbox.enqueue_rows). The
    dedupe key makes a second queueing impossible."""
    return effect_row(
        PAGE_DM,
        channel=order_key(page, user),
        incident_id=page.incident_id,
        at=now,
        payload={"page": page.id, "user": user, "priority": PAGE},
        dedupe_key=order_key(page, user),
    )


async def queue_page_edit(
    s: AsyncSession,
    page: Page,
    user: str,
    rendered: tuple[str, Any],
    now: datetime,
    *,
    unless_room: bool = False,
) -> None:
    """In the caller's transaction: an edit of `user`'s DM of `page`, delivered after the DM itself.
    `unless_room`: only if the DM was sent before the war room existed (it is then re-rendered with it)."""
    text, blocks = rendered
    payload = {"page": page.id, "user": user, "text": text, "blocks": blocks, "unless_room": unless_room}
    await enqueue(
        s, PAGE_EDIT, channel=order_key(page, user), incident_id=page.incident_id, at=now, payload=payload
    )


_PAGE_AND_INCIDENT = select(Page, Incident).join(Incident, Incident.id == Page.incident_id)


async def load_page_dms(svc: Services, rows: list[OutboxMessage]) -> dict[int, tuple[Incident, Page]]:
    """The `page_dm` rows' preparer: every row's page and incident, in one statement for a delivery round."""
    wanted = {int(r.payload["page"]) for r in rows}
    async with svc.db.session() as s:
        stmt = _PAGE_AND_INCIDENT.where(Page.id.in_(wanted))
        found = {page.id: (inc, page) for page, inc in (await s.execute(stmt)).tuples()}
    return {r.id: found[int(r.payload["page"])] for r in rows if int(r.payload["page"]) in found}


async def page_dm_effect(
    svc: Services, row: OutboxMessage, loaded: tuple[Incident, Page] | None
) -> dict[str, Any] | None:
    """Send one page DM, rendered now; skipped once nobody needs it any more. `loaded`: the row's incident
    and page, read at the start of the delivery round (`load_page_dms`), None when the page is gone."""
    user = str(row.payload["user"])
    if may_be_done(row):
        # An earlier try may have reached the person (its answer lost) before the page was answered: that
        # DM is recorded, so the ack's edit queued behind this row updates it, rather than skipped and left
        # showing a live page.
        channel = await svc.chat.open_dm(user)
        if (found := await find_posted(svc, row, channel)) is not None:
            return {"channel": channel, **found}
    if loaded is None:
        return {"skipped": "gone"}
    inc, page = loaded
    if inc.status == IncidentStatus.RESOLVED:
        return {"skipped": "resolved"}
    if inc.cycle != page.cycle:
        return {"skipped": "reopened since"}  # a page of the cycle before a reopen
    if page.acked_at is not None:
        # Answered while its DM waited in the queue (the ack marks every page of the cycle sent so far).
        # Steps paged after an ack ("until resolved" levels, a forced escalation) have none and do go out.
        return {"skipped": "acknowledged"}
    view = page_view(svc, inc, page, svc.clock.now())
    text, blocks = svc.render.page_dm(view)
    channel = await svc.chat.open_dm(user)  # known to the ChatPort already if it was looked in above
    # `room`: whether the DM could name the war room; one that could not is edited once it exists. A DM
    # found again (posted by a try whose answer was lost) says how it was rendered then.
    return await post_marked(svc, row, channel, text, blocks, channel=channel, room=bool(view.channel_id))


async def _pages_locked(
    s: AsyncSession, items: list[tuple[OutboxMessage, dict[str, Any]]]
) -> dict[int, Page]:
    ids = {int(row.payload["page"]) for row, _ in items}
    stmt = select(Page).where(Page.id.in_(ids)).order_by(Page.id).with_for_update()
    return {p.id: p for p in (await s.execute(stmt)).scalars()}


async def record_page_dm(s: AsyncSession, items: list[tuple[OutboxMessage, dict[str, Any]]]) -> None:
    """In the transaction that marks `page_dm` rows sent: where each DM went, on its page row."""
    pages = await _pages_locked(s, items)
    for row, result in items:
        page = pages.get(int(row.payload["page"]))
        if page is not None:
            page.dm = {**page.dm, str(row.payload["user"]): result}


async def page_edit_effect(svc: Services, row: OutboxMessage) -> dict[str, Any] | None:
    """Edit a page DM recorded on its page row; nothing to edit when the DM was skipped or never went out."""
    p = row.payload
    async with svc.db.session() as s:
        page = await s.get(Page, int(p["page"]))
        dm = (page.dm if page is not None else {}).get(str(p["user"])) or {}
    if not dm.get("ts"):
        return {"skipped": "no DM"}
    if p.get("unless_room") and dm.get("room", True):
        return {"skipped": "names the room already"}
    await svc.chat.update(str(dm["channel"]), str(dm["ts"]), str(p.get("text", "")), p.get("blocks"))
    return {"channel": dm["channel"], "ts": dm["ts"]}


async def record_page_edit(s: AsyncSession, items: list[tuple[OutboxMessage, dict[str, Any]]]) -> None:
    """A DM edited with the war room now names it: a later war-room edit leaves it alone."""
    items = [(row, result) for row, result in items if row.payload.get("unless_room") and result.get("ts")]
    if not items:
        return
    pages = await _pages_locked(s, items)
    for row, _ in items:
        page = pages.get(int(row.payload["page"]))
        user = str(row.payload["user"])
        if page is not None and isinstance(page.dm.get(user), dict):
            page.dm = {**page.dm, user: {**page.dm[user], "room": True}}
