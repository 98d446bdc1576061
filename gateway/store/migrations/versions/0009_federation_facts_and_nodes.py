"""Federation: the facts a community node holds (its own and its peers', stored once per origin and sequence
number), what it knows of the other nodes, and the shipments it carries for a plan between nodes.

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-03 12:20:11.869464
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from gateway.store.models.base import UtcDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fed_facts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("origin", sa.String(length=48), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("sig", sa.String(length=120), nullable=True),
        sa.Column("received_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("via", sa.String(length=48), nullable=True),
        sa.Column("applied_at", UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_fed_facts_seq")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fed_facts")),
        sa.UniqueConstraint("origin", "seq", name=op.f("uq_fed_facts_origin_seq")),
    )
    with op.batch_alter_table("fed_facts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fed_facts_kind_origin"), ["kind", "origin"], unique=False)

    op.create_table(
        "fed_nodes",
        sa.Column("name", sa.String(length=48), nullable=False),
        sa.Column("direct", sa.Boolean(), nullable=False),
        sa.Column("link_up", sa.Boolean(), nullable=False),
        sa.Column("last_heard_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("changed_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_fed_nodes")),
    )

    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fed_ref", sa.String(length=120), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_shipments_fed_ref"), ["fed_ref"])


def downgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_shipments_fed_ref"), type_="unique")
        batch_op.drop_column("fed_ref")
    op.drop_table("fed_nodes")
    with op.batch_alter_table("fed_facts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fed_facts_kind_origin"))

    op.drop_table("fed_facts")
