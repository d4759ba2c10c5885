"""alert_states: the monitor's alert state per problem

(Named alert_states, not alerts: the Grafana/Alertmanager webhooks keep their alerts in a table of that name.)

Revision ID: 0006
Revises: 0002
Create Date: 2026-12-01 20:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of bot.states.MonitorAlertState at the time of writing (see migration 0002).
STATES = ("inactive", "pending", "firing", "resolving")


def upgrade() -> None:
    op.create_table(
        "alert_states",
        sa.Column("problem_key", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("incident_id", sa.String(length=40), nullable=True),
        sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("firing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolving_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sample_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failing_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_samples", sa.Integer(), nullable=False),
        sa.Column("flaps", sa.Integer(), nullable=False),
        sa.Column("tick_owner", sa.String(length=64), nullable=True),
        sa.Column("tick_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            f"state IN ({', '.join(repr(s) for s in STATES)})", name=op.f("ck_alert_states_state")
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_alert_states_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("problem_key", name=op.f("pk_alert_states")),
    )


def downgrade() -> None:
    op.drop_table("alert_states")
