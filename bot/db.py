"""Engine and session factory. Dialect-specific behaviour (SQLite locking, claim queries) lives here, once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.textclean import clean_parameters


class DatabaseUnavailable(Exception):
    """The database could not be reached; callers answer 'temporarily unavailable'."""


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, **kw: Any) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kw)
        _sqlite_write_locks(engine)
    else:
        kw.setdefault("pool_pre_ping", True)
        kw.setdefault("pool_size", 20)  # >= the worker's concurrent pages, so bursts reuse connections
        kw.setdefault("max_overflow", 10)
        engine = create_async_engine(url, connect_args={"timeout": 5, "command_timeout": 30}, **kw)
    _storable_text(engine)
    return engine


def _storable_text(engine: AsyncEngine) -> None:
    # NUL and lone surrogates never reach a table, whatever path the text took (ORM, Core insert, bulk):
    # PostgreSQL would refuse the statement and the user's action would be lost. See bot/textclean.py.
    @event.listens_for(engine.sync_engine, "before_cursor_execute", retval=True)
    def _clean(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> Any:
        return statement, clean_parameters(parameters)


def _sqlite_write_locks(engine: AsyncEngine) -> None:
    # pysqlite begins transactions lazily, so two writers that both read first deadlock on upgrade
    # ("database is locked" despite busy_timeout). BEGIN IMMEDIATE takes the write lock up front and the
    # busy timeout then queues writers (web and worker processes) instead of failing them.
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """Owns the engine; `session()` gives a transaction that commits on success and rolls back on error."""

    def __init__(self, url: str, **engine_kw: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kw)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        try:
            async with self.sessionmaker() as s, s.begin():
                yield s
        except (OSError, ConnectionError) as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        except Exception as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(str(exc)) from exc
            raise

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # A connection cut mid-statement arrives as a plain DBAPIError wrapping asyncpg's
    # ConnectionDoesNotExistError / "connection is closed" or a reset socket: an outage too, not a bug.
    cause: BaseException | None = exc
    for _ in range(8):
        if cause is None:
            break
        if isinstance(cause, OSError | ConnectionError) or type(cause).__name__ in (
            "ConnectionDoesNotExistError",
            "ConnectionFailureError",
        ):
            return True
        if type(cause).__name__ == "InterfaceError" and "closed" in str(cause).lower():
            return True
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, InterfaceError | OperationalError):
        msg = str(exc).lower()
        return any(
            w in msg for w in ("connect", "closed", "refused", "timeout", "unable to open", "terminat")
        )
    return False
