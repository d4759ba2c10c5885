"""Who may do what, as data. Pure: the facts about the person are gathered by handlers/guard.py (the one
enforcement point), this module only decides, and says who may when the answer is no.

A `Perm` value is the name of a permission; the command table's `permission` column uses these names.
Checks fail closed: when a fact could not be established (Slack did not answer `conversations.members`),
the answer is "no, try again", never "yes".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class Perm(StrEnum):
    ANYONE = "anyone"  # declare, help, playbook, stats, dr status, check outside a war room
    READ = "read"  # timeline, actions, pir: anyone in the channel may read
    CHANGE = "change"  # status, severity, update, note, resolve, reopen, action items, recovery
    ACK = "ack"
    ESCALATE = "escalate"
    REASSIGN = "reassign"  # commander, comms
    RESOLVE_ANYWAY = "resolve_anyway"
    DRILL = "drill"  # start a drill or a tabletop
    TABLETOP = "tabletop"  # answer a tabletop step (Done / Blocked)
    FACTORY = "factory"  # change the Factory (chaos) from Slack or the CLI
    SIGNOFF_PRODUCT = "signoff_product"
    SIGNOFF_OPS = "signoff_ops"


@dataclass(frozen=True)
class Actor:
    """Facts about one person, relative to one incident (when there is one).

    `member` is None when Slack could not tell us (an error): rules that need it then refuse."""

    user: str
    member: bool | None = False
    paged: bool = False
    commander: bool = False
    roster_levels: frozenset[int] = field(default_factory=frozenset)
    dr_admin: bool = False
    product_owner: bool = False
    ops_owner: bool = False


@dataclass(frozen=True)
class Decision:
    allowed: bool
    perm: Perm
    who: str  # who may do it, in words, for the refusal
    reason: str = ""  # why this person may not (empty when allowed)
    retry: bool = False  # refused because a fact could not be checked: try again

    def message(self, what: str, where: str = "the war room") -> str:
        """The refusal as the person reads it; `where` names the war room (a channel link)."""
        if self.allowed:
            return ""
        if self.retry:
            return f"🛑 Could not check who may {what} ({self.reason}). Nothing was changed; try again in a moment."
        return f"🛑 Only {self.who} may {what}. {self.reason.format(where=where)}".rstrip()


@dataclass(frozen=True)
class Rule:
    who: str
    test: Callable[[Actor], bool]
    needs_membership: bool = False


def _member(a: Actor) -> bool:
    return a.member is True


RULES: dict[Perm, Rule] = {
    Perm.ANYONE: Rule("anyone in the workspace", lambda a: True),
    Perm.READ: Rule("anyone in the workspace", lambda a: True),
    Perm.CHANGE: Rule("members of the war room", _member, needs_membership=True),
    Perm.ACK: Rule(
        "the people paged for it, the on-call roster and the commander",
        lambda a: a.paged or a.commander or bool(a.roster_levels),
    ),
    Perm.ESCALATE: Rule("members of the war room", _member, needs_membership=True),
    Perm.REASSIGN: Rule("members of the war room", _member, needs_membership=True),
    Perm.RESOLVE_ANYWAY: Rule(
        "the commander and the roster's level 3 and above (lead, VP, CEO)",
        lambda a: a.commander or any(level >= 3 for level in a.roster_levels),
    ),
    Perm.TABLETOP: Rule("members of the channel running the tabletop", _member, needs_membership=True),
    Perm.DRILL: Rule("the DR admins (DR_ADMINS)", lambda a: a.dr_admin),
    Perm.FACTORY: Rule("the DR admins (DR_ADMINS)", lambda a: a.dr_admin),
    Perm.SIGNOFF_PRODUCT: Rule("the product owner (DR_PRODUCT_OWNER)", lambda a: a.product_owner),
    Perm.SIGNOFF_OPS: Rule("the operations owner (DR_OPS_OWNER)", lambda a: a.ops_owner),
}


def decide(perm: Perm, actor: Actor) -> Decision:
    rule = RULES[perm]
    if rule.needs_membership and actor.member is None:
        return Decision(False, perm, rule.who, "Slack did not say who is in the war room", retry=True)
    if not rule.test(actor):
        return Decision(False, perm, rule.who, _why_not(perm, actor))
    return Decision(True, perm, rule.who)


def real_factory_refusal(*, allowed: bool, via: str) -> str | None:
    """A drill (or any chaos) aimed at a Factory that is not the sandbox's simulator: only with consent,
    DRILLS_ALLOW_REAL_FACTORY in Slack, `--allow-real-factory` on the command line. None = go ahead."""
    if allowed:
        return None
    if via == "cli":
        return (
            "FACTORY_URL is not the simulated Factory: this would start real chaos there. "
            "Pass --allow-real-factory to mean it."
        )
    return (
        "FACTORY_URL is not the simulated Factory, and drills against the real Factory are off "
        "(DRILLS_ALLOW_REAL_FACTORY)."
    )


def _why_not(perm: Perm, a: Actor) -> str:
    if RULES[perm].needs_membership:
        return "Join {where} first."
    return ""


def signoff_perm(role: str) -> Perm:
    return Perm.SIGNOFF_PRODUCT if role == "product" else Perm.SIGNOFF_OPS


# -- button values bound to their incident ------------------------------------------------------------------
# A button carries the incident it acts on. The value is signed with the server secret together with the
# action, so a value edited to point at another incident (or moved to another button) is refused.

SIG_LEN = 16


def bind(secret: bytes, action_id: str, value: str) -> str:
    return f"{value}.{_sig(secret, action_id, value)}"


def unbind(secret: bytes, action_id: str, signed: str) -> str | None:
    """The value a bound button carries, or None if it was not signed by us for this action."""
    value, dot, sig = signed.rpartition(".")
    if not dot or not value or len(sig) != SIG_LEN:
        return None
    return value if hmac.compare_digest(sig, _sig(secret, action_id, value)) else None


def _sig(secret: bytes, action_id: str, value: str) -> str:
    return hmac.new(secret, f"{action_id}\0{value}".encode(), hashlib.sha256).hexdigest()[:SIG_LEN]
