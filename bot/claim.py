"""The one claim query, for timers and outbox rows alike.

PostgreSQL: `FOR UPDATE SKIP LOCKED` in the inner SELECT lets several workers claim disjoint rows at once.
SQLite: BEGIN IMMEDIATE (see bot.db) serialises writers, so the same UPDATE … RETURNING is atomic there too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import InstrumentedAttribute

from bot.db import Database
from bot.models import Base

Row = TypeVar("Row", bound=Base)


async def claim_rows(
    db: Database,
    model: type[Row],
    *,
    where: Sequence[ColumnElement[bool]],
    order_by: Sequence[InstrumentedAttribute[Any]],
    limit: int,
    values: dict[str, Any],
) -> list[Row]:
    """Mark up to `limit` rows matching `where` (oldest by `order_by` first) with `values`, atomically, and
    return them in `order_by` order. Rows another worker holds locked are skipped, not waited for."""
    ident: Any = model.id  # type: ignore[attr-defined]
    inner = select(ident).where(*where).order_by(*order_by).limit(limit)
    if db.dialect == "postgresql":
        inner = inner.with_for_update(skip_locked=True)
    stmt = (
        update(model)
        .where(ident.in_(inner.scalar_subquery()))
        .values(**values)
        .returning(model)
        .execution_options(synchronize_session=False)
    )
    async with db.session() as s:
        rows = list((await s.execute(stmt)).scalars())
    return sorted(rows, key=lambda r: tuple(getattr(r, c.key) for c in order_by))


log = logging.getLogger("incident_bot.claim")


async def keep_claim(
    stop: asyncio.Event, every: float, renew: Callable[[], Awaitable[bool]], what: str
) -> None:
    """While a claimed row's work runs: call `renew` every `every` seconds until `stop` is set or `renew`
    says the claim is not ours any more. Stopped through the event, never cancelled: a renewal cancelled
    inside its database call can leave the pooled connection mid-transaction (SQLite then holds its lock and
    the engine cannot be disposed). A failed renewal is logged; the work's own writes will tell."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), every)
            return
        except TimeoutError:
            pass
        try:
            if not await renew():
                return
        except Exception as exc:
            log.warning("could not renew the claim on %s: %s", what, exc)
