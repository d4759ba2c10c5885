"""`incident-bot backup FILE` and `incident-bot restore FILE [--force]` for SQLite and PostgreSQL.

Two file formats, chosen by the backup file's name:

* portable (any name; by convention `.jsonl.gz`): gzip'd JSON lines. Line 1 is a header (format, version,
  Alembic revision, source dialect, and per table its columns, row count and sha256); then one line per row,
  `{"t": table, "r": [values in column order]}`, tables in foreign-key order. Datetimes are ISO 8601 with
  their UTC offset, dates ISO. Every table is read inside ONE snapshot transaction (PostgreSQL REPEATABLE READ
  READ ONLY; SQLite a deferred read transaction, a WAL snapshot), so the bot keeps writing during a backup and
  the copy is still consistent. It restores into either dialect, which is also how SQLite -> PostgreSQL works.
* SQLite snapshot (`.db`, `.sqlite`, `.sqlite3`; SQLite source only): SQLite's online backup API, giving a
  database file that opens as is. `restore` accepts it too, after `PRAGMA integrity_check`.

Restore checks everything before it writes: the per-table checksums and counts (or the SQLite integrity
check), that the backup's schema revision equals the database's, and that the database is empty unless
`--force`. It then replaces all rows in one transaction, so a failure leaves the old data in place.
Exit codes: 0 done, 1 refused or failed (nothing changed), 2 the file is corrupt.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from sqlalchemy import Column, Date, DateTime, Table, TypeDecorator, event, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot import __version__
from bot.config import get_settings
from bot.db import is_sqlite, make_engine
from bot.models import Base

FORMAT = "incident-bot-backup"
VERSION = 1
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
SQLITE_MAGIC = b"SQLite format 3\x00"
BATCH = 1000
EXIT_OK, EXIT_REFUSED, EXIT_CORRUPT = 0, 1, 2
# Foreign-key order: parents first. Restore inserts in this order and deletes in the reverse.
TABLES: list[Table] = list(Base.metadata.sorted_tables)

T = TypeVar("T")


class BackupError(Exception):
    """The operation was refused or failed; nothing was changed."""

    exit_code = EXIT_REFUSED


class RestoreRefused(BackupError):
    pass


class CorruptBackup(BackupError):
    exit_code = EXIT_CORRUPT


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    format: str  # "portable" | "sqlite"
    dialect: str
    revision: str
    rows: dict[str, int]
    size_bytes: int
    seconds: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> str:
        return (
            f"backup: {self.total_rows:,} rows in {len(self.rows)} tables "
            f"({self.dialect}, schema {self.revision}) -> {self.path} "
            f"[{self.format}, {self.size_bytes / 1e6:.1f} MB] in {self.seconds:.2f} s"
        )


@dataclass(frozen=True)
class RestoreInfo:
    path: Path
    format: str
    source_dialect: str
    dialect: str
    revision: str
    rows: dict[str, int]
    replaced: int  # rows that were in the database before (--force)
    seconds: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> str:
        replaced = f", replaced {self.replaced:,} rows" if self.replaced else ""
        return (
            f"restore: {self.total_rows:,} rows in {len(self.rows)} tables from {self.path} "
            f"[{self.format}, {self.source_dialect}, schema {self.revision}] into {self.dialect} "
            f"in {self.seconds:.2f} s{replaced}"
        )


# ---------------------------------------------------------------------------------------------------- helpers


def _sqlite_file(url: str) -> Path | None:
    if not is_sqlite(url):
        return None
    db = make_url(url).database
    return Path(db) if db and db != ":memory:" and not db.startswith("file:") else None


def _require_sqlite_file(url: str) -> None:
    # Connecting to a missing SQLite path would silently create an empty database.
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        raise BackupError(f"no SQLite database at {path}")


def _snapshot_engine(url: str) -> AsyncEngine:
    """An engine whose transactions only read. make_engine's SQLite engine begins IMMEDIATE (a write lock) and
    would stall the bot's writers for the whole backup; a deferred BEGIN on WAL reads a snapshot instead."""
    if not is_sqlite(url):
        return make_engine(url, pool_size=1, max_overflow=0)
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


async def _read_only(conn: AsyncConnection) -> AsyncConnection:
    if conn.dialect.name == "postgresql":
        # One snapshot for every table; READ ONLY so a mistake here can never write.
        await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return conn


