"""Backup and restore on SQLite and PostgreSQL: exact round trips, refusals, integrity, snapshots, CLI."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import delete, select, update

import bot.dr.backup as dr
from bot.config import get_settings
from bot.db import Database
from bot.dr.backup import CorruptBackup, RestoreRefused, backup, backup_main, restore, restore_main
from bot.migrate import alembic_config
from bot.models import (
    ActionItem,
    Alert,
    AlertNotification,
    AlertState,
    Base,
    CheckSample,
    Drill,
    Incident,
    OncallFeed,
    OncallOverride,
    OutboxMessage,
    Page,
    ProcessedRequest,
    Signoff,
    SlackPause,
    StatusComponent,
    StatusComponentChange,
    StatusIncident,
    StatusMaintenance,
    StatusSubscriber,
    StatusUpdate,
    TimelineEvent,
    Timer,
)

T0 = datetime(2026, 11, 23, 18, 30, 45, 123456, tzinfo=UTC)
DENVER = timezone(timedelta(hours=-7))
KOLKATA = timezone(timedelta(hours=5, minutes=30))
HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _incident(iid: str, **kw: Any) -> Incident:
    values: dict[str, Any] = dict(
        id=iid,
        severity="P1",
        summary="Factory orders failing",
        declared_by="UDECLARER",
        declared_at=T0,
        updated_at=T0,
    )
    values.update(kw)
    return Incident(**values)


async def seed(url: str) -> None:
    """At least one row in every table: unicode, nested JSON, NULLs, datetimes given in several offsets."""
    db = Database(url)
    try:
        async with db.session() as s:
            s.add_all(
                [
                    _incident(
                        "INC-20261123-183045",
                        severity="P0",
                        status="MONITORING",
                        summary="Pizza 🍕 orders fail — «chaos monkey» 注文",
                        impact="Diners can't order\nsecond line",
                        area="api",
                        commander="U01PRIMARY",
                        channel_id="C0WARROOM",
                        channel_name="inc-20261123-pizza",
                        provision_state="ready",
                        detected_at=T0.astimezone(DENVER) - timedelta(minutes=3),
                        acknowledged_at=(T0 + timedelta(minutes=2)).astimezone(KOLKATA),
                        acknowledged_by="U01PRIMARY",
                        monitoring_at=T0 + timedelta(minutes=20),
                        plan_version=3,
                        is_drill=True,
                        problem_key="factory:order",
                    ),
                    _incident(
                        "INC-20261124-090000", severity="P3", summary="minor", declared_at=T0 + timedelta(1)
                    ),
                ]
            )
            await s.flush()
            s.add_all(
                [
                    TimelineEvent(
                        incident_id="INC-20261123-183045",
                        at=T0 + timedelta(seconds=i),
                        kind="note",
                        actor="U01PRIMARY" if i % 2 else None,
                        text=f"note {i} ✓ ünïcödé",
                        data={"n": i, "nested": {"list": [1, 2.5, None, "ß"], "ok": True}},
                        dedupe_key=f"k{i}" if i % 3 else None,
                        removed=i == 4,
                    )
                    for i in range(25)
                ]
                + [
                    ProcessedRequest(key="Ev123", at=T0, ref="INC-20261123-183045"),
                    ProcessedRequest(key="trigger-é", at=T0.astimezone(KOLKATA), ref=None),
                    Timer(
                        incident_id="INC-20261123-183045",
                        kind="page",
                        step="L2",
                        due_at=T0 + timedelta(minutes=10),
                        plan_version=3,
                        data={"level": 2},
                    ),
                    Timer(
                        incident_id=None, kind="monitor", step="tick", due_at=T0, state="done", fired_at=T0
                    ),
                    Page(
                        incident_id="INC-20261123-183045",
                        step="L1",
                        level=1,
                        users={"ids": ["U01PRIMARY"]},
                        due_at=T0,
                        sent_at=T0,
                        state="sent",
                        dm={"U01PRIMARY": {"channel": "D1", "ts": "1.2"}},
                    ),
                    OutboxMessage(
                        incident_id=None,
                        channel="C0ANNOUNCE",
                        method="chat.postMessage",
                        payload={"text": "🚨 P0", "blocks": [{"type": "section"}]},
                        next_attempt_at=T0,
                        created_at=T0,
                        last_error=None,
                        dedupe_key="announce-1",
                    ),
                    CheckSample(
                        run_id="run-1",
                        at=T0,
                        probe="order",
                        status="down",
                        http_status=None,
                        latency_ms=5000.25,
                        detail="timed out",
                        incident_id="INC-20261123-183045",
                    ),
                    CheckSample(
                        run_id="run-1", at=T0, probe="docs", status="ok", http_status=200, latency_ms=12.0
                    ),
                    ActionItem(
                        incident_id="INC-20261123-183045",
                        number=1,
                        text="Add a timeout to the Factory call",
                        owner="U10BACK",
                        due_date=date(2026, 12, 1),
                        created_at=T0,
                    ),
                    ActionItem(
                        incident_id="INC-20261123-183045",
                        number=2,
                        text="Ünïcode owner",
                        due_date=None,
                        created_at=T0,
                    ),
                    Drill(incident_id=None, scenario="fail", started_at=T0, report={"rto_s": 412.5}),
                    Signoff(role="product", user_id="U03LEAD", plan_hash="a" * 64, at=T0),
                    StatusComponent(key="ordering", state="degraded", effective="degraded", updated_at=T0),
                    StatusComponentChange(component="ordering", state="degraded", at=T0, source="update"),
                    StatusIncident(
                        id=1,
                        incident_id="INC-20261123-183045",
                        title="Orders failing",
                        status="investigating",
                        created_at=T0,
                    ),
                    StatusUpdate(
                        incident_id="INC-20261123-183045",
                        status_incident_id=1,
                        title="Orders failing",
                        status="investigating",
                        message="Ünïcode <b>",
                        components={"ordering": "degraded"},
                        state="published",
                        author="U03LEAD",
                        created_at=T0,
                        published_at=T0,
                        preview_token="t1",
                    ),
                    StatusMaintenance(
                        title="DB", starts_at=T0, ends_at=T0 + timedelta(hours=1), created_at=T0
                    ),
                    StatusSubscriber(url="https://hooks.example/x", secret="s" * 64, created_at=T0),
                    AlertNotification(
                        source="grafana", received_at=T0, body='{"alerts": []}', outcome={"new": 1}
                    ),
                    Alert(
                        source="grafana",
                        fingerprint="c6eadffa33fcdf37",
                        scope="INC-20261123-183045",
                        incident_id="INC-20261123-183045",
                        name="Ünïcode <alert>",
                        status="firing",
                        labels={"zone": "us-1"},
                        values={"B": 44.23943737541908},
                        starts_at=T0,
                        first_seen=T0,
                        last_seen=T0,
                    ),
                    OncallOverride(
                        schedule="primary",
                        user_id="U08SRE",
                        start_at=T0,
                        end_at=T0 + timedelta(hours=8),
                        kind="swap",
                        note="Ünïcode",
                        made_by="U01PRIMARY",
                        created_at=T0,
                    ),
                    OncallFeed(
                        key="secondary/team calendar",
                        url="http://x/t.ics",
                        body="BEGIN:VCALENDAR",
                        fetched_at=T0,
                    ),
                    AlertState(
                        problem_key="factory-health",
                        state="firing",
                        incident_id="INC-20261123-183045",
                        pending_since=T0,
                        firing_since=T0,
                        last_failing_at=T0,
                        failing_samples=3,
                        flaps=1,
                        updated_at=T0,
                        data={"note": "ünïcode"},
                    ),
                    SlackPause(method="chat.postMessage", until=T0 + timedelta(seconds=2), set_at=T0),
                ]
            )
    finally:
        await db.dispose()


async def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, in primary-key order, as the bot reads them."""
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            out = {}
            for table in Base.metadata.sorted_tables:
                rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
                out[table.name] = [dict(r) for r in rows.mappings()]
            return out
    finally:
        await db.dispose()


