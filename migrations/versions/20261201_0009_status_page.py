"""status page

Revision ID: 0009
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of bot.states (ComponentState, PublicIncidentStatus, StatusUpdateState) at the time of
# writing: a migration must not change when the code does.
COMPONENT_STATES = ("operational", "degraded", "partial_outage", "major_outage")
INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")
UPDATE_STATES = ("draft", "awaiting_approval", "published", "discarded")


def _check(table: str, column: str, states: tuple[str, ...]) -> sa.CheckConstraint:
    sql = f"{column} IN ({', '.join(repr(s) for s in states)})"
    return sa.CheckConstraint(sql, name=op.f(f"ck_{table}_{column}"))


def upgrade() -> None:
    op.create_table(
        "status_component_changes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("component", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_component_changes")),
        _check("status_component_changes", "state", COMPONENT_STATES),
    )
    with op.batch_alter_table("status_component_changes", schema=None) as batch_op:
        batch_op.create_index("ix_status_component_changes_component_at", ["component", "at"], unique=False)

    op.create_table(
        "status_components",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("automated_state", sa.String(length=16), nullable=True),
        sa.Column("automated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("automated_reason", sa.Text(), nullable=False),
        sa.Column("effective", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_status_components")),
        _check("status_components", "state", COMPONENT_STATES),
        _check("status_components", "automated_state", COMPONENT_STATES),
        _check("status_components", "effective", COMPONENT_STATES),
    )
    op.create_table(
        "status_maintenance",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_maintenance")),
    )
    op.create_table(
        "status_subscribers",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_subscribers")),
    )
    op.create_table(
        "status_incidents",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("incident_id", sa.String(length=40), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("impact", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_status_incidents_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_incidents")),
        sa.UniqueConstraint("incident_id", name=op.f("uq_status_incidents_incident_id")),
        _check("status_incidents", "status", INCIDENT_STATUSES),
        _check("status_incidents", "impact", COMPONENT_STATES),
    )
    op.create_table(
        "status_updates",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("incident_id", sa.String(length=40), nullable=True),
        sa.Column("status_incident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("author", sa.String(length=32), nullable=False),
        sa.Column("approved_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("preview_token", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_status_updates_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["status_incident_id"],
            ["status_incidents.id"],
            name=op.f("fk_status_updates_status_incident_id_status_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_updates")),
        sa.UniqueConstraint("preview_token", name=op.f("uq_status_updates_preview_token")),
        _check("status_updates", "state", UPDATE_STATES),
        _check("status_updates", "status", INCIDENT_STATUSES),
    )
    with op.batch_alter_table("status_updates", schema=None) as batch_op:
        batch_op.create_index("ix_status_updates_state_published", ["state", "published_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("status_updates", schema=None) as batch_op:
        batch_op.drop_index("ix_status_updates_state_published")

    op.drop_table("status_updates")
    op.drop_table("status_incidents")
    op.drop_table("status_subscribers")
    op.drop_table("status_maintenance")
    op.drop_table("status_components")
    with op.batch_alter_table("status_component_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_status_component_changes_component_at")

    op.drop_table("status_component_changes")
