"""3. Escalation lateness: N live incidents, 2 worker processes, PostgreSQL, the stand-in as Slack.

Seeds a throwaway PostgreSQL database with N live P1 incidents, each as a real one looks 10 minutes after
its declaration: war room (a stand-in channel), L1 already paged, and a planned ladder (L2 due now, L3/L4 and
the update reminder later). Two `Worker` processes (each its own connection pool, production settings, poll
0.5 s) are started; once both are polling, the N L2 steps are given due times spread evenly over `--window`
seconds, starting one second ahead. The bench then waits until every step is paged (or a deadline) and reads:

- lateness: `pages.sent_at − pages.due_at` (cross-checked against the page timeline events' `lateness_s`);
- duplicates: pages per (incident, cycle, step) > 1, or more stand-in DMs / war-room lines than pages;
- misses: expected L2 steps without a sent page; strays: pages for steps that were not due (L3/L4).

`python -m bench.escalation_lateness --worker ID` is the worker process (reads Settings from the environment).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import (
    BenchResult,
    Proc,
    Row,
    StandinClient,
    bot_env,
    cpu_seconds,
    ms,
    pg_db,
    rss_mb,
    start_standin,
    summary,
)

TARGET_P99_S = 1.0
WORKERS = 2
STALL_S = 30.0  # no new page for this long: stop waiting and count what is missing
PAGE_TEXT = re.compile(r"Page L2: (INC-\d{8}-\d{6}-\d+) ")
ROOM_TEXT = re.compile(r"Paging L2 \(")


# -- the worker process ------------------------------------------------------------------------------------


async def _worker_main(worker_id: str) -> None:
    from sqlalchemy import event

    from bot.config import Settings
    from bot.worker import Worker
    from wiring.services import open_services

    settings = Settings()
    counts: Counter[str] = Counter()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_services(settings) as svc:

        @event.listens_for(svc.db.engine.sync_engine, "before_cursor_execute")
        def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            counts["statements"] += 1

        @event.listens_for(svc.db.engine.sync_engine, "commit")
        def _commit(conn: Any) -> None:
            counts["commits"] += 1

        @event.listens_for(svc.db.engine.sync_engine, "rollback")
        def _rollback(conn: Any) -> None:
            counts["rollbacks"] += 1

        @event.listens_for(svc.db.engine.sync_engine.pool, "checkout")
        def _checkout(*args: Any) -> None:
            counts["checkouts"] += 1

        @event.listens_for(svc.db.engine.sync_engine.pool, "connect")
        def _connect(*args: Any) -> None:
            counts["connects"] += 1

        dialect = svc.db.engine.sync_engine.dialect
        ping = dialect.do_ping

        def counted_ping(dbapi_connection: Any) -> bool:  # pool_pre_ping: one round trip per checkout
            counts["pings"] += 1
            return bool(ping(dbapi_connection))

        dialect.do_ping = counted_ping  # type: ignore[method-assign]

        worker = Worker(svc, worker_id=worker_id, extra_ticks=[])
        await worker.tick()  # connect, warm the pool and the statement caches
        counts.clear()
        cpu0 = os.times()
        print("ready", flush=True)
        try:
            await worker.run(stop)
        finally:
            await svc.tasks.drain(timeout=10)
            await svc.db.dispose()
    cpu = os.times()
    stats = {
        "worker": worker_id,
        "fired": worker.fired,
        "user_s": cpu.user - cpu0.user,
        "system_s": cpu.system - cpu0.system,
        **counts,
    }
    print("STATS " + json.dumps(stats), flush=True)


# -- seeding -----------------------------------------------------------------------------------------------


def _incident_id(i: int) -> str:
    return f"INC-20261123-120000-{i + 1}"


async def _seed(url: str, channels: list[str], now: datetime) -> None:
    from sqlalchemy import insert

    from bot.db import Database
    from bot.models import Incident, Page, TimelineEvent, Timer

    declared = now - timedelta(minutes=10)
    far = now + timedelta(days=1)
    incidents, pages, events, timers = [], [], [], []
    for i, channel in enumerate(channels):
        inc = _incident_id(i)
        incidents.append(
            {
                "id": inc,
                "severity": "P1",
                "status": "NEW",
                "summary": f"Bench incident {i}: Factory orders failing",
                "impact": "",
                "root_cause": "",
                "next_steps": "",
                "declared_by": "UDECLARER",
                "commander": "UDECLARER",
                "declared_at": declared,
                "detected_at": declared,
                "updated_at": declared,
                "plan_version": 1,
                "cycle": 1,
                "ack_cycle": 0,
                "channel_id": channel,
                "channel_name": f"incident-bench-{i}",
                "template_ts": "1700000000.000100",
                "provision_state": "ready",
                "source": "slash",
                "is_drill": False,
            }
        )
        pages.append(
            {
                "incident_id": inc,
                "cycle": 1,
                "step": "L1",
                "level": 1,
                "users": {"ids": ["U01PRIMARY"]},
                "reason": "declared P1",
                "due_at": declared,
                "sent_at": declared,
                "state": "sent",
                "dm": {"U01PRIMARY": {"channel": "DU01PRIMARY", "ts": "1700000000.000200"}},
            }
        )
        events.append(
            {
                "incident_id": inc,
                "at": declared,
                "kind": "declared",
                "actor": "UDECLARER",
                "text": "Declared P1 (HIGH): bench",
                "data": {"severity": "P1"},
                "removed": False,
            }
        )
        for step, level in (("L2", 2), ("L3", 3), ("L4", 4)):
            timers.append(
                {
                    "incident_id": inc,
                    "kind": "page",
                    "step": step,
                    "due_at": far + timedelta(hours=level),  # L2 gets its due time when workers are up
                    "state": "pending",
                    "plan_version": 1,
                    "attempts": 0,
                    "data": {"level": level, "reason": f"L{level - 1} not acknowledged", "mode": "dm"},
                }
            )
        timers.append(
            {
                "incident_id": inc,
                "kind": "reminder",
                "step": "update-1",
                "due_at": far,
                "state": "pending",
                "plan_version": 1,
                "attempts": 0,
                "data": {"cadence": 1800.0},
            }
        )
    db = Database(url)
    try:
        async with db.session() as s:
            for table, rows in (
                (Incident, incidents),
                (Page, pages),
                (TimelineEvent, events),
                (Timer, timers),
            ):
                for k in range(0, len(rows), 5000):
                    await s.execute(insert(table), rows[k : k + 5000])
    finally:
        await db.dispose()


async def _schedule(url: str, t0: datetime, window: float, n: int) -> None:
    """Give the N L2 steps due times t0 … t0 + window, evenly spaced, in incident order."""
    from sqlalchemy import bindparam, text
    from sqlalchemy.types import DateTime, Float

    from bot.db import Database

    step = window / max(n - 1, 1)
    db = Database(url)
    try:
        async with db.session() as s:
            stmt = text(
                "UPDATE timers SET due_at = :t0 + (r.rn - 1) * make_interval(secs => :step) "
                "FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM timers "
                "WHERE kind = 'page' AND step = 'L2') AS r WHERE timers.id = r.id"
            ).bindparams(bindparam("t0", type_=DateTime(timezone=True)), bindparam("step", type_=Float()))
            await s.execute(stmt, {"t0": t0, "step": step})
    finally:
        await db.dispose()


async def _progress(url: str) -> int:
    from sqlalchemy import text

    from bot.db import Database

    db = Database(url)
    try:
        async with db.session() as s:
            q = "SELECT count(*) FROM pages WHERE step = 'L2' AND state = 'sent'"
            return int((await s.execute(text(q))).scalar_one())
    finally:
        await db.dispose()


async def _collect(url: str) -> dict[str, Any]:
    from sqlalchemy import text

    from bot.db import Database

    db = Database(url)
    try:
        async with db.session() as s:
            pages = (
                await s.execute(
                    text(
                        "SELECT incident_id, cycle, step, state, due_at, sent_at FROM pages WHERE step <> 'L1'"
                    )
                )
            ).all()
            events = (
                await s.execute(text("SELECT incident_id, data FROM timeline_events WHERE kind = 'page'"))
            ).all()
            timers = (
                await s.execute(
                    text(
                        "SELECT step, state, claimed_by, count(*) FROM timers GROUP BY step, state, claimed_by"
                    )
                )
            ).all()
    finally:
        await db.dispose()
    return {"pages": pages, "events": events, "timers": timers}


# -- the benchmark -----------------------------------------------------------------------------------------


def _start_worker(worker_id: str, env: dict[str, str], cwd: str) -> Proc:
    argv = [sys.executable, "-m", "bench.escalation_lateness", "--worker", worker_id]
    return Proc(argv, env=env, cwd=cwd, name=f"worker-{worker_id}")


def _wait_ready(procs: list[Proc], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all("ready" in p.output() for p in procs):
            return
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited:\n{p.output()[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError("workers did not become ready")


def _stop_worker(p: Proc) -> dict[str, Any]:
    if p.alive():
        p.popen.send_signal(signal.SIGTERM)
        with contextlib.suppress(Exception):
            p.popen.wait(20)
    out = p.output()
    p.stop()
    for line in reversed(out.splitlines()):
        if line.startswith("STATS "):
            return dict(json.loads(line[6:]))
    return {"worker": p.name, "error": out[-2000:]}


async def _run(n: int, window: float, deadline_s: float | None) -> BenchResult:
    res = BenchResult("3", "Escalation lateness")
    standin = start_standin()
    procs: list[Proc] = []
    try:
        async with pg_db() as url:
            client = StandinClient(standin.url)
            t = time.monotonic()
            channels = await client.channels(n, "incident-bench")
            await _seed(url, channels, datetime.now(UTC))
            seed_s = time.monotonic() - t
            with tempfile.TemporaryDirectory(prefix="bench-worker-") as cwd:
                env = bot_env(url, standin.url)
                procs = [_start_worker(f"w{k + 1}", env, cwd) for k in range(WORKERS)]
                _wait_ready(procs)
                cpu0 = {p.name: cpu_seconds(p.pid) for p in [*procs, standin]}
                t0 = datetime.now(UTC) + timedelta(seconds=1)
                await _schedule(url, t0, window, n)
                start = time.time()
                # Wait while pages keep coming (the drain rate is what we measure), within a hard cap.
                limit = deadline_s if deadline_s is not None else window + max(90.0, n / 10)
                done, last, last_change = 0, -1, time.monotonic()
                while time.time() - start < limit and done < n and time.monotonic() - last_change < STALL_S:
                    await asyncio.sleep(0.5)
                    done = await _progress(url)
                    if done != last:
                        last, last_change = done, time.monotonic()
                drained_at = time.time()
                await asyncio.sleep(2.0)  # a late duplicate would show up here
                cpu = {p.name: cpu_seconds(p.pid) - cpu0[p.name] for p in [*procs, standin]}
                rss = {p.name: rss_mb(p.pid) for p in [*procs, standin]}
                workers = [_stop_worker(p) for p in procs]
                procs = []
            rows = await _collect(url)
        calls = await client.calls()
    finally:
        for p in procs:
            p.stop()
        standin.stop()

    expected = {_incident_id(i) for i in range(n)}
    sent = [r for r in rows["pages"] if r.step == "L2" and r.state == "sent"]
    per_step = Counter((r.incident_id, r.cycle, r.step) for r in rows["pages"])
    dup_rows = sum(c - 1 for c in per_step.values() if c > 1)
    lateness = [(r.sent_at - r.due_at).total_seconds() for r in sent]
    ev_late = [float(e.data.get("lateness_s", 0)) for e in rows["events"] if e.data.get("step") == "L2"]
    misses = len(expected - {r.incident_id for r in sent})
    strays = sum(1 for r in rows["pages"] if r.step not in ("L1", "L2"))
    dms = Counter(
        m.group(1)
        for c in calls
        if c["method"] == "chat.postMessage" and c["ok"] and c["channel"].startswith("D")
        for m in [PAGE_TEXT.search(c["text"])]
        if m
    )
    rooms = Counter(
        c["channel"]
        for c in calls
        if c["method"] == "chat.postMessage"
        and c["ok"]
        and c["channel"].startswith("C")
        and ROOM_TEXT.search(c["text"])
    )
    dup_dms = sum(v - 1 for v in dms.values() if v > 1) + sum(v - 1 for v in rooms.values() if v > 1)
    slack_failures = sum(1 for c in calls if not c["ok"])
    duplicates = dup_rows + dup_dms
    last_due = t0 + timedelta(seconds=window)
    first_sent = min((r.sent_at for r in sent), default=t0)
    last_sent = max((r.sent_at for r in sent), default=t0)
    busy_s = max((last_sent - first_sent).total_seconds(), 1e-9)
    lat = summary(lateness)
    fired = sum(int(w.get("fired", 0)) for w in workers)
    statements = sum(int(w.get("statements", 0)) for w in workers)
    commits = sum(int(w.get("commits", 0)) for w in workers)
    worker_cpu = sum(v for k, v in cpu.items() if k.startswith("worker"))
    ok = lat["p99"] < TARGET_P99_S and duplicates == 0 and misses == 0 and strays == 0
    res.data = {
        "incidents": n,
        "window_s": window,
        "arrival_per_s": n / window if window else float("inf"),
        "seed_s": seed_s,
        "lateness": lat,
        "lateness_events": summary(ev_late),
        "duplicates": {"page_rows": dup_rows, "slack_messages": dup_dms},
        "misses": misses,
        "strays": strays,
        "slack_failures": slack_failures,
        "dms": sum(dms.values()),
        "war_room_lines": sum(rooms.values()),
        "throughput_per_s": len(sent) / busy_s,
        "drain_after_last_due_s": (last_sent - last_due).total_seconds(),
        "workers": workers,
        "cpu_s": cpu,
        "rss_mb": rss,
        "cpu_ms_per_page": {
            "workers": 1e3 * worker_cpu / max(fired, 1),
            "standin": 1e3 * cpu.get(standin.name, 0.0) / max(fired, 1),
        },
        "statements_per_page": statements / max(fired, 1),
        "commits_per_page": commits / max(fired, 1),
        "db_per_page": {
            k: sum(int(w.get(k, 0)) for w in workers) / max(fired, 1)
            for k in ("statements", "commits", "rollbacks", "checkouts", "connects", "pings")
        },
        "worker_user_sys_ms_per_page": [
            1e3 * sum(float(w.get(k, 0)) for w in workers) / max(fired, 1) for k in ("user_s", "system_s")
        ],
        "timers": [list(r) for r in rows["timers"]],
        "waited_s": drained_at - start,
    }
    share = ", ".join(f"{w.get('worker')}: {w.get('fired', '?')}" for w in workers)
    res.rows = [
        Row(
            f"page lateness p50/p99, {n:,} incidents, {WORKERS} workers, PostgreSQL",
            f"{ms(lat['p50'])} / {ms(lat['p99'])} (max {ms(lat['max'])})",
            "p99 < 1 s",
            f"{lat['p99'] / TARGET_P99_S:.2f}× of target {'OK' if lat['p99'] < TARGET_P99_S else 'MISS'}",
            lat["p99"] < TARGET_P99_S,
        ),
        Row(
            "duplicates / misses / stray steps",
            f"{duplicates} / {misses} / {strays}",
            "0 / 0 / 0",
            "OK" if duplicates == misses == strays == 0 else "MISS",
            duplicates == misses == strays == 0,
        ),
        Row(
            f"  due rate vs drain rate ({window:g} s window)",
            f"{n / window:.0f}/s due, {res.data['throughput_per_s']:.0f}/s paged",
            "info",
            f"{res.data['cpu_ms_per_page']['workers']:.1f} ms worker CPU/page; {share}",
        ),
    ]
    per = res.data["db_per_page"]
    res.data["db_round_trips_per_page"] = per["statements"] + 2 * per["commits"] + per["pings"]
    user_ms, sys_ms = res.data["worker_user_sys_ms_per_page"]
    res.notes.append(
        f"{n:,} live P1 incidents (war room, L1 sent, L2 due, L3/L4/reminder planned later). Per page: "
        f"{per['statements']:.1f} SQL statements in {per['commits']:.1f} transactions, {per['pings']:.1f} "
        f"pre-ping round trips, {per['connects']:.2f} new connections (≈ "
        f"{res.data['db_round_trips_per_page']:.0f} DB round trips), 3 Slack calls; worker CPU "
        f"{user_ms:.1f} ms user + {sys_ms:.1f} ms system. {res.data['dms']} DMs + "
        f"{res.data['war_room_lines']} war-room lines, {slack_failures} failed Slack calls. Stand-in CPU "
        f"{res.data['cpu_ms_per_page']['standin']:.1f} ms/page (same 2 cores)."
    )
    if not ok and lat["p99"] >= TARGET_P99_S:
        res.notes.append(
            f"Lateness is capacity-bound: steps fell due at {n / window:.0f}/s, the two workers paged "
            f"{res.data['throughput_per_s']:.0f}/s, so the queue drained "
            f"{res.data['drain_after_last_due_s']:.1f} s after the last due time."
        )
    return res


def run(*, incidents: int = 1000, window: float = 10.0, deadline_s: float | None = None) -> BenchResult:
    t = time.monotonic()
    res = asyncio.run(_run(incidents, window, deadline_s))
    res.seconds = time.monotonic() - t
    return res


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.escalation_lateness")
    parser.add_argument("--worker", help="run as worker process ID (used by the benchmark)")
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--window", type=float, default=10.0)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(_worker_main(args.worker))
    else:
        result = run(incidents=args.incidents, window=args.window)
        for row in result.rows:
            print(f"{row.figure}: {row.value} [{row.target}] {row.verdict}")
        for note in result.notes:
            print(note)
        sys.stdout.flush()
