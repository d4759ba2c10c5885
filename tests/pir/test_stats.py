"""Incident metrics on a seeded set of incidents with known answers (pure, from SQL, and from the CLI)."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import ManualClock
from bot.config import CONTENT_DIR
from bot.db import Database
from bot.models import Incident, Page
from bot.pir import flows
from bot.pir.metrics import Stats, Times, compute_stats, covered, fmt_duration, mean
from bot.pir.render import render_stats_markdown, stats_dict
from bot.playbook import Playbook, load_severities

BOOK = load_severities(CONTENT_DIR / "severities.yaml")
FILES = ("severities.yaml", "oncall.example.yaml", "routing.yaml", "escalation.yaml")
END = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # the ManualClock's start: "now"
M = timedelta(minutes=1)


def day(n: float) -> datetime:
    return END - timedelta(days=n)


# (id, severity, declared, detected before, ack after, resolved after, escalated, drill)
SEEDED: list[tuple[str, str, datetime, timedelta, timedelta | None, timedelta | None, bool, bool]] = [
    ("INC-A", "P0", day(25), 2 * M, 3 * M, 10 * M, False, False),
    ("INC-B", "P0", day(20), 6 * M, 5 * M, 20 * M, True, False),  # MTTA exactly at the target: missed
    ("INC-C", "P1", day(15), 0 * M, 10 * M, 50 * M, False, False),
    ("INC-D", "P2", day(10), 1 * M, None, 180 * M, False, False),  # never acknowledged
    ("INC-E", "P3", day(1), 0 * M, 60 * M, None, False, False),  # still open: down until now
    ("INC-F", "P1", day(5), 0 * M, 1 * M, 5 * M, True, True),  # a drill: not counted
    ("INC-G", "P1", day(40), 0 * M, 1 * M, 30 * M, False, False),  # previous period
    ("INC-H", "P1", day(50), 0 * M, 1 * M, 30 * M, True, False),  # previous period
    ("INC-I", "P0", day(70), 0 * M, 1 * M, 30 * M, False, False),  # before both periods
]


def times() -> list[Times]:
    return [
        Times(sev, dec, dec - det, dec + ack if ack else None, None, dec + res if res else None, esc)
        for _id, sev, dec, det, ack, res, esc, drill in SEEDED
        if not drill
    ]


def check_known_answers(st: Stats) -> None:
    assert (st.total, st.open) == (5, 1)
    assert {k: v.count for k, v in st.by_severity.items()} == {"P0": 2, "P1": 1, "P2": 1, "P3": 1}
    p0 = {m.name: m for m in st.by_severity["P0"].measures}
    assert (p0["MTTD"].value, p0["MTTD"].verdict) == (4 * M, "met")  # (2 + 6) / 2 < 5 min
    assert (p0["MTTA"].value, p0["MTTA"].verdict) == (4 * M, "met")  # (3 + 5) / 2 < 5 min
    assert (p0["MTTR"].value, p0["MTTR"].verdict) == (15 * M, "missed")  # (10 + 20) / 2 is not < 15 min
    p1 = {m.name: m for m in st.by_severity["P1"].measures}
    assert [(m.value, m.verdict) for m in p1.values()] == [(0 * M, "met"), (10 * M, "met"), (50 * M, "met")]
    p2 = {m.name: m for m in st.by_severity["P2"].measures}
    assert (p2["MTTD"].value, p2["MTTD"].verdict) == (1 * M, "no target")  # MTTD target is for P0/P1
    assert (p2["MTTA"].value, p2["MTTA"].verdict) == (None, "pending")
    assert (p2["MTTR"].value, p2["MTTR"].verdict) == (180 * M, "met")  # < 4 h
    p3 = {m.name: m for m in st.by_severity["P3"].measures}
    assert (p3["MTTA"].verdict, p3["MTTR"].value, p3["MTTR"].verdict) == ("met", None, "no target")
    overall = {m.name: m.value for m in st.overall}
    assert overall == {"MTTD": timedelta(seconds=108), "MTTA": 78 * M / 4, "MTTR": 65 * M}
    assert (st.escalated, st.escalation_rate, st.escalation_met) == (1, 0.2, False)  # 20 % vs < 10 %
    # Downtime 10 + 20 + 50 + 180 min + the open P3's last 24 h = 1,700 min of 43,200.
    assert st.downtime == 1700 * M and st.uptime == 41500 * M
    assert st.mttf == 8300 * M and fmt_duration(st.mttf, units=3) == "5 d 18 h 20 min"
    assert (st.previous_total, st.previous_mttf) == (2, (43200 - 60) * M / 2)
    assert st.mttf_trend == "down"  # more downtime per incident than the 30 days before


def test_known_answers_pure() -> None:
    st = compute_stats(times(), END - timedelta(days=30), END, BOOK, previous=times())
    check_known_answers(st)
    text = render_stats_markdown(st, 30)
    assert "Incidents: 5 (P0 2 · P1 1 · P2 1 · P3 1), 1 still open." in text
    assert "| P0 | 2 | 4 min ✅ (< 5 min) | 4 min ✅ (< 5 min) | 15 min ❌ (< 15 min) |" in text
    assert "20.0 % (1 of 5 escalated beyond their first page), target < 10 % ❌ missed" in text
    assert stats_dict(st)["mttf_seconds"] == 8300 * 60


def test_no_incidents_means_no_failure() -> None:
    st = compute_stats([], END - timedelta(days=7), END, BOOK, previous=[])
    assert (st.total, st.escalation_rate, st.escalation_met, st.mttf) == (0, None, None, None)
    assert st.uptime == timedelta(days=7) and st.mttf_trend == "flat"
    assert "no incidents" in render_stats_markdown(st, 7)


def test_overlapping_incidents_are_one_outage() -> None:
    a = (END, END + 10 * M)
    assert covered([a, (END + 5 * M, END + 20 * M), (END + 30 * M, END + 31 * M)]) == 21 * M
    assert covered([(END + M, END)]) == timedelta(0)
    assert mean([None, M, 3 * M]) == 2 * M and mean([None]) is None


async def seed(db: Database) -> None:
    async with db.session() as s:
        for inc_id, sev, dec, det, ack, res, esc, drill in SEEDED:
            s.add(
                Incident(
                    id=inc_id, severity=sev, status="RESOLVED" if res else "INVESTIGATING", summary=inc_id,
                    declared_by="UDECLARER", declared_at=dec, detected_at=dec - det, updated_at=dec,
                    acknowledged_at=dec + ack if ack else None, resolved_at=dec + res if res else None,
                    is_drill=drill,
                )
            )  # fmt: skip
            await s.flush()
            s.add(Page(incident_id=inc_id, step="L1", level=1, users={}, due_at=dec, state="sent"))
            if sev == "P0":  # a P0 pages L1 and L2 at once: that L2 is the plan, not an escalation
                s.add(Page(incident_id=inc_id, step="L2", level=2, users={}, due_at=dec, state="sent"))
            if esc:
                top = 3 if sev == "P0" else 2
                s.add(
                    Page(
                        incident_id=inc_id, step=f"L{top}", level=top, users={}, due_at=dec + 10 * M,
                        state="sent",
                    )
                )  # fmt: skip


class _Deps:
    """What the stats flow reads (bot.pir.data.ReadDeps), without an app around it."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.clock = ManualClock(END)
        self.playbook = Playbook.load(*(CONTENT_DIR / f for f in FILES))


