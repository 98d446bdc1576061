"""Driver actions recorded once by the id the phone made for each (driver_actions): an offline queue sent
again after a lost answer gets the first answer back instead of applying the action twice.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from gateway.store.models.base import UtcDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "driver_actions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("route_id", sa.Integer(), nullable=False),
        sa.Column("stop_id", sa.Integer(), nullable=True),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "asked",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("refused", sa.String(length=16), nullable=True),
        sa.Column("message", sa.String(length=600), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('picked_up', 'delivered', 'failed', 'accept', 'decline')",
            name=op.f("ck_driver_actions_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["route_id"], ["routes.id"], name=op.f("fk_driver_actions_route_id_routes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_driver_actions")),
    )
    with op.batch_alter_table("driver_actions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_driver_actions_route_id"), ["route_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("driver_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_driver_actions_route_id"))
    op.drop_table("driver_actions")