async def _revision(conn: AsyncConnection) -> str | None:
    if not await conn.run_sync(lambda c: inspect(c).has_table("alembic_version")):
        return None
    versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    return ",".join(sorted(versions)) or None


async def _counts(conn: AsyncConnection) -> dict[str, int]:
    counts = {}
    for t in TABLES:
        counts[t.name] = int((await conn.execute(select(func.count()).select_from(t))).scalar_one())
    return counts


async def _stream(conn: AsyncConnection, table: Table) -> AsyncIterator[list[dict[str, Any]]]:
    stmt = select(*table.c).order_by(*table.primary_key.columns).execution_options(yield_per=BATCH)
    result = await conn.stream(stmt)
    async for part in result.mappings().partitions(BATCH):
        yield [dict(r) for r in part]


def _json_default(value: Any) -> str:
    if isinstance(value, datetime | date):  # datetime first is implied: isoformat keeps the offset
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a backup")


def _decoder(col: Column[Any]) -> Callable[[Any], Any]:
    """JSON gives back strings for datetimes and dates; everything else (JSON, bool, numbers) is as stored."""
    kind = col.type.impl if isinstance(col.type, TypeDecorator) else col.type
    if isinstance(kind, DateTime):
        return lambda v: None if v is None else datetime.fromisoformat(v).astimezone(UTC)
    if isinstance(kind, Date):
        return lambda v: None if v is None else date.fromisoformat(v)
    return lambda v: v


def _file_uri(path: Path) -> str:
    return path.absolute().as_uri()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from inside a running loop (tests call the CLI entry points from async code)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _fsync_replace(tmp: Path, final: Path) -> None:
    # Owner-only: a backup holds incident text, Slack ids, and check details that can carry reportUrls
    # (with the Factory API key in their path).
    tmp.chmod(0o600)
    # A crash mid-backup must never leave a half-written file under the final name.
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


# ---------------------------------------------------------------------------------------------------- backup


async def backup(db_url: str, path: str | Path) -> BackupInfo:
    """Write a consistent copy of every bot table to `path` (format by suffix, see the module doc)."""
    path = Path(path)
    _require_sqlite_file(db_url)
    if path.suffix.lower() in SQLITE_SUFFIXES:
        if not is_sqlite(db_url):
            raise BackupError(f"{path.suffix} snapshots need a SQLite database; use a .jsonl.gz name instead")
        return await asyncio.to_thread(_backup_sqlite, db_url, path)
    return await _backup_portable(db_url, path)


async def _backup_portable(db_url: str, path: Path) -> BackupInfo:
    started = time.perf_counter()
    tables: dict[str, dict[str, Any]] = {}
    # Rows go to a scratch file first: the header, which carries their checksums, must come first in the file.
    with tempfile.TemporaryFile(dir=path.parent) as body:
        engine = _snapshot_engine(db_url)
        try:
            async with engine.connect() as conn:
                await _read_only(conn)
                async with conn.begin():
                    revision = await _revision(conn)
                    if revision is None:
                        raise BackupError(
                            "the database has no schema revision: not an incident-bot database?"
                        )
                    for table in TABLES:
                        digest, n = hashlib.sha256(), 0
                        async for batch in _stream(conn, table):
                            for row in batch:
                                line = _encode_row(table.name, list(row.values()))
                                digest.update(line)
                                body.write(line)
                                n += 1
                        tables[table.name] = {
                            "columns": list(table.c.keys()),
                            "rows": n,
                            "sha256": digest.hexdigest(),
                        }
                dialect = conn.dialect.name
        finally:
            await engine.dispose()
        header = {
            "format": FORMAT,
            "version": VERSION,
            "revision": revision,
            "created_at": datetime.now(UTC).isoformat(),
            "dialect": dialect,
            "bot_version": __version__,
            "tables": tables,
        }
        size = await asyncio.to_thread(_write_portable, path, header, body)
    return BackupInfo(
        path=path,
        format="portable",
        dialect=dialect,
        revision=revision,
        rows={name: meta["rows"] for name, meta in tables.items()},
        size_bytes=size,
        seconds=time.perf_counter() - started,
    )