async def test_known_answers_from_sql(db_url: str) -> None:
    deps = _Deps(db_url)
    try:
        await seed(deps.db)
        check_known_answers(await flows.stats(deps, 30))
        week = await flows.stats(deps, 7)
        assert (week.total, week.by_severity["P3"].count, week.previous_total) == (1, 1, 1)  # E; F is a drill
    finally:
        await deps.db.dispose()


def test_cli_stats(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from bot.config import get_settings
    from bot.pir import cli

    path = tmp_path / "stats.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"

    async def run_seed() -> None:
        db = Database(url)
        await seed(db)
        await db.dispose()

    asyncio.run(run_seed())
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setattr(cli, "SystemClock", lambda: ManualClock(END))
    get_settings.cache_clear()
    try:
        assert cli.stats_main(["--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert (data["total"], data["escalation_rate"], data["mttf_seconds"]) == (5, 0.2, 8300 * 60)
        assert data["by_severity"]["P0"]["MTTR"] == {"seconds": 900.0, "target": 900.0, "verdict": "missed"}
        assert cli.stats_main(["7d"]) == 0
        assert "Incident metrics: last 7 days" in capsys.readouterr().out
        assert cli.stats_main(["0d"]) == 2 and cli.stats_main(["soon"]) == 2
    finally:
        get_settings.cache_clear()


async def test_initial_l2_of_a_p0_is_not_an_escalation(db_url: str) -> None:
    deps = _Deps(db_url)
    try:
        async with deps.db.session() as s:
            s.add(
                Incident(
                    id="INC-P0", severity="P0", status="RESOLVED", summary="x", declared_by="U1",
                    declared_at=day(2), detected_at=day(2), updated_at=day(2), resolved_at=day(2) + 5 * M,
                )
            )  # fmt: skip
            await s.flush()
            for lv in (1, 2):  # both paged at declare by the P0 plan
                s.add(
                    Page(incident_id="INC-P0", step=f"L{lv}", level=lv, users={}, due_at=day(2), state="sent")
                )
        st = await flows.stats(deps, 30)
        assert (st.total, st.escalated, st.escalation_rate, st.escalation_met) == (1, 0, 0.0, True)
    finally:
        await deps.db.dispose()


def test_mttf_counts_only_the_observed_period() -> None:
    """A bot installed 3 days ago with one incident has not seen 30 days of uptime."""
    one = [Times("P1", day(1), None, None, None, day(1) + 60 * M)]
    st = compute_stats(one, day(30), END, BOOK, observed_since=day(3))
    assert st.uptime == timedelta(days=3) - 60 * M
    assert st.mttf == timedelta(days=3) - 60 * M
    blind = compute_stats(one, day(30), END, BOOK, previous=one, observed_since=day(3))
    assert blind.previous_total == 0 and blind.previous_mttf is None  # nothing was observed before


async def test_mttf_from_sql_starts_at_first_observation(db_url: str) -> None:
    deps = _Deps(db_url)
    try:
        async with deps.db.session() as s:
            s.add(
                Incident(
                    id="INC-NEW", severity="P2", status="RESOLVED", summary="x", declared_by="U1",
                    declared_at=day(2), detected_at=day(2), updated_at=day(2), resolved_at=day(2) + 30 * M,
                )
            )  # fmt: skip
        st = await flows.stats(deps, 30)
        assert st.uptime == timedelta(days=2) - 30 * M  # not 30 days: the bot first saw anything 2 days ago
    finally:
        await deps.db.dispose()
