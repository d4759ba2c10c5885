"""Golden-structure tests of the PIR for a scripted incident: every section, times in UTC and another zone,
MTT* against the targets, the escalation record, the 📌 pinned message exactly once, safe escaping."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import CONTENT_DIR
from bot.db import Database
from bot.models import ActionItem, CheckSample, Incident, Page, TimelineEvent
from bot.pir.data import IncidentInfo, PirData, identified_at, load
from bot.pir.render import gantt_svg, milestones, phases, render_html, render_markdown
from bot.playbook import load_roster, load_severities

INC = "INC-20261123-120000"
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # declared
NOW = T0 + timedelta(days=1)
BOOK = load_severities(CONTENT_DIR / "severities.yaml")
NAMES = dict(load_roster(CONTENT_DIR / "oncall.example.yaml").names)
PERMALINK = "https://slack.test/archives/C1/p1700000000"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def seed_scripted(db: Database, incident_id: str = INC) -> None:
    """Detected 11:57, declared 12:00, L1 paged, L2 paged 12:10, acknowledged 12:12, monitoring 12:50,
    resolved 13:20. MTTD 3 min (met), MTTA 12 min (met, P1 < 15 min), MTTR 80 min (missed, P1 < 60 min)."""
    async with db.session() as s:
        s.add(
            Incident(
                id=incident_id,
                severity="P1",
                status="RESOLVED",
                summary="Factory orders failing",
                impact="Every pizza order failed | checkout blocked",
                root_cause="A bad Factory deploy (v2.3)",
                area="api",
                commander="UDECLARER",
                declared_by="UDECLARER",
                channel_id=f"C{incident_id[-6:]}",
                channel_name="incident-20261123-120000",
                detected_at=at(-3),
                declared_at=T0,
                acknowledged_at=at(12),
                acknowledged_by="U02SECOND",
                monitoring_at=at(50),
                resolved_at=at(80),
                updated_at=at(50),
                source="monitor",
            )
        )
        await s.flush()
        pin = {"author": "U01PRIMARY", "text": "Rollback candidate: v2.2", "permalink": PERMALINK}
        note = "Orders return 500 | see &lt;script&gt;alert(1)&lt;/script&gt;"  # as Slack escapes it
        events = [
            (0, "declared", "UDECLARER", "Declared P1 (HIGH): Factory orders failing", {}, False),
            (1 / 60, "page", None, "Paged L1 (Primary on-call) <@U01PRIMARY>: declared", {"level": 1}, False),
            (5, "note", "UDECLARER", note, {}, False),
            (6, "pinned", "UDECLARER", "📌 pinned", pin, True),  # the same message, un-pinned: removed
            (7, "pinned", "UDECLARER", "📌 pinned", pin, False),
            (10 + 2 / 60, "page", None, "Paged L2 (Secondary on-call) <@U02SECOND>: no ack", {}, False),
            (12, "acknowledged", "U02SECOND", "Acknowledged by <@U02SECOND> after 12 min", {}, False),
            (50, "status", "UDECLARER", "Status → MONITORING", {}, False),
            (80, "resolved", "UDECLARER", "Resolved after 1 h 20 min", {}, False),
        ]
        for minutes, kind, actor, text, data, removed in events:
            s.add(
                TimelineEvent(
                    incident_id=incident_id, at=at(minutes), kind=kind, actor=actor, text=text, data=data,
                    removed=removed,
                )
            )  # fmt: skip
        for level, user, due, sent in ((1, "U01PRIMARY", 0, 1 / 60), (2, "U02SECOND", 10, 10 + 2 / 60)):
            s.add(
                Page(
                    incident_id=incident_id, step=f"L{level}", level=level, users={"ids": [user]},
                    reason="declared" if level == 1 else "no ack in 10 min", due_at=at(due), sent_at=at(sent),
                    state="sent", dm={}, acked_by="U02SECOND", acked_at=at(12),
                )
            )  # fmt: skip
        s.add_all(
            [
                ActionItem(incident_id=incident_id, number=1, text="Add canary deploys for the Factory",
                           owner="U02SECOND", due_date=date(2026, 12, 1), status="Open", created_at=at(90)),
                ActionItem(incident_id=incident_id, number=2, text="Alert on the order error rate",
                           owner="U01PRIMARY", due_date=date(2026, 11, 30), status="Done", created_at=at(91)),
                CheckSample(run_id="r1", at=at(-3), probe="order", status="down", http_status=500,
                            latency_ms=812, detail="HTTP 500", incident_id=incident_id),
                CheckSample(run_id="r2", at=at(30), probe="order", status="down", http_status=500,
                            latency_ms=640, detail="HTTP 500"),
                CheckSample(run_id="r3", at=at(75), probe="order", status="ok", http_status=200,
                            latency_ms=250, detail="order placed"),
                CheckSample(run_id="r3", at=at(75), probe="jwks", status="ok", http_status=200,
                            latency_ms=40, detail="1 key(s)"),
                CheckSample(run_id="r0", at=at(-600), probe="order", status="ok", latency_ms=100),  # before
            ]
        )  # fmt: skip


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
async def pir(db: Database) -> PirData:
    await seed_scripted(db)
    loaded = await load(
        db,
        INC,
        NOW,
        severity_labels={"P1": "P1 (HIGH)"},
        teams={"api": "Backend team"},
        level_names={1: "Primary on-call", 2: "Secondary on-call"},
        names=NAMES,
    )
    assert loaded is not None
    return loaded


def section(md: str, title: str) -> str:
    """The text under a `## title` heading, up to the next `## ` heading."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", md, re.S | re.M)
    assert m, f"no section {title!r}"
    return m.group(1)


