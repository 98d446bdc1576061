"""The open task board: tasks of every sector with their slots, occurrences and signups; monthly sector
goals; a private calendar address per member; declines of board tasks; hours entries for board work.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 21:08:23.429598
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from gateway.store.models.base import UtcDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sector_goals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=True),
        sa.Column("sector", sa.String(length=16), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("target", sa.Double(), nullable=False),
        sa.Column("set_by", sa.String(length=48), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('hours', 'slots')", name=op.f("ck_sector_goals_kind")),
        sa.CheckConstraint(
            "sector IN ('food', 'education', 'health', 'maintenance', 'governance', 'other')",
            name=op.f("ck_sector_goals_sector"),
        ),
        sa.CheckConstraint("target > 0", name=op.f("ck_sector_goals_target")),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_sector_goals_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sector_goals")),
        sa.UniqueConstraint(
            "community_id",
            "sector",
            "month",
            "kind",
            name=op.f("uq_sector_goals_community_id_sector_month_kind"),
        ),
    )
    op.create_table(
        "board_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("sector", sa.String(length=16), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("starts_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "recurrence",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("hours_per_slot", sa.Double(), nullable=False),
        sa.Column("urgency", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("poster_kind", sa.String(length=12), nullable=False),
        sa.Column("poster_name", sa.String(length=200), nullable=False),
        sa.Column("posted_by_member_id", sa.Integer(), nullable=True),
        sa.Column("posted_by_account", sa.String(length=48), nullable=False),
        sa.Column("cancel_reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "poster_kind IN ('member', 'guild', 'assembly', 'coordinator')",
            name=op.f("ck_board_tasks_poster_kind"),
        ),
        sa.CheckConstraint(
            "sector IN ('food', 'education', 'health', 'maintenance', 'governance', 'other')",
            name=op.f("ck_board_tasks_sector"),
        ),
        sa.CheckConstraint("status IN ('open', 'cancelled', 'done')", name=op.f("ck_board_tasks_status")),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_board_tasks_interval")),
        sa.CheckConstraint("hours_per_slot > 0", name=op.f("ck_board_tasks_hours_per_slot")),
        sa.CheckConstraint(
            "lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name=op.f("ck_board_tasks_coordinates")
        ),
        sa.CheckConstraint("urgency BETWEEN 0 AND 3", name=op.f("ck_board_tasks_urgency")),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_board_tasks_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["posted_by_member_id"],
            ["members.id"],
            name=op.f("fk_board_tasks_posted_by_member_id_members"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_board_tasks_site_id_sites"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_board_tasks")),
    )
    with op.batch_alter_table("board_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_board_tasks_community_id"), ["community_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_board_tasks_status_ends_at"), ["status", "ends_at"], unique=False
        )

    op.create_table(
        "task_shifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("urgent_alerted_at", UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'cancelled', 'done')", name=op.f("ck_task_shifts_status")),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_task_shifts_interval")),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["board_tasks.id"],
            name=op.f("fk_task_shifts_task_id_board_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_shifts")),
        sa.UniqueConstraint("task_id", "starts_at", name=op.f("uq_task_shifts_task_id_starts_at")),
    )
    with op.batch_alter_table("task_shifts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_shifts_starts_at"), ["starts_at"], unique=False)

    op.create_table(
        "task_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("skill", sa.String(length=48), nullable=True),
        sa.Column("newcomer", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["board_tasks.id"],
            name=op.f("fk_task_slots_task_id_board_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_slots")),
        sa.UniqueConstraint("task_id", "position", name=op.f("uq_task_slots_task_id_position")),
    )
    with op.batch_alter_table("task_slots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_slots_task_id"), ["task_id"], unique=False)

    op.create_table(
        "slot_signups",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shift_id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("explanation", sa.String(length=500), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('suggested', 'taken', 'declined', 'released', 'lapsed', 'done')",
            name=op.f("ck_slot_signups_state"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_slot_signups_member_id_members"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["shift_id"],
            ["task_shifts.id"],
            name=op.f("fk_slot_signups_shift_id_task_shifts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"],
            ["task_slots.id"],
            name=op.f("fk_slot_signups_slot_id_task_slots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slot_signups")),
    )
    with op.batch_alter_table("slot_signups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_slot_signups_member_id_state"), ["member_id", "state"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_slot_signups_shift_id"), ["shift_id"], unique=False)
        batch_op.create_index(
            "uq_slot_signups_live_place",
            ["shift_id", "slot_id"],
            unique=True,
            postgresql_where=sa.text("state IN ('suggested', 'taken', 'done')"),
            sqlite_where=sa.text("state IN ('suggested', 'taken', 'done')"),
        )

    with op.batch_alter_table("declines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("board_task_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_declines_board_task_id_board_tasks"),
            "board_tasks",
            ["board_task_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("calendar_token", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_members_calendar_token"), ["calendar_token"])

    with op.batch_alter_table("hours_entries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_hours_entries_work"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_hours_entries_work"), "work IN ('repair', 'route', 'task')"
        )


def downgrade() -> None:
    op.execute("DELETE FROM hours_entries WHERE work = 'task'")
    with op.batch_alter_table("hours_entries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_hours_entries_work"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_hours_entries_work"), "work IN ('repair', 'route')")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_members_calendar_token"), type_="unique")
        batch_op.drop_column("calendar_token")

    with op.batch_alter_table("declines", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_declines_board_task_id_board_tasks"), type_="foreignkey")
        batch_op.drop_column("board_task_id")

    with op.batch_alter_table("slot_signups", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_slot_signups_live_place",
            postgresql_where=sa.text("state IN ('suggested', 'taken', 'done')"),
            sqlite_where=sa.text("state IN ('suggested', 'taken', 'done')"),
        )
        batch_op.drop_index(batch_op.f("ix_slot_signups_shift_id"))
        batch_op.drop_index(batch_op.f("ix_slot_signups_member_id_state"))

    op.drop_table("slot_signups")
    with op.batch_alter_table("task_slots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_slots_task_id"))

    op.drop_table("task_slots")
    with op.batch_alter_table("task_shifts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_shifts_starts_at"))

    op.drop_table("task_shifts")
    with op.batch_alter_table("board_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_board_tasks_status_ends_at"))
        batch_op.drop_index(batch_op.f("ix_board_tasks_community_id"))

    op.drop_table("board_tasks")
    op.drop_table("sector_goals")
