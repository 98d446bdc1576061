"""The coordinator's desk: the delivery planner's controls (planner_control: pause, re-plan now, approval),
a summary of each planner run (plan_runs: coverage, what could not be reached and why), routes held for
approval (routes.held_notice), and the audit kinds of those actions.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from gateway.store.models.base import UtcDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
OLD_KINDS = (
    "'login_ok', 'login_failed', 'throttled', 'logout', 'session_ended', 'account_added', 'account_changed', "
    "'account_removed', 'credentials_provisioned', 'credentials_rotated', 'credentials_revoked'"
)
NEW_KINDS = (
    OLD_KINDS + ", 'plan_requested', 'plan_paused', 'plan_resumed', 'plan_approved', 'plan_approval_set'"
)


def upgrade() -> None:
    op.create_table(
        "planner_control",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("require_approval", sa.Boolean(), nullable=False),
        sa.Column("replan_requested_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.Column("changed_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=False),
        sa.Column("approved_at", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_planner_control")),
    )
    op.create_table(
        "plan_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("shortfalls", JSON, nullable=False),
        sa.Column("unrouted", JSON, nullable=False),
        sa.Column("error", sa.String(length=500), nullable=False),
        sa.CheckConstraint("outcome IN ('planned', 'paused', 'failed')", name=op.f("ck_plan_runs_outcome")),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["delivery_plans.id"],
            name=op.f("fk_plan_runs_plan_id_delivery_plans"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_runs")),
    )
    with op.batch_alter_table("plan_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_runs_started_at"), ["started_at"], unique=False)
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_notice", JSON, nullable=True))
    with op.batch_alter_table("security_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_security_events_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_security_events_kind"), f"kind IN ({NEW_KINDS})")


def downgrade() -> None:
    op.execute(
        "DELETE FROM security_events WHERE kind IN "
        "('plan_requested', 'plan_paused', 'plan_resumed', 'plan_approved', 'plan_approval_set')"
    )
    with op.batch_alter_table("security_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_security_events_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_security_events_kind"), f"kind IN ({OLD_KINDS})")
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.drop_column("held_notice")
    with op.batch_alter_table("plan_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_runs_started_at"))
    op.drop_table("plan_runs")
    op.drop_table("planner_control")
