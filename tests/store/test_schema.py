"""The models and the migrations describe the same schema, on SQLite and PostgreSQL, and the database itself
keeps each state machine's column to its states (CHECK constraints from migration 0002)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from bot.db import Database, make_engine
from bot.models import Base, Incident, OutboxMessage, Page, Timer
from bot.states import IncidentStatus, OutboxState, PageState, ProvisionState, TimerState


def _diff(connection: Any) -> list[Any]:
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


async def test_models_match_the_migrations(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
    finally:
        await engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def _checks(connection: Any) -> dict[str, set[str]]:
    insp = inspect(connection)
    return {t: {str(c["name"]) for c in insp.get_check_constraints(t)} for t in insp.get_table_names()}


async def test_every_model_check_constraint_is_in_the_database(db_url: str) -> None:
    """Autogenerate does not compare CHECK constraints, so this does."""
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            in_db = await conn.run_sync(_checks)
    finally:
        await engine.dispose()
    wanted = {
        t.name: {str(c.name) for c in t.constraints if c.__class__.__name__ == "CheckConstraint"}
        for t in Base.metadata.sorted_tables
    }
    assert any(wanted.values())
    for table, names in wanted.items():
        assert names <= in_db.get(table, set()), f"{table}: missing {names - in_db.get(table, set())}"


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _incident(ident: str, **kw: Any) -> Incident:
    return Incident(
        id=ident, severity="P1", summary="s", declared_by="U1", declared_at=NOW, updated_at=NOW, **kw
    )


# One row per state-machine column; the ORM validates nothing, so the database is what refuses a made-up state.
MAKE: dict[str, Callable[[str, str], list[Any]]] = {
    "incident_status": lambda n, v: [_incident(f"INC-{n}", status=v)],
    "provision_state": lambda n, v: [_incident(f"INC-{n}", provision_state=v)],
    "timer_state": lambda n, v: [Timer(kind="page", step=f"L{n}", due_at=NOW, state=v)],
    "page_state": lambda n, v: [
        _incident(f"INC-{n}"),
        Page(incident_id=f"INC-{n}", step="L1", level=1, due_at=NOW, state=v),
    ],
    "outbox_state": lambda n, v: [
        OutboxMessage(channel="C1", method="post", state=v, next_attempt_at=NOW, created_at=NOW)
    ],
}
GOOD = {
    "incident_status": IncidentStatus.INVESTIGATING,
    "provision_state": ProvisionState.READY,
    "timer_state": TimerState.DROPPED,
    "page_state": PageState.UNKNOWN,
    "outbox_state": OutboxState.SENDING,
}


@pytest.mark.parametrize("column", sorted(MAKE))
async def test_the_database_refuses_a_state_outside_its_machine(db_url: str, column: str) -> None:
    db = Database(db_url)
    try:
        async with db.session() as s:
            s.add_all(MAKE[column]("1", GOOD[column]))
        with pytest.raises(IntegrityError):
            async with db.session() as s:
                s.add_all(MAKE[column]("2", "BOGUS"))
    finally:
        await db.dispose()


def test_page_states_are_the_ones_the_escalation_writes() -> None:
    assert {s.value for s in PageState} == {"sending", "sent", "failed", "unknown"}