def _encode_row(table: str, values: list[Any]) -> bytes:
    row = {"t": table, "r": values}
    return (json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=_json_default) + "\n").encode()


def _write_portable(path: Path, header: dict[str, Any], body: IO[bytes]) -> int:
    tmp = path.with_name(path.name + ".partial")
    try:
        body.seek(0)
        # compresslevel 6: most of level 9's size at a fraction of its time.
        with gzip.open(tmp, "wb", compresslevel=6) as out:
            out.write(json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
            shutil.copyfileobj(body, out, 1 << 20)
        _fsync_replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.stat().st_size


def _backup_sqlite(db_url: str, path: Path) -> BackupInfo:
    started = time.perf_counter()
    source = _sqlite_file(db_url)
    if source is None:
        raise BackupError("a SQLite snapshot needs a database file, not an in-memory database")
    tmp = path.with_name(path.name + ".partial")
    tmp.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            dst = sqlite3.connect(tmp)
            try:
                # The online backup API copies a consistent image while the bot keeps running; with pages=-1
                # it is one step, so concurrent writes cannot make it restart.
                src.backup(dst, pages=-1)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
                revision, rows = _sqlite_file_facts(dst)
            finally:
                dst.close()
        finally:
            src.close()
        _fsync_replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return BackupInfo(
        path=path,
        format="sqlite",
        dialect="sqlite",
        revision=revision,
        rows=rows,
        size_bytes=path.stat().st_size,
        seconds=time.perf_counter() - started,
    )


def _sqlite_file_facts(conn: sqlite3.Connection) -> tuple[str, dict[str, int]]:
    """Check a SQLite file's integrity and read its revision and row counts."""
    problems = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    if problems != ["ok"]:
        raise CorruptBackup(f"SQLite integrity check failed: {'; '.join(problems[:3])}")
    if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
        raise CorruptBackup("SQLite foreign key check failed: rows point at missing parents")
    try:
        versions = [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
        rows = {t.name: int(conn.execute(f'SELECT count(*) FROM "{t.name}"').fetchone()[0]) for t in TABLES}
    except sqlite3.DatabaseError as exc:
        raise CorruptBackup(f"not an incident-bot database ({exc})") from exc
    if not versions:
        raise CorruptBackup("not an incident-bot database (no schema revision)")
    return ",".join(sorted(versions)), rows


# ---------------------------------------------------------------------------------------------------- restore


@dataclass
class _Source:
    """What a backup file holds, after its integrity check; `batches()` yields its rows in FK order."""

    path: Path
    format: str
    dialect: str
    revision: str
    columns: dict[str, list[str]]
    rows: dict[str, int]

    def batches(self) -> AsyncIterator[tuple[Table, list[dict[str, Any]]]]:
        return _portable_batches(self.path) if self.format == "portable" else _sqlite_batches(self.path)


def verify(path: str | Path) -> _Source:
    """Check a backup file without touching any database. Raises CorruptBackup (or BackupError)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            magic = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if magic == SQLITE_MAGIC:
        return _verify_sqlite(path)
    return _verify_portable(path)


def _verify_sqlite(path: Path) -> _Source:
    try:
        conn = sqlite3.connect(f"{_file_uri(path)}?mode=ro", uri=True)
        try:
            revision, rows = _sqlite_file_facts(conn)
            columns = {t.name: [r[1] for r in conn.execute(f'PRAGMA table_info("{t.name}")')] for t in TABLES}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise CorruptBackup(f"{path}: unreadable SQLite file ({exc})") from exc
    return _Source(path, "sqlite", "sqlite", revision, columns, rows)


def _portable_lines(path: Path) -> Iterator[bytes]:
    try:
        with gzip.open(path, "rb") as f:
            yield from f
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, truncated, bad CRC
        raise CorruptBackup(f"{path}: damaged or not a backup ({exc})") from exc


def _parse(line: bytes, what: str) -> Any:
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptBackup(f"bad {what}: {exc}") from exc


def _header(lines: Iterator[bytes], path: Path) -> dict[str, Any]:
    header = _parse(next(lines, b""), "header")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CorruptBackup(f"{path} is not an incident-bot backup")
    if header.get("version") != VERSION:
        raise RestoreRefused(f"{path} is format version {header.get('version')}; this build reads {VERSION}")
    tables = header.get("tables")
    if not isinstance(tables, dict) or not all(
        isinstance(m, dict) and {"columns", "rows", "sha256"} <= m.keys() for m in tables.values()
    ):
        raise CorruptBackup(f"{path}: malformed header")
    return header


def _verify_portable(path: Path) -> _Source:
    lines = _portable_lines(path)
    header = _header(lines, path)
    meta: dict[str, dict[str, Any]] = header["tables"]
    order = list(meta)
    digests = {name: hashlib.sha256() for name in order}
    counts = dict.fromkeys(order, 0)
    at = 0
    for line in lines:
        row = _parse(line, f"row after {sum(counts.values())} rows")
        name = row.get("t") if isinstance(row, dict) else None
        if name not in meta:
            raise CorruptBackup(f"row for unknown table {name!r}")
        if order.index(name) < at:
            raise CorruptBackup(f"rows of {name} out of order")
        at = order.index(name)
        if not isinstance(row.get("r"), list) or len(row["r"]) != len(meta[name]["columns"]):
            raise CorruptBackup(f"a {name} row has the wrong number of values")
        digests[name].update(line)
        counts[name] += 1
    for name in order:
        if counts[name] != meta[name]["rows"]:
            raise CorruptBackup(f"{name}: {counts[name]} rows, header says {meta[name]['rows']} (truncated?)")
        if digests[name].hexdigest() != meta[name]["sha256"]:
            raise CorruptBackup(f"{name}: checksum mismatch, the file was altered or damaged")
    return _Source(
        path,
        "portable",
        str(header.get("dialect")),
        str(header.get("revision")),
        {n: list(m["columns"]) for n, m in meta.items()},
        {n: int(m["rows"]) for n, m in meta.items()},
    )


async def _portable_batches(path: Path) -> AsyncIterator[tuple[Table, list[dict[str, Any]]]]:
    lines = _portable_lines(path)
    header = _header(lines, path)
    by_name = {t.name: t for t in TABLES}
    current: Table | None = None
    decoders: list[tuple[str, Callable[[Any], Any]]] = []
    batch: list[dict[str, Any]] = []
    for line in lines:
        row = json.loads(line)
        table = by_name[row["t"]]
        if table is not current:
            if batch and current is not None:
                yield current, batch
            current, batch = table, []
            decoders = [(c, _decoder(table.c[c])) for c in header["tables"][table.name]["columns"]]
        try:
            batch.append({c: dec(v) for (c, dec), v in zip(decoders, row["r"], strict=True)})
        except (ValueError, TypeError) as exc:
            raise CorruptBackup(f"{table.name}: undecodable value ({exc})") from exc
        if len(batch) >= BATCH:
            yield table, batch
            batch = []
    if batch and current is not None:
        yield current, batch


async def _sqlite_batches(path: Path) -> AsyncIterator[tuple[Table, list[dict[str, Any]]]]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{_file_uri(path)}?mode=ro&uri=true")
    try:
        async with engine.connect() as conn:
            for table in TABLES:
                async for batch in _stream(conn, table):
                    yield table, batch
    finally:
        await engine.dispose()


async def restore(db_url: str, path: str | Path, force: bool = False) -> RestoreInfo:
    """Replace the database's rows with the backup's. Refuses (RestoreRefused) on a schema revision
    mismatch or a non-empty database without `force`; raises CorruptBackup, before any write, if the file
    fails its check."""
    started = time.perf_counter()
    path = Path(path)
    target_file = _sqlite_file(db_url)
    if target_file is not None and target_file.exists() and target_file.resolve() == path.resolve():
        raise RestoreRefused("the backup file is the database itself")
    _require_sqlite_file(db_url)
    source = await asyncio.to_thread(verify, path)
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, the write lock is ours from here on
            dialect = conn.dialect.name
            await _check_schema(conn, source)
            if dialect == "postgresql":
                # Keep a still-running web or worker process from writing between our check and commit.
                await conn.execute(text("SET LOCAL lock_timeout = '10s'"))
                names = ", ".join(f'"{t.name}"' for t in TABLES)
                await conn.execute(text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))
            existing = await _counts(conn)
            replaced = sum(existing.values())
            if replaced and not force:
                busy = ", ".join(f"{n} {c:,}" for n, c in existing.items() if c)
                raise RestoreRefused(f"the database is not empty ({busy}); pass --force to replace it")
            for table in reversed(TABLES):
                await conn.execute(table.delete())
            restored = dict.fromkeys(source.rows, 0)
            async for table, batch in source.batches():
                await conn.execute(table.insert(), batch)
                restored[table.name] += len(batch)
            if restored != source.rows:
                raise CorruptBackup(f"read {restored} rows, expected {source.rows}")
            if dialect == "postgresql":
                await _reset_sequences(conn)
    except SQLAlchemyError as exc:
        if "lock timeout" in str(exc).lower():
            raise RestoreRefused("tables are busy: stop the web and worker processes, then retry") from exc
        raise
    finally:
        await engine.dispose()
    return RestoreInfo(
        path=path,
        format=source.format,
        source_dialect=source.dialect,
        dialect=dialect,
        revision=source.revision,
        rows=restored,
        replaced=replaced,
        seconds=time.perf_counter() - started,
    )


async def _check_schema(conn: AsyncConnection, source: _Source) -> None:
    revision = await _revision(conn)
    if revision is None:
        raise RestoreRefused("the database has no schema: run `incident-bot migrate` first")
    if revision != source.revision:
        raise RestoreRefused(
            f"the backup is at schema revision {source.revision}, the database at {revision}: run "
            f"`incident-bot migrate --revision {source.revision}` (or --downgrade) on an empty database, "
            "restore, then migrate to head"
        )
    # Same tables in the same (foreign-key) order, since rows are inserted in file order; same columns.
    if [(n, sorted(c)) for n, c in source.columns.items()] != [(t.name, sorted(t.c.keys())) for t in TABLES]:
        raise RestoreRefused("the backup's tables or columns differ from this build's schema")


async def _reset_sequences(conn: AsyncConnection) -> None:
    # Rows came in with their ids; without this the next INSERT would draw id 1 and collide.
    for table in TABLES:
        col = table.autoincrement_column
        if col is None:
            continue
        await conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', '{col.name}'), "
                f'COALESCE((SELECT MAX("{col.name}") FROM "{table.name}"), 0) + 1, false)'
            )
        )


# ---------------------------------------------------------------------------------------------------- CLI


def _database_url(arg: str | None) -> str:
    return arg or get_settings().database_url


def _fail(cmd: str, exc: BaseException) -> int:
    if isinstance(exc, BackupError):
        print(f"incident-bot {cmd}: {exc}", file=sys.stderr)
        return exc.exit_code
    detail = str(exc).splitlines()[0] if str(exc) else repr(exc)
    print(f"incident-bot {cmd}: failed, nothing changed: {detail}", file=sys.stderr)
    return EXIT_REFUSED


def backup_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="incident-bot backup",
        description="Back up the bot's database: FILE.jsonl.gz (portable, SQLite or PostgreSQL) or "
        "FILE.db (SQLite online-backup snapshot).",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--database-url", help="database to back up (default: DATABASE_URL)")
    args = p.parse_args(argv)
    try:
        info = _run(backup(_database_url(args.database_url), args.file))
    except (BackupError, SQLAlchemyError, OSError) as exc:
        return _fail("backup", exc)
    print(info.summary())
    return EXIT_OK


def restore_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="incident-bot restore",
        description="Restore a backup made by `incident-bot backup`. Stop the web and worker processes first",
        epilog="exit status: 0 restored, 1 refused or failed (nothing changed), 2 corrupt backup file",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--force", action="store_true", help="replace the rows of a non-empty database")
    p.add_argument("--check", action="store_true", help="only verify the file; touch no database")
    p.add_argument("--database-url", help="database to restore into (default: DATABASE_URL)")
    args = p.parse_args(argv)
    try:
        if args.check:
            src = verify(args.file)
            print(
                f"restore --check: {args.file} is intact [{src.format}, {src.dialect}, schema {src.revision}]"
                f", {sum(src.rows.values()):,} rows in {len(src.rows)} tables"
            )
            return EXIT_OK
        info = _run(restore(_database_url(args.database_url), args.file, force=args.force))
    except (BackupError, SQLAlchemyError, OSError) as exc:
        return _fail("restore", exc)
    print(info.summary())
    return EXIT_OK