async def mutate(url: str) -> None:
    """What happens after a backup: new events and incidents, an edit, a deletion."""
    db = Database(url)
    try:
        async with db.session() as s:
            s.add(_incident("INC-20261125-000000"))
            s.add_all(
                TimelineEvent(
                    incident_id="INC-20261123-183045", at=T0 + timedelta(hours=1), kind="note", text=f"x{i}"
                )
                for i in range(5)
            )
            await s.execute(update(Incident).values(status="RESOLVED", resolved_at=T0 + timedelta(hours=2)))
            await s.execute(delete(Signoff))
    finally:
        await db.dispose()


def _formats(db_url: str) -> list[str]:
    return ["backup.jsonl.gz", "backup.db"] if db_url.startswith("sqlite") else ["backup.jsonl.gz"]


async def test_round_trip_restores_exactly_the_backed_up_state(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    before = await dump(db_url)
    assert all(before[t] for t in before), "seed must cover every table"
    for name in _formats(db_url):
        info = await backup(db_url, tmp_path / name)
        assert info.rows == {t: len(rows) for t, rows in before.items()}
        assert info.revision == HEAD  # the migrations' head, whatever it is after merges
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600  # it holds incident text and ids
        await mutate(db_url)
        assert await dump(db_url) != before

        with pytest.raises(RestoreRefused, match=r"not empty.*--force"):
            await restore(db_url, tmp_path / name)
        result = await restore(db_url, tmp_path / name, force=True)
        assert result.rows == info.rows and result.replaced > 0
        assert await dump(db_url) == before, name


async def test_new_rows_after_restore_get_fresh_ids(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    await backup(db_url, tmp_path / "b.jsonl.gz")
    await mutate(db_url)
    await restore(db_url, tmp_path / "b.jsonl.gz", force=True)
    db = Database(db_url)
    try:
        async with db.session() as s:
            event = TimelineEvent(incident_id="INC-20261123-183045", at=T0, kind="note", text="after restore")
            s.add(event)
            s.add(Signoff(role="ops", user_id="U04VPENG", plan_hash="b" * 64, at=T0))
            await s.flush()
            assert event.id == 26  # 25 seeded rows: the sequence continues after the restored ids
    finally:
        await db.dispose()


async def test_restore_into_an_empty_database_needs_no_force(
    db_url: str, tmp_path: Path, sqlite_template: Path
) -> None:
    """Also the SQLite -> PostgreSQL migration path when db_url is PostgreSQL."""
    source = tmp_path / "source.db"
    shutil.copy(sqlite_template, source)
    sqlite_url = f"sqlite+aiosqlite:///{source}"
    await seed(sqlite_url)
    await backup(sqlite_url, tmp_path / "from-sqlite.jsonl.gz")
    info = await restore(db_url, tmp_path / "from-sqlite.jsonl.gz")
    assert info.replaced == 0 and info.source_dialect == "sqlite"
    assert await dump(db_url) == await dump(sqlite_url)


async def test_backup_is_one_consistent_snapshot(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows committed while a backup runs are not in it, even in tables it has not read yet."""
    await seed(db_url)
    before = await dump(db_url)
    real_stream = dr._stream

    async def stream_then_write(conn: Any, table: Any) -> AsyncIterator[list[dict[str, Any]]]:
        async for batch in real_stream(conn, table):
            yield batch
        if table.name == "incidents":  # read: now another process commits an incident and its events
            await mutate(db_url)

    monkeypatch.setattr(dr, "_stream", stream_then_write)
    await backup(db_url, tmp_path / "b.jsonl.gz")
    monkeypatch.undo()
    assert await dump(db_url) != before
    await restore(db_url, tmp_path / "b.jsonl.gz", force=True)
    assert await dump(db_url) == before


def _rewrite(path: Path, edit: Any) -> None:
    lines = gzip.decompress(path.read_bytes()).split(b"\n")
    path.write_bytes(gzip.compress(b"\n".join(edit(lines))))


async def test_tampered_or_damaged_files_fail_the_integrity_check(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    good = tmp_path / "good.jsonl.gz"
    await backup(db_url, good)
    await mutate(db_url)
    after = await dump(db_url)

    def flip_text(lines: list[bytes]) -> list[bytes]:
        i = next(n for n, line in enumerate(lines) if b"note 7" in line)
        lines[i] = lines[i].replace(b"note 7", b"note 8")
        return lines

    def drop_row(lines: list[bytes]) -> list[bytes]:
        return [line for line in lines if b"note 7" not in line]

    cases = {"flip": (flip_text, "checksum mismatch"), "drop": (drop_row, "header says")}
    for name, (edit, message) in cases.items():
        bad = tmp_path / f"{name}.jsonl.gz"
        bad.write_bytes(good.read_bytes())
        _rewrite(bad, edit)
        with pytest.raises(CorruptBackup, match=message):
            await restore(db_url, bad, force=True)
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(good.read_bytes()[:-200])
    not_backup = tmp_path / "notes.jsonl.gz"
    not_backup.write_bytes(b"hello")
    for bad in (truncated, not_backup):
        with pytest.raises(CorruptBackup):
            await restore(db_url, bad, force=True)
    assert await dump(db_url) == after  # nothing was touched


async def test_other_schema_revision_is_refused(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    path = tmp_path / "b.jsonl.gz"
    await backup(db_url, path)

    def older(lines: list[bytes]) -> list[bytes]:
        header = json.loads(lines[0])
        header["revision"] = "0000"
        return [json.dumps(header).encode(), *lines[1:]]

    _rewrite(path, older)
    with pytest.raises(RestoreRefused, match=r"revision 0000.*migrate"):
        await restore(db_url, path, force=True)


async def test_sqlite_snapshot_is_checked_too(sqlite_url: str, tmp_path: Path) -> None:
    await seed(sqlite_url)
    snap = tmp_path / "snap.db"
    await backup(sqlite_url, snap)
    data = bytearray(snap.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for start in range(page, len(data), page):  # scribble over every b-tree page header after the first
        data[start : start + 8] = b"\xff" * 8
    snap.write_bytes(bytes(data))
    with pytest.raises(CorruptBackup):
        await restore(sqlite_url, snap, force=True)


@pytest.fixture
def env_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


async def test_cli_exit_codes(env_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await seed(env_db)
    before = await dump(env_db)
    path = tmp_path / "cli.jsonl.gz"
    counted = f"{sum(map(len, before.values()))} rows in {len(before)} tables"  # every table is seeded
    assert backup_main([str(path)]) == 0
    assert f"backup: {counted}" in capsys.readouterr().out
    assert restore_main(["--check", str(path)]) == 0
    assert "intact" in capsys.readouterr().out

    await mutate(env_db)
    assert restore_main([str(path)]) == 1
    assert "--force" in capsys.readouterr().err
    assert restore_main([str(path), "--force"]) == 0
    assert f"restore: {counted}" in capsys.readouterr().out
    assert await dump(env_db) == before

    _rewrite(path, lambda lines: [line.replace(b"note 3", b"note 4") for line in lines])
    assert restore_main([str(path), "--force"]) == 2
    assert restore_main(["--check", str(path)]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    if not env_db.startswith("sqlite"):
        assert backup_main([str(tmp_path / "x.db")]) == 1  # SQLite snapshots need a SQLite database
    assert restore_main([str(tmp_path / "missing.jsonl.gz")]) == 1
