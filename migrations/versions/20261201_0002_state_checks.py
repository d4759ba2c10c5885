"""State machines kept to their states (CHECK constraints), the outbox's per-channel index.

The states are frozen copies of bot.states (a migration must not change when the code does); a state added
later comes with a migration that replaces the constraint. tests/store/test_schema.py checks that the
constraints exist and refuse a state outside the enum.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (table, constraint name, column, states): frozen copies of bot.states at the time of writing.
CHECKS = (
    ("incidents", "status", "status", ("NEW", "INVESTIGATING", "IDENTIFIED", "MONITORING", "RESOLVED")),
    ("incidents", "provision_state", "provision_state", ("pending", "ready", "failed")),
    ("timers", "state", "state", ("pending", "claimed", "done", "dropped", "failed")),
    ("pages", "state", "state", ("sending", "sent", "failed", "unknown")),
    ("outbox", "state", "state", ("pending", "sending", "sent", "failed")),
)


def _sql(column: str, states: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(s) for s in states)})"


def upgrade() -> None:
    for table, name, column, states in CHECKS:
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_check_constraint(op.f(f"ck_{table}_{name}"), _sql(column, states))
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.create_index("ix_outbox_channel_id", ["channel", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_index("ix_outbox_channel_id")
    for table, name, _column, _states in reversed(CHECKS):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