def table_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows]


async def test_every_section_present_in_order(pir: PirData) -> None:
    md = render_markdown(pir, BOOK, "America/Denver")
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert headings == [
        f"# Post-Incident Review: {INC}",
        "## Summary",
        "## Impact",
        "## Root Cause",
        "## Key Times",
        "## Phases",
        "## Response Metrics",
        "## Escalation",
        "## Health Checks",
        "## Review Topics",
        "### What happened?",
        "### Why did it happen?",
        "### How did we respond?",
        "### What can we improve?",
        "## Action Items",
        "## Customer communication",
        "## Timeline",
    ]
    for fact in (
        "**Severity:** P1 (HIGH)",
        "**Status:** RESOLVED",
        "**Commander:** @UDECLARER",
        "**Duration:** 1 h 20 min (declared → resolved)",
        "**Team:** Backend team (area api)",
    ):
        assert fact in md, fact
    assert "Every pizza order failed | checkout blocked" in section(md, "Impact")
    assert "A bad Factory deploy (v2.3)" in section(md, "Root Cause")
    assert md.endswith("\n") and not md.endswith("\n\n")


async def test_key_times_in_utc_and_the_chosen_zone(pir: PirData) -> None:
    denver = table_rows(section(render_markdown(pir, BOOK, "America/Denver"), "Key Times"))
    assert denver[0] == ["Milestone", "UTC", "America/Denver", "Since declared", "Notes"]
    assert denver[1:] == [
        ["Detected", "2026-11-23 11:57:00", "2026-11-23 04:57:00 MST", "3 min before", "first failing check"],
        ["Declared", "2026-11-23 12:00:00", "2026-11-23 05:00:00 MST", "0 s", "@UDECLARER"],
        ["Acknowledged", "2026-11-23 12:12:00", "2026-11-23 05:12:00 MST", "+12 min", "@Sam Secondary"],
        ["Monitoring", "2026-11-23 12:50:00", "2026-11-23 05:50:00 MST", "+50 min", "—"],
        ["Resolved", "2026-11-23 13:20:00", "2026-11-23 06:20:00 MST", "+1 h 20 min", "—"],
    ]
    kolkata = table_rows(section(render_markdown(pir, BOOK, "Asia/Kolkata"), "Key Times"))
    assert kolkata[0][2] == "Asia/Kolkata"
    assert kolkata[2][1:3] == ["2026-11-23 12:00:00", "2026-11-23 17:30:00 IST"]  # a half-hour offset
    utc_only = table_rows(section(render_markdown(pir, BOOK, "UTC"), "Key Times"))
    assert utc_only[0] == ["Milestone", "UTC", "Since declared", "Notes"]


async def test_mtt_star_against_the_seed_targets(pir: PirData) -> None:
    md = render_markdown(pir, BOOK)
    rows = {r[0]: r for r in table_rows(section(md, "Response Metrics"))[1:]}
    assert rows["MTTD"][2:] == ["3 min", "< 5 min", "✅ met"]
    assert rows["MTTA"][2:] == ["12 min", "< 15 min", "✅ met"]
    assert rows["MTTR"][2:] == ["1 h 20 min", "< 1 h", "❌ missed"]
    assert rows["MTTR"][1] == "resolved − declared"
    assert "MTTR is measured from declaration to resolution" in md


async def test_escalation_record(pir: PirData) -> None:
    rows = table_rows(section(render_markdown(pir, BOOK), "Escalation"))
    assert rows[0][:4] == ["Cycle", "Level", "Who", "Why"]
    assert rows[1] == [
        "1", "L1 Primary on-call", "@Priya Primary", "declared", "2026-11-23 12:00:00", "2026-11-23 12:00:01",
        "1 s", "sent", "@Sam Secondary", "2026-11-23 12:12:00",
    ]  # fmt: skip
    assert rows[2][1:3] == ["L2 Secondary on-call", "@Sam Secondary"]
    assert rows[2][4:7] == ["2026-11-23 12:10:00", "2026-11-23 12:10:02", "2 s"]
    assert "Escalated beyond L1." in render_markdown(pir, BOOK)


