"""Plans people can follow: each member's offer, one ledger of hours, declines remembered, routes with a time
that the planner revises, supersedes or withdraws (contributed_hours, never written, is dropped).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 18:09:07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from gateway.store.models.base import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: a later change of the vocabulary gets its own migration.
ROUTE_STATUSES = ("proposed", "accepted", "declined", "in_progress", "done", "superseded", "withdrawn")


def _listed(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def upgrade() -> None:
    op.create_table(
        "hours_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("work", sa.String(length=8), nullable=False),
        sa.Column("work_id", sa.Integer(), nullable=False),
        sa.Column("sector", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("hours", sa.Double(), nullable=False),
        sa.Column("actual_hours", sa.Double(), nullable=True),
        sa.Column("starts_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("started_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "sector IN ('water', 'food', 'health', 'energy', 'education', 'maintenance', 'governance', 'other')",
            name=op.f("ck_hours_entries_sector"),
        ),
        sa.CheckConstraint(
            "state IN ('offered', 'reserved', 'done', 'released')", name=op.f("ck_hours_entries_state")
        ),
        sa.CheckConstraint("work IN ('repair', 'route')", name=op.f("ck_hours_entries_work")),
        sa.CheckConstraint("ends_at >= starts_at", name=op.f("ck_hours_entries_interval")),
        sa.CheckConstraint(
            "hours >= 0 AND (actual_hours IS NULL OR actual_hours >= 0)", name=op.f("ck_hours_entries_hours")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_hours_entries_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hours_entries")),
        sa.UniqueConstraint(
            "work", "work_id", "member_id", name=op.f("uq_hours_entries_work_work_id_member_id")
        ),
    )
    with op.batch_alter_table("hours_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_hours_entries_member_id_starts_at", ["member_id", "starts_at"], unique=False
        )

    op.create_table(
        "declines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("until", UtcDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("route_id", sa.Integer(), nullable=True),
        sa.Column("good_id", sa.Integer(), nullable=True),
        sa.Column("from_site_id", sa.Integer(), nullable=True),
        sa.Column("to_site_id", sa.Integer(), nullable=True),
        sa.Column("withdrawn_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_site_id"], ["sites.id"], name=op.f("fk_declines_from_site_id_sites"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["good_id"], ["goods.id"], name=op.f("fk_declines_good_id_goods"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_declines_member_id_members"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["route_id"], ["routes.id"], name=op.f("fk_declines_route_id_routes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["repair_tasks.id"],
            name=op.f("fk_declines_task_id_repair_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_site_id"], ["sites.id"], name=op.f("fk_declines_to_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_declines")),
    )
    with op.batch_alter_table("declines", schema=None) as batch_op:
        batch_op.create_index("ix_declines_member_id_until", ["member_id", "until"], unique=False)

    op.drop_table("contributed_hours")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hours_per_year", sa.Double(), nullable=False, server_default="150"))
        batch_op.add_column(
            sa.Column(
                "sector_hours",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "preferred_sectors",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "away",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.create_check_constraint(op.f("ck_members_hours_per_year"), "hours_per_year >= 0")

    with op.batch_alter_table("repair_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("estimated_hours", sa.Double(), nullable=False, server_default="2"))
        batch_op.create_check_constraint(op.f("ck_repair_tasks_estimated_hours"), "estimated_hours > 0")

    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("starts_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("ends_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("replaces_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("created_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_routes_replaces_id_routes"), "routes", ["replaces_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.drop_constraint(op.f("ck_routes_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_routes_status"), f"status IN ({_listed(ROUTE_STATUSES)})")


def downgrade() -> None:
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_routes_status"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_routes_status"), f"status IN ({_listed(ROUTE_STATUSES[:5])})"
        )
        batch_op.drop_constraint(batch_op.f("fk_routes_replaces_id_routes"), type_="foreignkey")
        batch_op.drop_column("created_at")
        batch_op.drop_column("replaces_id")
        batch_op.drop_column("ends_at")
        batch_op.drop_column("starts_at")

    with op.batch_alter_table("repair_tasks", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_repair_tasks_estimated_hours"), type_="check")
        batch_op.drop_column("estimated_hours")

    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_members_hours_per_year"), type_="check")
        batch_op.drop_column("away")
        batch_op.drop_column("preferred_sectors")
        batch_op.drop_column("sector_hours")
        batch_op.drop_column("hours_per_year")

    op.create_table(
        "contributed_hours",
        sa.Column("member_id", sa.INTEGER(), nullable=False),
        sa.Column("sector", sa.VARCHAR(length=16), nullable=False),
        sa.Column("period_start", sa.DATE(), nullable=False),
        sa.Column("hours", sa.DOUBLE(), nullable=False),
        sa.CheckConstraint(
            "sector IN ('water', 'food', 'health', 'energy', 'education', 'maintenance', 'governance', 'other')",
            name=op.f("ck_contributed_hours_sector"),
        ),
        sa.CheckConstraint("hours >= 0", name=op.f("ck_contributed_hours_hours")),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_contributed_hours_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", "sector", "period_start", name=op.f("pk_contributed_hours")),
    )
    with op.batch_alter_table("declines", schema=None) as batch_op:
        batch_op.drop_index("ix_declines_member_id_until")

    op.drop_table("declines")
    with op.batch_alter_table("hours_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_hours_entries_member_id_starts_at")

    op.drop_table("hours_entries")
