"""`usergroup:` in schedules.yaml: the worker keeps a Slack user group equal to whoever is on call, through the
real worker, the outbox, the Slack stand-in over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import outbox, retention
from bot.clock import ManualClock
from bot.models import OutboxMessage
from bot.oncall.config import load_oncall
from bot.oncall.worker import USERGROUP_KIND, oncall_tick
from bot.playbook import PlaybookError, Roster
from bot.states import OutboxState
from bot.worker import Worker
from sandbox.slack_standin import SlackStandin
from tests.oncall.test_oncall_e2e import start_bot
from tests.support import BotHarness
from wiring.services import build_services

# The clock starts Monday 2026-11-23 12:00 UTC: U01PRIMARY holds L1 until the 12:30 hand-off to U08SRE.
SCHEDULES = """
zone: UTC
schedules:
  primary:
    level: 1
    usergroup: S0PRIMARY
    layers:
      - {name: primary daily, users: [U01PRIMARY, U08SRE], rotation: daily, start: "2026-11-22T12:30:00+00:00"}
"""
TICKS = [oncall_tick, outbox.outbox_tick]  # the worker's on-call pass and outbox, as wired
UPDATE, LIST = "usergroups.users.update", "usergroups.users.list"


async def _tick(bot: BotHarness, worker: str = "w1") -> None:
    bot.svc._oncall_tick_at = None  # type: ignore[attr-defined]  # the on-call pass runs on every call here
    await Worker(bot.svc, worker_id=worker, extra_ticks=TICKS).tick()


async def _sync_rows(bot: BotHarness) -> list[OutboxMessage]:
    async with bot.svc.db.session() as s:
        stmt = select(OutboxMessage).where(OutboxMessage.method == USERGROUP_KIND).order_by(OutboxMessage.id)
        return list((await s.execute(stmt)).scalars())


async def test_a_handoff_updates_the_group_once_and_a_restarted_worker_does_not_send_it_again(
    tmp_path: Path, db_url: str, slack: SlackStandin, clock: ManualClock
) -> None:
    slack.add_usergroup("S0PRIMARY", "oncall-primary", ["U01PRIMARY"])
    async for bot in start_bot(tmp_path, db_url, slack, clock, SCHEDULES):
        await _tick(bot)  # 12:00: the group already says U01PRIMARY: read, not written
        assert len(slack.calls_to(LIST, ok=True)) == 1 and slack.calls_to(UPDATE) == []

        clock.advance(minutes=31)
        await _tick(bot)  # the 12:30 hand-off timer fires (and the pass computes the same stretch)
        [update] = slack.calls_to(UPDATE)
        assert update.ok and update.args["usergroup"] == "S0PRIMARY" and update.args["users"] == "U08SRE"
        assert slack.usergroup_users("S0PRIMARY") == ["U08SRE"]

        other, _ = build_services(bot.svc.settings, clock=clock)  # a restarted worker, same database
        try:
            for name in ("restarted", "again"):
                other._oncall_tick_at = None  # type: ignore[attr-defined]
                await Worker(other, worker_id=name, extra_ticks=TICKS).tick()
        finally:
            await other.aclose()
        await _tick(bot)
        assert len(slack.calls_to(UPDATE)) == 1 and len(slack.calls_to(LIST)) == 2
        assert [r.state for r in await _sync_rows(bot)] == [OutboxState.SENT, OutboxState.SENT]


async def test_a_sync_cut_off_by_a_crash_is_finished_once_by_the_next_worker(
    tmp_path: Path, db_url: str, slack: SlackStandin, clock: ManualClock
) -> None:
    slack.add_usergroup("S0PRIMARY", "oncall-primary", ["U01PRIMARY"])
    async for bot in start_bot(tmp_path, db_url, slack, clock, SCHEDULES):
        await _tick(bot)
        clock.advance(minutes=31)
        slack.fail_next(UPDATE, status=500, error="internal_error", times=3)  # the SDK retries 5xx twice
        await _tick(bot)
        [row] = [r for r in await _sync_rows(bot) if r.state != OutboxState.SENT]
        assert row.state == OutboxState.PENDING and row.last_error == "internal_error"
        assert slack.usergroup_users("S0PRIMARY") == ["U01PRIMARY"]

        other, _ = build_services(bot.svc.settings, clock=clock)  # the first worker is gone
        try:
            clock.advance(minutes=5)
            for name in ("next", "again"):
                other._oncall_tick_at = None  # type: ignore[attr-defined]
                await Worker(other, worker_id=name, extra_ticks=TICKS).tick()
        finally:
            await other.aclose()
        assert len(slack.calls_to(UPDATE, ok=True)) == 1 and slack.usergroup_users("S0PRIMARY") == ["U08SRE"]


async def test_a_group_that_already_matches_is_not_updated_at_the_handoff(
    tmp_path: Path, db_url: str, slack: SlackStandin, clock: ManualClock
) -> None:
    slack.add_usergroup("S0PRIMARY", "oncall-primary", ["U01PRIMARY"])
    async for bot in start_bot(tmp_path, db_url, slack, clock, SCHEDULES):
        await _tick(bot)
        slack.add_usergroup("S0PRIMARY", "oncall-primary", ["U08SRE"])  # someone edited it by hand already
        clock.advance(minutes=31)
        await _tick(bot)
        assert len(slack.calls_to(LIST, ok=True)) == 2 and slack.calls_to(UPDATE) == []
        rows = await _sync_rows(bot)
        assert rows[-1].state == OutboxState.SENT and rows[-1].result == {"unchanged": ["U08SRE"]}


async def test_slacks_refusal_is_logged_clearly_and_tried_again(
    tmp_path: Path, db_url: str, slack: SlackStandin, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="incident_bot.oncall")
    async for bot in start_bot(tmp_path, db_url, slack, clock, SCHEDULES):
        await _tick(bot)  # nobody made the group in Slack yet
        [refused] = slack.calls_to(LIST)
        assert refused.error == "no_such_subteam"
        assert (
            "user group sync for L1 Primary on-call (S0PRIMARY) failed: usergroups.users.list answered "
            "no_such_subteam; retrying every 10 min; check `usergroup: S0PRIMARY` in schedules.yaml"
        ) in caplog.text
        [row] = await _sync_rows(bot)
        assert row.state == OutboxState.FAILED and row.last_error == "no_such_subteam"

        clock.advance(minutes=5)
        await _tick(bot)
        assert len(slack.calls_to(LIST)) == 1  # not hammered: the retry waits 10 minutes

        slack.add_usergroup("S0PRIMARY", "oncall-primary", ["U03LEAD"])  # an admin creates it
        clock.advance(minutes=6)
        await _tick(bot)
        assert (
            "retrying the L1 Primary on-call user group sync (S0PRIMARY) after: no_such_subteam"
            in caplog.text
        )
        [update] = slack.calls_to(UPDATE)
        assert update.ok and slack.usergroup_users("S0PRIMARY") == ["U01PRIMARY"]
        [row] = await _sync_rows(bot)
        assert row.state == OutboxState.SENT and row.result == {"updated": ["U01PRIMARY"], "was": ["U03LEAD"]}


def test_usergroup_must_be_a_group_id_and_follow_one_schedule(tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(
        "schedules:\n  primary:\n    level: 1\n    usergroup: '@oncall-primary'\n    layers: []\n"
    )
    with pytest.raises(PlaybookError, match="not a Slack user group id"):
        load_oncall(path, Roster({}))
    path.write_text(
        "schedules:\n"
        "  a: {level: 1, usergroup: S0SAME, layers: [{users: [U1]}]}\n"
        "  b: {level: 2, usergroup: S0SAME, layers: [{users: [U2]}]}\n"
    )
    with pytest.raises(PlaybookError, match="one group can follow one schedule"):
        load_oncall(path, Roster({}))
    path.write_text("schedules:\n  a: {level: 1, usergroup: S0PRIMARY, layers: [{users: [U1]}]}\n")
    assert load_oncall(path, Roster({})).book.schedules["a"].usergroup == "S0PRIMARY"


ALWAYS_ON = """
schedules:
  primary:
    level: 1
    usergroup: S0PRIMARY
    layers: [{name: fixed, users: [U01PRIMARY]}]
  secondary:
    level: 2
    layers: []
