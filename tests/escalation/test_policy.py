"""The ladder as pure data: what each severity pages, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from bot.config import CONTENT_DIR
from bot.escalation.policy import LadderState, load_policy, plan
from bot.playbook import PlaybookError

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = load_policy(yaml.safe_load((CONTENT_DIR / "escalation.yaml").read_text()))


def steps(severity: str, **kw: object) -> dict[str, tuple[timedelta, str]]:
    st = LadderState(severity=severity, declared_at=T0, acknowledged=False, resolved=False, sent={})
    st = LadderState(**{**st.__dict__, **kw})  # type: ignore[arg-type]
    return {p.step: (p.due_at - T0, p.mode) for p in plan(POLICY, st)}


def m(n: float) -> timedelta:
    return timedelta(minutes=n)


def test_p0_pages_all_on_call_at_once_and_ceo_after_an_hour() -> None:
    assert steps("P0") == {
        "L1": (m(0), "dm"),
        "L2": (m(0), "dm"),
        "L3": (m(10), "dm"),
        "L4": (m(40), "dm"),
        "L5": (m(60), "dm"),
    }


def test_p1_climbs_the_ladder_without_the_ceo() -> None:
    assert steps("P1") == {"L1": (m(0), "dm"), "L2": (m(10), "dm"), "L3": (m(20), "dm"), "L4": (m(50), "dm")}


def test_p2_posts_to_on_call_in_slack_without_dm() -> None:
    assert steps("P2") == {"L1": (m(0), "channel")}


def test_p3_pages_nobody() -> None:
    assert steps("P3") == {}


def test_ack_drops_acknowledgement_steps_but_not_unresolved_ones() -> None:
    sent = {"L1": T0, "L2": T0}
    got = steps("P0", acknowledged=True, sent=sent)
    assert set(got) == {"L4", "L5"}
    assert got["L4"][0] == m(40)  # 30 min after L3 would have been due


def test_later_levels_count_from_the_actual_send_time() -> None:
    got = steps("P1", sent={"L1": T0, "L2": T0 + m(12)})  # L2 went out 2 min late
    assert got["L3"][0] == m(22)


def test_resolved_plans_nothing() -> None:
    assert steps("P0", resolved=True) == {}


def test_forced_step_is_due_now() -> None:
    got = steps("P2", forced=("L2",), now=T0 + m(3), sent={"L1": T0})
    assert got["L2"][0] == m(3)


def test_time_scale_shrinks_durations() -> None:
    fast = load_policy(yaml.safe_load((CONTENT_DIR / "escalation.yaml").read_text()), scale=1 / 60)
    st = LadderState(severity="P1", declared_at=T0, acknowledged=False, resolved=False, sent={})
    assert {p.step: p.due_at - T0 for p in plan(fast, st)}["L2"] == timedelta(seconds=10)


def test_bad_policy_is_refused() -> None:
    with pytest.raises(PlaybookError):
        load_policy({"levels": [{"level": 2, "from": "L9", "after": "10m"}]})
    with pytest.raises(PlaybookError):
        load_policy({"levels": [{"level": 1, "after": "ten minutes"}]})


def test_page_reasons_say_what_triggered_them() -> None:
    pol = POLICY
    t0 = datetime(2026, 11, 23, 12, tzinfo=UTC)
    declared = plan(pol, LadderState("P1", t0, False, False, {}))
    assert declared[0].reason == "paged at declare (P1)"
    reopened = plan(pol, LadderState("P1", t0, False, False, {}, cycle_start=t0 + timedelta(hours=2)))
    assert reopened[0].reason == "paged at reopen (P1)"
    raised = plan(
        pol, LadderState("P0", t0, False, False, {"L1": t0}, initial_reason="severity changed P1→P0")
    )
    assert raised[0].step == "L2" and raised[0].reason == "severity changed P1→P0 (P0)"
