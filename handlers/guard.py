"""The one enforcement point of bot/permissions.py: gathers the facts about the person (war-room
membership from Slack, pages, the roster, the settings), asks the policy, and on a refusal records it on the
incident's timeline and raises the answer the person sees (an ephemeral "only … may …").

Every handler that changes something calls `require` before its flow; nothing else decides who may."""

from __future__ import annotations

import logging

from bot import incident_store as service
from bot.context import Services
from bot.dr.tabletop import tabletop_channel
from bot.event_text import Line, Person
from bot.models import Incident
from bot.permissions import RULES, Actor, Decision, Perm, decide
from bot.ports import ChatError
from handlers.parse import UsageError

log = logging.getLogger("incident_bot.guard")

WHAT = {
    Perm.CHANGE: "change {inc}",
    Perm.ACK: "acknowledge {inc}",
    Perm.ESCALATE: "escalate {inc}",
    Perm.REASSIGN: "assign roles on {inc}",
    Perm.RESOLVE_ANYWAY: "resolve {inc} without the criteria",
    Perm.TABLETOP: "answer this tabletop",
    Perm.DRILL: "start a DR drill",
    Perm.FACTORY: "change the Factory",
    Perm.SIGNOFF_PRODUCT: "sign off the DR plan for product",
    Perm.SIGNOFF_OPS: "sign off the DR plan for operations",
}


class Refused(UsageError):
    """A permission refusal: answered like a usage error (ephemeral), and already on the timeline."""

    def __init__(self, message: str, decision: Decision) -> None:
        super().__init__(message)
        self.decision = decision


async def actor_facts(
    svc: Services, user: str, perm: Perm, inc: Incident | None, channel: str | None = None
) -> Actor:
    """Only the facts `perm` needs: a Slack round trip for membership (of the incident's war room, or of
    `channel` when there is no incident), a query for pages."""
    settings, roster = svc.settings, svc.playbook.roster
    member: bool | None = False
    room = inc.channel_id if inc is not None else channel
    if RULES[perm].needs_membership and room:
        try:
            member = user in await svc.chat.members(room)
        except ChatError as exc:
            log.warning("membership of %s unknown (%s): refusing %s", room, exc.error, perm)
            member = None  # fail closed: the rule refuses with "try again"
    paged = False
    if perm is Perm.ACK and inc is not None:
        paged = await service.was_paged(svc.db, inc.id, user)
    return Actor(
        user=user,
        member=member,
        paged=paged,
        commander=inc is not None and bool(inc.commander) and inc.commander == user,
        roster_levels=frozenset(lv for lv in roster.levels if user in roster.users(lv)),
        dr_admin=user in settings.dr_admin_ids(),
        product_owner=bool(user) and user == settings.dr_product_owner.strip(),
        ops_owner=bool(user) and user == settings.dr_ops_owner.strip(),
    )


async def check(
    svc: Services, user: str, perm: Perm, inc: Incident | None = None, channel: str | None = None
) -> Decision:
    return decide(perm, await actor_facts(svc, user, perm, inc, channel))


async def require(
    svc: Services, user: str, perm: Perm, inc: Incident | None = None, channel: str | None = None
) -> None:
    """Allowed, or raise Refused (the answer) after recording the refusal on the incident's timeline."""
    decision = await check(svc, user, perm, inc, channel)
    if decision.allowed:
        return
    what = WHAT.get(perm, str(perm)).format(inc=inc.id if inc is not None else "this")
    room = inc.channel_id if inc is not None else channel
    message = decision.message(what, f"<#{room}>" if room else "it")
    await record_refusal(svc, user, decision, what, inc)
    raise Refused(message, decision)


async def record_refusal(
    svc: Services, user: str, decision: Decision, what: str, inc: Incident | None
) -> None:
    log.info("refused %s to %s: %s", decision.perm, user, "try again" if decision.retry else decision.who)
    if inc is None:
        return
    why = "could not check membership" if decision.retry else f"only {decision.who}"
    now = svc.clock.now()
    await service.record_event(
        svc.db,
        inc.id,
        "refused",
        Line("Refused: ", Person(user), f" tried to {what} ({why})"),
        at=now,
        actor=user,
        data={"perm": str(decision.perm), "user": user, "retry": decision.retry, "who": decision.who},
        # One row per person, permission and minute: someone hammering a command cannot flood the
        # timeline (or the PIR) with refusals.
        dedupe_key=f"{inc.id}:refused:{user[:32]}:{decision.perm}:{now:%Y%m%d%H%M}",
    )


async def button_incident(svc: Services, incident_id: str, pressed_in: str) -> Incident:
    """The incident a war-room button acts on. The value is bound to the channel the button lives in: a
    button (or a hand-edited value) for incident A pressed in B's war room, or anywhere else, does nothing."""
    inc = await service.load(svc.db, incident_id[:40])
    if inc is None or not inc.channel_id:
        raise UsageError("That incident no longer exists.")
    if pressed_in != inc.channel_id:
        raise UsageError(
            f"That button belongs to {inc.id}'s war room (<#{inc.channel_id}>); nothing was changed."
        )
    return inc


async def button_tabletop(svc: Services, drill_id: int, pressed_in: str) -> str:
    """The room of the tabletop a step's button answers: bound to the channel the tabletop runs in."""
    room = await tabletop_channel(svc, drill_id)
    if not room:
        raise UsageError("That tabletop no longer exists.")
    if pressed_in != room:
        raise UsageError(f"That button belongs to the tabletop in <#{room}>; nothing was recorded.")
    return room
