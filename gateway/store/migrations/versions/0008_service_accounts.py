"""Broker accounts of three more kinds: a community broker's bridge (bound to its community), a named service
process (with the topic patterns it was given) and a peer node of a federation (bound to its name).

SQLite cannot alter a CHECK constraint: batch mode rebuilds the table (env.py turns it on for SQLite).
Downgrading deletes the accounts of the new kinds, which the old constraints cannot hold.

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-04 00:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = "kind IN ('device', 'member', 'gateway')"
NEW_KINDS = "kind IN ('device', 'member', 'gateway', 'bridge', 'service', 'node')"
OLD_OWNER = (
    "(kind = 'device' AND device_id IS NOT NULL AND member_id IS NULL)"
    " OR (kind = 'member' AND member_id IS NOT NULL AND device_id IS NULL)"
    " OR (kind = 'gateway' AND device_id IS NULL AND member_id IS NULL)"
)
_COLUMNS = ("device_id", "member_id", "community_id", "name", "local_node", "reads", "writes")
_BOUND = {
    "device": ("device_id",),
    "member": ("member_id",),
    "gateway": (),
    "bridge": ("community_id",),
    "service": ("name", "reads", "writes"),
    "node": ("name", "local_node"),
}
NEW_OWNER = " OR ".join(
    "("
    + " AND ".join(
        [f"kind = '{kind}'"] + [f"{c} IS {'NOT NULL' if c in bound else 'NULL'}" for c in _COLUMNS]
    )
    + ")"
    for kind, bound in _BOUND.items()
)


def _patterns() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("broker_credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("community_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("name", sa.String(length=48), nullable=True))
        batch_op.add_column(sa.Column("local_node", sa.String(length=48), nullable=True))
        batch_op.add_column(sa.Column("reads", _patterns(), nullable=True))
        batch_op.add_column(sa.Column("writes", _patterns(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_broker_credentials_community_id_communities"),
            "communities",
            ["community_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_unique_constraint(batch_op.f("uq_broker_credentials_community_id"), ["community_id"])
        batch_op.drop_constraint(batch_op.f("ck_broker_credentials_kind"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_broker_credentials_owner"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_broker_credentials_kind"), NEW_KINDS)
        batch_op.create_check_constraint(batch_op.f("ck_broker_credentials_owner"), NEW_OWNER)


def downgrade() -> None:
    op.execute("DELETE FROM broker_credentials WHERE kind IN ('bridge', 'service', 'node')")
    with op.batch_alter_table("broker_credentials", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_broker_credentials_owner"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_broker_credentials_kind"), type_="check")
        batch_op.drop_constraint(batch_op.f("uq_broker_credentials_community_id"), type_="unique")
        batch_op.drop_constraint(
            batch_op.f("fk_broker_credentials_community_id_communities"), type_="foreignkey"
        )
        batch_op.drop_column("writes")
        batch_op.drop_column("reads")
        batch_op.drop_column("local_node")
        batch_op.drop_column("name")
        batch_op.drop_column("community_id")
        batch_op.create_check_constraint(batch_op.f("ck_broker_credentials_kind"), OLD_KINDS)
        batch_op.create_check_constraint(batch_op.f("ck_broker_credentials_owner"), OLD_OWNER)
