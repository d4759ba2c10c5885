"""`open_services(settings)`: the Services every process runs on, with every kind registered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bot import outbox, retention
from bot.alerts.flows import alerts_tick
from bot.alerts.flows import resolve_objection as alerts_objection
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.context import Services
from bot.db import Database
from bot.dispatch import Dispatch
from bot.dr.drill import finish_drill_if_any
from bot.escalation.flows import fire_page, fire_pages, fire_reminder
from bot.escalation.page_dm import (
    PAGE_DM,
    PAGE_EDIT,
    load_page_dms,
    page_dm_effect,
    page_edit_effect,
    record_page_dm,
    record_page_edit,
)
from bot.health.gate import resolve_objection
from bot.health.monitor import monitor_tick
from bot.incidents import closing
from bot.incidents.flows import provision_effect, template_effect
from bot.incidents.lifecycle import invite_effect
from bot.metrics import Metrics
from bot.oncall.worker import KIND as ONCALL_HANDOFF
from bot.oncall.worker import USERGROUP_KIND, fire_handoff, oncall_tick, usergroup_effect
from bot.pir.flows import fire_pir_reminder
from bot.ports import ChatPort
from bot.statuspage.deliver import atlassian_effect, webhook_effect
from bot.statuspage.publish import fire_status_reminder
from handlers.rate_gate import RateGate, sql_store
from handlers.renderer import SlackRenderer
from handlers.slack_chat import SlackChat, make_client, make_session


def register_kinds(d: Dispatch) -> Dispatch:
    """Everything the worker and the outbox can run. A new timer kind or effect is one line here."""
    d.timer("page", fire_page, batch=fire_pages)
    d.timer("reminder", fire_reminder)
    d.timer("pir_reminder", fire_pir_reminder)
    d.timer("status_reminder", fire_status_reminder)
    d.timer(ONCALL_HANDOFF, fire_handoff)
    d.effect("provision", provision_effect)
    d.effect("template", template_effect)
    d.effect("post", outbox.post_effect)
    d.effect("status_webhook", webhook_effect)
    d.effect("status_atlassian", atlassian_effect)
    d.timer("archive_war_room", closing.fire_archive)
    d.effect("bookmark", outbox.bookmark_effect)
    d.effect("archive", outbox.archive_effect)
    d.effect("update", outbox.update_effect)
    d.effect("reminder", outbox.reminder_effect)
    d.effect("invite", invite_effect)
    d.effect(PAGE_DM, page_dm_effect, on_sent=record_page_dm, label="send the page DM", prepare=load_page_dms)
    d.effect(PAGE_EDIT, page_edit_effect, on_sent=record_page_edit, label="edit the page DM")
    d.effect(USERGROUP_KIND, usergroup_effect)  # schedules.yaml `usergroup:` (bot/oncall/worker.py)
    d.tick(monitor_tick)
    d.tick(alerts_tick)  # webhook notifications a dead or busy process left (bot/alerts)
    d.tick(oncall_tick)  # before the outbox: its hand-off and gap lines go out on the same pass
    d.tick(outbox.outbox_tick)
    d.tick(retention.RetentionTick())

    async def drill_owns_recovery(svc: Services, incident_id: str) -> bool:
        return await finish_drill_if_any(svc, incident_id) is not None

    async def drill_resolved(svc: Services, incident_id: str, user: str) -> None:
        await finish_drill_if_any(
            svc, incident_id, user
        )  # resolving a drill incident finishes (and reports) it

    d.recovery_hooks.append(drill_owns_recovery)
    d.resolve_gates.append(resolve_objection)  # the monitor's health gate (bot.health.gate)
    d.resolve_gates.append(alerts_objection)  # no alert of the incident still firing (bot.alerts)
    d.resolved_hooks.append(drill_resolved)
    return d


class Opened(NamedTuple):
    """The Services, and the Slack client Bolt needs (serve, Socket Mode). A tuple, so code written for the
    old `svc, client = build_services(...)` still unpacks it."""

    svc: Services
    client: AsyncWebClient


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    chat: ChatPort | None = None,
    session: aiohttp.ClientSession | None = None,
) -> Opened:
    metrics = Metrics()
    client = make_client(
        settings.secret("slack_bot_token") or "xoxb-missing", settings.slack_api_url, settings.slack_timeout
    )
    if session is not None:
        client.session = session
    db = Database(settings.database_url)
    # One rate gate per process, shared by every caller; 429 pauses are shared with other processes in SQL.
    gate = RateGate(scale=settings.slack_rate_scale, store=sql_store(db))
    svc = Services(
        settings=settings,
        db=db,
        clock=clock or SystemClock(),
        playbook=Services.load_playbook(settings),
        chat=chat or SlackChat(client, metrics, settings.response_url_allowed, gate),
        render=SlackRenderer(),
        metrics=metrics,
        dispatch=register_kinds(Dispatch()),
    )
    return Opened(svc, client)


@asynccontextmanager
async def open_wired(
    settings: Settings,
    *,
    clock: Clock | None = None,
    chat: ChatPort | None = None,
    session: aiohttp.ClientSession | None = None,
) -> AsyncIterator[Opened]:
    """Services plus the Slack client, closed on exit (tasks drained, database disposed). A session passed in
    stays the caller's (several Services may share one); otherwise one pooled HTTP session is opened here."""
    own = session is None
    http = session or make_session(settings.slack_timeout)
    opened = build_services(settings, clock=clock, chat=chat, session=http)
    try:
        yield opened
    finally:
        try:
            await opened.svc.tasks.drain(timeout=10)
        except TimeoutError:
            await opened.svc.tasks.cancel_all()
        await opened.svc.aclose()
        if own:
            await http.close()


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    chat: ChatPort | None = None,
    session: aiohttp.ClientSession | None = None,
) -> AsyncIterator[Services]:
    """`async with open_services(settings) as svc:` everything a process needs, released on exit."""
    async with open_wired(settings, clock=clock, chat=chat, session=session) as opened:
        yield opened.svc
