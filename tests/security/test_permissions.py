"""Who may do what, over real HTTP: every command and button driven as an outsider, the commander of another
war room, a paged user who is not in the war room, and the commander, against the Slack stand-in and SQL.

Incident A is a P0 declared by UDECLARER (its commander; L1 U01PRIMARY is invited, L2 U02SECOND is paged by
DM but not invited). Incident B is declared by UOTHER. UOUTSIDER is in no war room and not on the roster."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.db import make_engine
from bot.models import ActionItem, Drill, Incident, Signoff, TimelineEvent
from bot.permissions import RULES, Actor, Perm, decide
from handlers import guard
from handlers.app import TABLE as COMMAND_TABLE
from handlers.parse import parse
from sandbox.slack_standin import SlackStandin
from tests.conftest import make_settings
from tests.support import BotHarness
from wiring.drill_cli import drill_main
from wiring.services import open_services

OUTSIDER, OTHER, PAGED, COMMANDER = "UOUTSIDER", "UOTHER", "U02SECOND", "UDECLARER"
ACTORS = (OUTSIDER, OTHER, PAGED, COMMANDER)
DR_ADMIN, PRODUCT_OWNER, OPS_OWNER = "U09SEC", "U04VPENG", "U05CEO"


@pytest.fixture
def settings(db_url: str, slack: SlackStandin) -> Settings:
    return make_settings(
        db_url, slack, dr_admins=DR_ADMIN, dr_product_owner=PRODUCT_OWNER, dr_ops_owner=OPS_OWNER
    )


@dataclass
class World:
    bot: BotHarness
    a: Incident
    b: Incident
    ack: tuple[str, str]  # the Acknowledge button the bot sent PAGED for A: (value, DM channel)

    async def row(self, inc: Incident) -> Incident:
        async with self.bot.svc.db.session() as s:
            got = await s.get(Incident, inc.id)
        assert got is not None
        return got

    async def refusals(self, inc: Incident, user: str) -> list[TimelineEvent]:
        return [e for e in await self.bot.events(inc.id) if e.kind == "refused" and e.actor == user]


async def make_world(bot: BotHarness) -> World:
    await bot.command("declare P0 Orders failing", user=COMMANDER)
    await bot.command("declare P2 Menu slow", user=OTHER)
    a, b = await bot.incidents()
    assert a.provision_state == b.provision_state == "ready" and a.commander == COMMANDER
    members = bot.slack.channels[a.channel_id].members
    # Everyone paged is invited to the war room; the paged person here has left it again, so they are paged
    # for A without being a member (what they may do then is the point of several rows below).
    assert PAGED in members
    members.discard(PAGED) if isinstance(members, set) else members.remove(PAGED)
    assert PAGED not in bot.slack.channels[a.channel_id].members
    assert OUTSIDER not in members and OTHER not in members
    _, url = await bot.command(
        'action add "Fix the client" <@UOTHER> 2026-12-24', user=COMMANDER, channel=a.channel_id or ""
    )
    assert "added" in bot.last_reply(url)
    return World(bot, a, b, ack_value(bot, PAGED))


async def count(bot: BotHarness, model: Any) -> int:
    async with bot.svc.db.session() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


def ack_value(bot: BotHarness, user: str) -> tuple[str, str]:
    """(value, DM channel) of the Acknowledge button the bot really sent `user`."""
    for channel, msgs in bot.slack.messages.items():
        for m in msgs:
            for b in m.blocks or []:
                for el in b.get("elements", []) if b.get("type") == "actions" else []:
                    if el.get("action_id") == "ack_incident":
                        if user in bot.slack.channels[channel].members:
                            return str(el["value"]), channel
    dms = {c: [(m.text, m.blocks) for m in ms] for c, ms in bot.slack.messages.items() if c.startswith("D")}
    raise AssertionError(f"no Acknowledge button was sent to {user}: {dms}")


Do = Callable[[World, str], Awaitable[str]]
Effect = Callable[[World], Awaitable[object]]


def slash(text: str) -> Do:
    async def do(w: World, user: str) -> str:
        _, url = await w.bot.command(text, user=user, channel=w.a.channel_id or "")
        got = w.bot.replies(url)
        return str(got[-1].get("text", "")) if got else ""

    return do


def button(action_id: str) -> Do:
    async def do(w: World, user: str) -> str:
        value, channel = w.a.id, w.a.channel_id or ""
        if action_id == "ack_incident":
            value, channel = w.ack
        before = {u for u, posts in w.bot.slack.responses.items() if posts}
        await w.bot.action(action_id, value, user=user, channel=channel)
        fresh = [p for u, p in w.bot.slack.responses.items() if p and u not in before]
        return str(fresh[-1][-1].get("text", "")) if fresh else ""

    return do


def update_form(w: World, user: str) -> Awaitable[str]:
    async def do() -> str:
        values = {
            "summary": {"value": {"type": "plain_text_input", "value": "Orders failing"}},
            "impact": {"value": {"type": "plain_text_input", "value": "All orders"}},
            "severity": {"value": {"type": "static_select", "selected_option": {"value": "P0"}}},
        }
        dm = f"D{user}"
        before = len(w.bot.slack.messages.get(dm, []))
        await w.bot.view_submission("incident_update", values, user=user, private_metadata=w.a.id)
        told = w.bot.slack.messages.get(dm, [])[before:]  # forms answer by DM when the room refuses
        return told[-1].text if told else ""

    return do()


def field(name: str) -> Effect:
    async def get(w: World) -> object:
        return getattr(await w.row(w.a), name)

    return get


async def actions_count(w: World) -> object:
    return await count(w.bot, ActionItem)


async def escalations(w: World) -> object:
    return [e.kind for e in await w.bot.events(w.a.id)].count("escalated")


async def notes(w: World) -> object:
    return [e.kind for e in await w.bot.events(w.a.id)].count("note")


async def views_opened(w: World) -> object:
    return len(w.bot.slack.calls_to("views.open", ok=True))


async def drills(w: World) -> object:
    return (await count(w.bot, Drill), await count(w.bot, Incident))


async def signoffs(w: World) -> object:
    return await count(w.bot, Signoff)


async def item_status(w: World) -> object:
    async with w.bot.svc.db.session() as s:
        return (await s.execute(select(ActionItem.status))).scalar_one()


async def recoveries(w: World) -> object:
    return [e.kind for e in await w.bot.events(w.a.id)].count("recovery")


async def nothing(w: World) -> object:
    return None


# (name, how, who may, what changes when someone may). Order of actors: refused ones go first, so the
# first allowed one is the one whose effect is checked.
TABLE: list[tuple[str, Do, set[str], Effect]] = [
    ("status", slash("status MONITORING"), {COMMANDER}, field("status")),
    ("severity", slash("severity P1"), {COMMANDER}, field("severity")),
    ("note", slash("note checked the dashboards"), {COMMANDER}, notes),
    ("update", slash("update"), {COMMANDER}, views_opened),
    ("commander", slash(f"commander <@{OTHER}>"), {COMMANDER}, field("commander")),
    ("comms", slash(f"comms <@{OTHER}>"), {COMMANDER}, field("comms_lead")),
    ("resolve", slash("resolve"), {COMMANDER}, nothing),
    ("reopen", slash("reopen"), {COMMANDER}, nothing),
    ("action add", slash(f'action add "Add a timeout" <@{OTHER}> 2026-12-24'), {COMMANDER}, actions_count),
    ("action done", slash("action done 1"), {COMMANDER}, item_status),
    ("update form", update_form, {COMMANDER}, field("impact")),
    ("run recovery button", button("run_recovery"), {COMMANDER}, recoveries),
    ("ack", slash("ack"), {PAGED, COMMANDER}, field("acknowledged_by")),
    ("escalate", slash("escalate"), {COMMANDER}, escalations),
    ("ack button", button("ack_incident"), {PAGED, COMMANDER}, field("acknowledged_by")),
    ("resolve anyway button", button("resolve_anyway"), {COMMANDER}, field("status")),
    ("drill", slash("drill fail"), set(), drills),
    ("tabletop", slash("drill tabletop"), set(), drills),
    ("dr signoff product", slash("dr signoff product"), set(), signoffs),
    ("dr signoff ops", slash("dr signoff ops"), set(), signoffs),
    ("timeline", slash("timeline"), set(ACTORS), nothing),
    ("actions", slash("actions"), set(ACTORS), nothing),
    ("dr status", slash("dr status"), set(ACTORS), nothing),
    ("declare", slash("declare P3 Something else"), set(ACTORS), nothing),
    ("pir", slash("pir"), set(ACTORS), nothing),
    ("check", slash("check"), set(ACTORS), nothing),
    ("stats", slash("stats"), set(ACTORS), nothing),
    ("playbook", slash("playbook"), set(ACTORS), nothing),
    ("help", slash("help"), set(ACTORS), nothing),
]


@pytest.mark.parametrize(("name", "do", "allowed", "effect"), TABLE, ids=[t[0] for t in TABLE])
async def test_who_may_do_what(bot: BotHarness, name: str, do: Do, allowed: set[str], effect: Effect) -> None:
    w = await make_world(bot)
    first_allowed = True
    for user in ACTORS:
        before = await effect(w)
        b_before = await w.row(w.b)
        calls_before = len(bot.slack.calls)
        answer = await do(w, user)
        after = await effect(w)
        refused = await w.refusals(w.a, user)
        if user in allowed:
            assert not answer.startswith("🛑"), (name, user, answer)
            assert not refused, (name, user, [e.text for e in refused])
            if first_allowed and effect is not nothing:
                assert after != before, (name, user, "allowed, but nothing happened", answer)
            first_allowed = False
        else:
            assert answer.startswith("🛑 Only "), (name, user, answer)
            assert after == before, (name, user, "refused, yet it changed", before, after)
            if effect not in (drills, signoffs):  # those have no incident: the refusal is in the log
                assert len(refused) == 1, (name, user)
                assert refused[0].data["perm"] in {str(p) for p in Perm}
            # A refusal posts nothing anywhere: besides the members lookup, only the answer to the person
            # (a form's answer goes ephemerally or by DM, as forms have no response_url).
            answer_calls = {"conversations.members", "chat.postEphemeral", "conversations.open"}
            new = [
                (c.method, c.args.get("channel"))
                for c in bot.slack.calls[calls_before:]
                if c.method not in answer_calls
                and not (c.method == "chat.postMessage" and str(c.args.get("channel")) == f"D{user}")
            ]
            assert new == [], (name, user, new)
        assert (await w.row(w.b)).status == b_before.status  # nothing ever touches the other incident


async def test_refusals_say_who_may(bot: BotHarness) -> None:
    w = await make_world(bot)
    assert "members of the war room" in await slash("status MONITORING")(w, OUTSIDER)
    assert "paged for it, the on-call roster and the commander" in await slash("ack")(w, OTHER)
    assert "the commander and the roster's level 3" in await button("resolve_anyway")(w, PAGED)
    assert "DR admins" in await slash("drill fail")(w, COMMANDER)
    assert "operations owner" in await slash("dr signoff ops")(w, PRODUCT_OWNER)


async def test_membership_check_fails_closed_when_slack_rate_limits(bot: BotHarness) -> None:
    w = await make_world(bot)
    bot.slack.fail_next("conversations.members", status=429, error="ratelimited", retry_after=0, times=10)
    answer = await slash("status MONITORING")(w, OUTSIDER)
    assert "try again" in answer and (await w.row(w.a)).status == w.a.status
    assert bot.slack.calls_to("conversations.members", ok=False)
    [refused] = await w.refusals(w.a, OUTSIDER)
    assert refused.data["retry"] is True
    bot.slack.clear_faults()
    # The commander's own change goes through once Slack answers again.
    assert not (await slash("status MONITORING")(w, COMMANDER)).startswith("🛑")
    assert (await w.row(w.a)).status == "MONITORING"


async def test_buttons_are_bound_to_their_incident(bot: BotHarness) -> None:
    w = await make_world(bot)
    # Resolve anyway for A pressed in B's war room (by B's commander): nothing happens to A or B.
    await bot.action("resolve_anyway", w.a.id, user=OTHER, channel=w.b.channel_id or "")
    # A hand-edited value pointing at B, pressed in A's war room by A's commander: nothing happens to B.
    await bot.action("resolve_anyway", w.b.id, user=COMMANDER, channel=w.a.channel_id or "")
    assert (await w.row(w.a)).status != "RESOLVED" and (await w.row(w.b)).status != "RESOLVED"
    # A's Acknowledge button pressed in B's war room acts on A (whoever presses may ack A), never on B.
    await bot.action("ack_incident", w.ack[0], user=PAGED, channel=w.b.channel_id or "")
    assert (await w.row(w.a)).acknowledged_by == PAGED
    assert (await w.row(w.b)).acknowledged_by is None
    # The same button with B's id, pressed by someone neither paged for B, on the roster, nor its commander.
    await bot.action("ack_incident", w.b.id, user=OUTSIDER, channel=w.a.channel_id or "")
    assert (await w.row(w.b)).acknowledged_by is None
    assert await w.refusals(w.b, OUTSIDER)


async def test_dr_roles_come_from_the_settings(bot: BotHarness) -> None:
    w = await make_world(bot)
    _, url = await bot.command("dr signoff product", user=PRODUCT_OWNER)
    assert "Recorded" in bot.last_reply(url)
    _, url = await bot.command("dr signoff ops", user=OPS_OWNER)
    assert "Recorded" in bot.last_reply(url)
    assert await signoffs(w) == 2
    # A DR admin gets past the permission check (the drill then needs a healthy Factory, absent here).
    _, url = await bot.command("drill fail", user=DR_ADMIN)
    assert "Only" not in bot.last_reply(url) and "does not answer" in bot.last_reply(url)
    assert await count(bot, Drill) == 0


@pytest.mark.parametrize("perm", list(Perm))
def test_every_rule_says_who_and_membership_rules_fail_closed(perm: Perm) -> None:
    rule = RULES[perm]
    assert rule.who
    unknown = decide(perm, Actor("U1", member=None, commander=True, roster_levels=frozenset({5})))
    if rule.needs_membership:
        assert not unknown.allowed and unknown.retry and "try again" in unknown.message("do it")
    nobody = decide(perm, Actor("U1"))
    assert nobody.allowed == (perm in (Perm.ANYONE, Perm.READ))
    if not nobody.allowed:
        assert rule.who in nobody.message("do it")


async def test_cli_drill_against_a_real_factory_needs_the_explicit_flag(
    db_url: str, slack: SlackStandin, servers: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--target factory`: treat FACTORY_URL as the real Factory (as detection does for one without /_sim).
    settings = make_settings(db_url, slack, factory_url=servers.factory_url)
    code = await asyncio.to_thread(
        drill_main, ["throttle", "--target", "factory"], open_services, settings=settings
    )
    err = capsys.readouterr().err
    assert code == 1 and "--allow-real-factory" in err
    assert not servers.sim.state()["chaos"]  # the vendor chaos PUT was never sent
    engine = make_engine(db_url)
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(Drill))).scalar_one() == 0
        assert (await conn.execute(select(func.count()).select_from(Incident))).scalar_one() == 0
    await engine.dispose()


async def test_tabletop_steps_are_answered_by_the_channel_running_it(bot: BotHarness) -> None:
    room = bot.slack.add_channel("dr-tabletop", members=["UBOT", DR_ADMIN, COMMANDER]).id
    _, url = await bot.command("drill tabletop", user=COMMANDER, channel=room)
    assert bot.last_reply(url).startswith("🛑 Only the DR admins")
    _, url = await bot.command("drill tabletop", user=DR_ADMIN, channel=room)
    assert "Tabletop started" in bot.last_reply(url)
    [step] = [m for m in bot.slack.messages[room] if m.text.startswith("Tabletop step 1/")]
    [done] = [e for b in step.blocks or [] if b["type"] == "actions" for e in b["elements"][:1]]

    async def first_step() -> dict[str, Any]:
        async with bot.svc.db.session() as s:
            [drill] = (await s.execute(select(Drill))).scalars()
        return dict(drill.report["steps"][0])

    for user in (OUTSIDER, OTHER, PAGED):
        await bot.action("tabletop_done", done["value"], user=user, channel=room)
    await bot.action("tabletop_done", done["value"], user=COMMANDER, channel=w_channel(bot))
    assert (await first_step()).get("outcome") is None
    await bot.action("tabletop_done", done["value"], user=COMMANDER, channel=room)
    assert (await first_step()).get("by") == COMMANDER


def w_channel(bot: BotHarness) -> str:
    """Some other channel the bot is in."""
    return bot.slack.add_channel("elsewhere", members=["UBOT", COMMANDER]).id


# -- the command table's permission column says what the handlers enforce ---------------------------------

# Each row of handlers/table.py, typed in A's war room (several texts when the arguments decide the Perm).
# A command added to the table needs a line here: its column is checked against its handler below.
SAMPLES: dict[str, tuple[str, ...]] = {
    "help": ("help",),
    "declare": ("declare P3 Something else",),
    "declare_modal": ("declare",),
    "ack": ("ack", "acknowledge"),
    "escalate": ("escalate",),
    "update": ("update",),
    "status": ("status MONITORING",),
    "severity": ("severity P1",),
    "commander": (f"commander <@{OTHER}>",),
    "comms": (f"comms <@{OTHER}>",),
    "note": ("note checked the dashboards",),
    "timeline": ("timeline",),
    "check": ("check",),
    "action_add": (f'action add "Add a timeout" <@{OTHER}> 2026-12-24',),
    "action_done": ("action done 1",),
    "actions": ("actions",),
    "pir": ("pir",),
    "stats": ("stats",),
    "playbook": ("playbook",),
    "drill": ("drill fail", "drill tabletop"),
    "dr_status": ("dr status",),
    "dr_signoff": ("dr signoff product", "dr signoff ops"),
    "resolve": ("resolve",),
    "reopen": ("reopen",),
    "pir_done": ("pir done",),
    "list": ("list", "list recent"),
    "alerts": ("alerts",),
    "statuspage": ("statuspage",),
    "oncall": ("oncall", "oncall 1"),
    "oncall_override": (f"oncall override <@{OTHER}> 1 now 8h",),
    "oncall_override_modal": ("oncall override",),
    "oncall_overrides": ("oncall overrides",),
    "oncall_remove": ("oncall remove 1",),
    "oncall_take": ("oncall take 1",),
    "oncall_give": (f"oncall give <@{OTHER}> 1",),
    "oncall_swap": (f"oncall swap <@{OTHER}> 1",),
}


async def test_the_command_tables_permission_is_what_each_handler_requires(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert set(SAMPLES) == set(COMMAND_TABLE), "add a sample for each command table row (or drop a stale one)"
    checked: list[Perm] = []
    real_check = guard.check

    async def spy(svc: Any, user: str, perm: Perm, *args: Any) -> Any:
        checked.append(perm)
        return await real_check(svc, user, perm, *args)

    monkeypatch.setattr(guard, "check", spy)
    w = await make_world(bot)
    disagree = []
    for name, texts in SAMPLES.items():
        for text in texts:
            cmd = parse(text)
            assert cmd.name == name, (name, text)
            expected = COMMAND_TABLE[name].permission_for(cmd)
            checked.clear()
            for user in (OUTSIDER, COMMANDER):  # refused at the check, and allowed past it (all checks seen)
                await slash(text)(w, user)
            seen = set(checked)
            if expected in (Perm.ANYONE, Perm.READ):
                ok = seen <= {expected}  # nothing to check: anyone may
            else:
                ok = seen == {expected}
            if not ok:
                disagree.append(f"{text!r}: the table says {expected}, the handler checked {sorted(seen)}")
    assert not disagree, "\n".join(disagree)
