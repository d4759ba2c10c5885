"""PIR of an incident with 100,000 timeline events: load + render must stay under 2 s.

`.venv/bin/python -m bench.pir_bench [n]` seeds a temporary SQLite database (bulk insert), then times the
load (bot.pir.data) and the Markdown render (bot.pir.render), and the HTML render for reference.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bot.config import CONTENT_DIR
from bot.db import Database
from bot.migrate import upgrade
from bot.models import ActionItem, CheckSample, Incident, Page, TimelineEvent
from bot.pir.data import load
from bot.pir.render import render_html, render_markdown
from bot.playbook import load_severities

TARGET_S = 2.0
INCIDENT = "INC-20261123-120000"
KINDS = ("note", "status", "slack", "page", "reminder", "check", "acknowledged")


def _events(n: int, start: datetime) -> list[dict[str, Any]]:
    rnd = random.Random(329)
    rows = []
    for i in range(n):
        kind = KINDS[rnd.randrange(len(KINDS))]
        data: dict[str, Any] = {"i": i}
        said = f" looked at the order path | p99 {rnd.randrange(100, 9000)} ms"
        if i % 2:  # a row from before lines were stored: its text is Slack mrkdwn
            text = f"Event {i}: <@U01PRIMARY>{said}"
        else:  # a row as stored now (bot.event_text): the line in data, the neutral text in the column
            data["line"] = [f"Event {i}: ", {"user": "U01PRIMARY"}, said]
            text = f"Event {i}: @U01PRIMARY{said}"
        if i == n // 2:
            kind, data = (
                "pinned",
                {"author": "U02SECOND", "text": "Rollback fixed it", "permalink": "https://x/p"},
            )
        rows.append(
            {
                "incident_id": INCIDENT,
                "at": start + timedelta(milliseconds=40 * i),
                "kind": kind,
                "actor": "U01PRIMARY" if i % 3 else None,
                "text": text,
                "data": data,
                "removed": False,
            }
        )
    return rows


async def _seed(db: Database, n: int, start: datetime) -> None:
    async with db.session() as s:
        await s.execute(
            insert(Incident).values(
                id=INCIDENT,
                severity="P1",
                status="RESOLVED",
                summary="Factory orders failing",
                impact="Every order failed for 70 minutes",
                root_cause="A bad deploy of the Factory",
                declared_by="U01PRIMARY",
                commander="U01PRIMARY",
                detected_at=start - timedelta(minutes=2),
                declared_at=start,
                acknowledged_at=start + timedelta(minutes=3),
                acknowledged_by="U01PRIMARY",
                monitoring_at=start + timedelta(minutes=50),
                resolved_at=start + timedelta(milliseconds=40 * n + 1000),
                updated_at=start,
            )
        )
        await s.execute(
            insert(Page).values(
                incident_id=INCIDENT,
                step="L1",
                level=1,
                users={"ids": ["U01PRIMARY"]},
                due_at=start,
                sent_at=start,
                state="sent",
                dm={},
            )
        )
        await s.execute(
            insert(ActionItem).values(
                incident_id=INCIDENT, number=1, text="Canary deploys", owner="U02SECOND",
                due_date=date(2026, 12, 1), created_at=start,
            )
        )  # fmt: skip
        samples = [
            {"run_id": f"r{i}", "at": start + timedelta(minutes=i), "probe": probe, "latency_ms": 100.0 + i,
             "status": "down" if i < 40 else "ok", "detail": "", "incident_id": INCIDENT}
            for i in range(70)
            for probe in ("order", "jwks")
        ]  # fmt: skip
        await s.execute(insert(CheckSample), samples)
        # Bulk insert straight through the driver (one prepared statement, executemany): the ORM's
        # per-row parameter processing would make seeding take longer than the figure being measured.
        conn = await s.connection()
        sql = (
            f"INSERT INTO {TimelineEvent.__tablename__} (incident_id, at, kind, actor, text, data, removed) "
            "VALUES (?, ?, ?, ?, ?, ?, 0)"
        )
        rows = [
            (r["incident_id"], r["at"].strftime("%Y-%m-%d %H:%M:%S.%f"), r["kind"], r["actor"], r["text"],
             json.dumps(r["data"]))
            for r in _events(n, start)
        ]  # fmt: skip
        await conn.exec_driver_sql(sql, rows)


async def _run(n: int, repeats: int) -> dict[str, Any]:
    start = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    book = load_severities(CONTENT_DIR / "severities.yaml")
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        db = Database(url)
        try:
            t = time.perf_counter()
            await _seed(db, n, start)
            seed_s = time.perf_counter() - t
            # Best of `repeats`: on a shared machine the minimum is the figure least polluted by neighbours.
            for _ in range(repeats):
                wall, cpu = time.perf_counter(), time.process_time()
                pir = await load(
                    db, INCIDENT, start + timedelta(days=1), names={"U01PRIMARY": "Priya Primary"}
                )
                assert pir is not None
                loaded_wall, loaded_cpu = time.perf_counter(), time.process_time()
                md = render_markdown(pir, book, "America/Denver")
                done_wall, done_cpu = time.perf_counter(), time.process_time()
                page = render_html(pir, book, "America/Denver")
                html_s = time.perf_counter() - done_wall
                figures = {
                    "load_s": loaded_wall - wall,
                    "render_md_s": done_wall - loaded_wall,
                    "load_plus_render_s": done_wall - wall,
                    "load_plus_render_cpu_s": (loaded_cpu - cpu) + (done_cpu - loaded_cpu),
                    "render_html_s": html_s,
                }
                if not best or figures["load_plus_render_s"] < best["load_plus_render_s"]:
                    best = figures
        finally:
            await db.dispose()
    total = best["load_plus_render_s"]
    return {
        "events": n,
        "repeats": repeats,
        "seed_s": round(seed_s, 3),
        **{k: round(v, 3) for k, v in best.items()},
        "target_s": TARGET_S,
        "ratio_to_target": round(total / TARGET_S, 3),
        "markdown_bytes": len(md.encode()),
        "html_bytes": len(page.encode()),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "ok": total < TARGET_S,
    }


def run(n: int = 100_000, repeats: int = 3) -> dict[str, Any]:
    result = asyncio.run(_run(n, repeats))
    print(
        f"PIR bench: {result['events']:,} events, best of {repeats} — load {result['load_s']:.3f} s + Markdown "
        f"render {result['render_md_s']:.3f} s = {result['load_plus_render_s']:.3f} s "
        f"(CPU {result['load_plus_render_cpu_s']:.3f} s; {result['ratio_to_target']:.0%} of the {TARGET_S:g} s "
        f"target). HTML render {result['render_html_s']:.3f} s; {result['markdown_bytes'] / 1e6:.1f} MB "
        f"Markdown; seeding {result['seed_s']:.1f} s; load average {result['load_average_1m']} on "
        f"{result['cpus']} CPUs. {'OK' if result['ok'] else 'TOO SLOW'}"
    )
    return result


if __name__ == "__main__":
    res = run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
    sys.exit(0 if res["ok"] else 1)
