"""Community bridges: each community broker's link state, as its bridge's notifications last said.

Revision ID: 0007
Revises: 0009 (rebased on main; the brief gave 0005)
Create Date: 2026-12-03 12:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.store.models.base import UtcDateTime

revision: str = "0007"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bridge_links",
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("changed_at", UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('up', 'down')", name=op.f("ck_bridge_links_state")),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_bridge_links_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("community_id", name=op.f("pk_bridge_links")),
    )


def downgrade() -> None:
    op.drop_table("bridge_links")