"""


async def test_a_stretch_older_than_the_request_ids_retention_is_neither_resent_nor_a_crash(
    tmp_path: Path, db_url: str, slack: SlackStandin, clock: ManualClock
) -> None:
    """Processed request ids are pruned after 7 days, outbox rows after 30: a stretch (or a gap) that runs
    longer must not claim its key again and trip over its own outbox row."""
    slack.add_usergroup("S0PRIMARY", "oncall-primary", ["U03LEAD"])
    channel = slack.add_channel("oncall", members=["UBOT"]).id
    async for bot in start_bot(tmp_path, db_url, slack, clock, ALWAYS_ON, oncall_channel=channel):
        await _tick(bot)
        assert slack.usergroup_users("S0PRIMARY") == ["U01PRIMARY"]
        assert len(slack.messages[channel]) == 1  # L2 has nobody, ever: warned once
        clock.advance(days=8)
        pruned = await retention.prune(bot.svc)
        assert pruned.requests >= 2 and pruned.outbox == 0
        for _ in range(2):
            bot.svc._oncall_tick_at = None  # type: ignore[attr-defined]
            await oncall_tick(bot.svc)  # directly: the worker would log an exception and carry on
        assert len(slack.calls_to(UPDATE)) == 1 and len(slack.calls_to(LIST)) == 1
        assert len(slack.messages[channel]) == 1
