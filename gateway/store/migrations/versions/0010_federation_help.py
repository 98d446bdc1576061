"""Cross-community help: a member's offers to help with a neighbour node's repair task (fed_help), the
helper that took one of this node's tasks (repair_tasks.helper_ref), and hours entries for that work.

Revision ID: 0010
Revises: 0007 (the head: 0006 -> 0008 -> 0009 -> 0007)
Create Date: 2026-12-04 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from gateway.store.models.base import UtcDateTime

revision: str = "0010"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fed_help",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_ref", sa.String(length=120), nullable=False),
        sa.Column("community", sa.String(length=48), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("hours", sa.Double(), nullable=False),
        sa.Column(
            "skills",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("offer_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("hours > 0", name=op.f("ck_fed_help_hours")),
        sa.CheckConstraint(
            "state IN ('offered', 'accepted', 'refused', 'withdrawn', 'done')", name=op.f("ck_fed_help_state")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_fed_help_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fed_help")),
    )
    with op.batch_alter_table("fed_help", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fed_help_member_id"), ["member_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fed_help_task_ref"), ["task_ref"], unique=False)
    with op.batch_alter_table("repair_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("helper_ref", sa.String(length=120), nullable=True))
    with op.batch_alter_table("hours_entries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_hours_entries_work"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_hours_entries_work"), "work IN ('repair', 'route', 'task', 'help')"
        )


def downgrade() -> None:
    op.execute("DELETE FROM hours_entries WHERE work = 'help'")
    with op.batch_alter_table("hours_entries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_hours_entries_work"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_hours_entries_work"), "work IN ('repair', 'route', 'task')"
        )
    with op.batch_alter_table("repair_tasks", schema=None) as batch_op:
        batch_op.drop_column("helper_ref")
    with op.batch_alter_table("fed_help", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fed_help_task_ref"))
        batch_op.drop_index(batch_op.f("ix_fed_help_member_id"))
    op.drop_table("fed_help")