async def test_timeline_table_and_the_pinned_message_once(pir: PirData) -> None:
    md = render_markdown(pir, BOOK, "Europe/Paris")
    assert md.count("📌") == 1  # pinned twice in the raw data, one of them removed
    rows = table_rows(section(md, "Timeline"))
    assert rows[0] == ["Time (UTC)", "Time (Europe/Paris)", "Event", "By", "What"]
    body = rows[1:]
    assert len(body) == 8 and "8 events, oldest first." in md
    assert [r[2] for r in body] == ["declared", "page", "note", "pinned", "page", "acknowledged", "status",
                                    "resolved"]  # fmt: skip
    pinned = body[3]
    assert pinned[:4] == ["2026-11-23 12:07:00", "2026-11-23 13:07:00", "pinned", "@Priya Primary"]
    assert pinned[4] == f"📌 Rollback candidate: v2.2 — [message]({PERMALINK})"
    note = body[2][4]
    assert note == r"Orders return 500 \| see &lt;script>alert(1)&lt;/script>"  # no raw HTML, no broken table
    assert body[1][4] == "Paged L1 (Primary on-call) @Priya Primary: declared"  # Slack mention -> name


async def test_health_checks_summarised_per_probe(pir: PirData) -> None:
    rows = table_rows(section(render_markdown(pir, BOOK), "Health Checks"))
    assert [r[0] for r in rows[1:]] == ["jwks", "order"]
    order = rows[2]
    # The sample taken 10 hours before the incident is not part of it.
    assert order[1:5] == ["3", "2", "2026-11-23 11:57:00", "ok: order placed"]
    assert order[6] == "812 ms"


async def test_review_topics_and_action_items(pir: PirData) -> None:
    md = render_markdown(pir, BOOK)
    review = section(md, "Review Topics")
    assert "Acknowledged by @Sam Secondary 12 min after declaration (✅ met)." in review
    assert "Escalation reached L2." in review
    for prompt in (
        "Root cause analysis",
        "What went well",
        "Communication effectiveness",
        "Training requirements",
    ):
        assert prompt in review
    rows = table_rows(section(md, "Action Items"))
    assert rows[0] == ["Item", "Owner", "Due Date", "Status"]
    assert rows[1:] == [
        ["#1 Add canary deploys for the Factory", "@Sam Secondary", "2026-12-01", "Open"],
        ["#2 Alert on the order error rate", "@Priya Primary", "2026-11-30", "Done"],
    ]


async def test_mermaid_gantt_of_the_phases(pir: PirData) -> None:
    md = render_markdown(pir, BOOK)
    m = re.search(r"```mermaid\n(.*?)\n```", section(md, "Phases"), re.S)
    assert m
    lines = m.group(1).splitlines()
    assert lines[0] == "gantt" and "dateFormat YYYY-MM-DD HH:mm:ss" in lines[2]
    assert "    Detection :done, p0, 2026-11-23 11:57:00, 2026-11-23 12:00:00" in lines
    assert "    Awaiting acknowledgement :done, p1, 2026-11-23 12:00:00, 2026-11-23 12:12:00" in lines
    assert "    Investigating :done, p2, 2026-11-23 12:12:00, 2026-11-23 12:50:00" in lines
    assert "    Monitoring :done, p3, 2026-11-23 12:50:00, 2026-11-23 13:20:00" in lines
    assert "    Resolved :milestone, m4, 2026-11-23 13:20:00, 0m" in lines


async def test_html_is_escaped_and_self_contained(pir: PirData) -> None:
    page = render_html(pir, BOOK, "America/Denver", nav=[("Markdown", "/incidents/x/pir.md?token=a&b")])
    assert page.startswith("<!doctype html>")
    assert "<script" not in page.lower()  # nothing executable, not even the note's text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<pre class="mermaid">gantt' in page and "<svg" in page and "Investigating" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no CDN, no remote assets
    assert f'<a href="{PERMALINK}" rel="noopener noreferrer">message</a>' in page
    assert 'href="/incidents/x/pir.md?token=a&amp;b"' in page
    assert page.count("📌") == 1
    for title in ("Key Times", "Response Metrics", "Escalation", "Action Items", "What happened?"):
        assert f">{title}</h" in page


def _info(**kw: object) -> IncidentInfo:
    base: dict[str, object] = dict(
        id=INC, severity="P0", severity_label="P0 (CRITICAL)", status="INVESTIGATING", summary="s", impact="",
        root_cause="", next_steps="", area=None, team=None, commander=None, comms_lead=None, declared_by="U1",
        channel_id=None, channel_name=None, detected_at=None, declared_at=T0, acknowledged_at=None,
        acknowledged_by=None, monitoring_at=None, resolved_at=None, is_drill=False, source="slash", cycle=1,
    )  # fmt: skip
    base.update(kw)
    return IncidentInfo(**base)  # type: ignore[arg-type]


def test_ongoing_incident_renders_a_draft_without_a_database() -> None:
    info = _info(acknowledged_at=at(2), acknowledged_by="U1")
    draft = PirData(info, [], [], [], [], generated_at=at(30))
    md = render_markdown(draft, BOOK)
    assert "**Duration:** ongoing, 30 min so far" in md
    rows = {r[0]: r for r in table_rows(section(md, "Response Metrics"))[1:]}
    assert rows["MTTR"][2:] == ["—", "< 15 min", "⏳ not yet"]
    assert rows["MTTD"][2:] == ["0 s", "< 5 min", "✅ met"]  # no earlier detection: detected = declared
    assert "No pages were sent." in md and "No action items yet" in md
    assert [(p.name, p.active) for p in phases(info, at(30))] == [
        ("Awaiting acknowledgement", False),
        ("Investigating", True),
    ]
    assert table_rows(section(md, "Action Items")) == [["Item", "Owner", "Due Date", "Status"]]


def test_people_cannot_inject_structure() -> None:
    info = _info(summary="# Not a heading", root_cause="- not a list\n```\n[x](javascript:alert(1))")
    md = render_markdown(PirData(info, [], [], [], [], generated_at=at(1)), BOOK)
    assert "\n# Not a heading" not in md and "\\# Not a heading" in md
    root = section(md, "Root Cause")
    assert "\\- not a list" in root and "\\```" in root and "\\[x\\](javascript:alert(1))" in root
    assert "[x](javascript:" not in md


def test_cli_pir_prints_and_writes(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from bot.config import get_settings
    from bot.pir.cli import pir_main

    path = tmp_path / "cli.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"

    async def seed() -> None:
        db = Database(url)
        await seed_scripted(db)
        await db.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DISPLAY_TZ", "Asia/Tokyo")
    get_settings.cache_clear()
    try:
        out = tmp_path / "pir.md"
        assert pir_main([INC.lower(), "--tz", "America/Denver", "--out", str(out)]) == 0
        text = out.read_text()
        assert text.startswith(f"# Post-Incident Review: {INC}") and "2026-11-23 05:00:00 MST" in text
        assert pir_main([INC, "--out", str(out)]) == 0
        assert "Asia/Tokyo" in out.read_text()  # DISPLAY_TZ when --tz is not given
        assert pir_main(["INC-20000101-000000"]) == 1
        assert pir_main([INC, "--tz", "Mars/Olympus"]) == 2
    finally:
        get_settings.cache_clear()


def test_phases_include_identified_and_ticks_do_not_repeat() -> None:
    info = _info(
        acknowledged_at=at(2),
        acknowledged_by="U1",
        identified_at=at(5),
        monitoring_at=at(9),
        resolved_at=at(12),
    )
    assert [(p.name, p.start, p.end) for p in phases(info, at(30))] == [
        ("Awaiting acknowledgement", T0, at(2)),
        ("Investigating", at(2), at(5)),
        ("Identified", at(5), at(9)),
        ("Monitoring", at(9), at(12)),
    ]
    assert [n for n, _ in milestones(info)] == [
        "Declared",
        "Acknowledged",
        "Identified",
        "Monitoring",
        "Resolved",
    ]
    short = _info(acknowledged_at=at(0.5), acknowledged_by="U1", resolved_at=at(2))
    svg = gantt_svg(short, phases(short, at(3)))
    ticks = re.findall(r'class="tick">([^<]+)<', svg)
    assert len(ticks) == len(set(ticks))  # no label twice on the axis
    assert any(t.count(":") == 2 for t in ticks)  # a 2-minute incident is labelled to the second


def test_identified_time_comes_from_the_status_event() -> None:
    info = _info()
    events = [
        (f"{at(3):%Y-%m-%dT%H:%M:%S}", "status", "U1", "Status → IDENTIFIED", {"to": "IDENTIFIED"}, 1),
        (f"{at(7):%Y-%m-%dT%H:%M:%S}", "status", "U1", "Status → IDENTIFIED", {"to": "IDENTIFIED"}, 2),
    ]
    assert identified_at(events, info) == at(3)
