"""Broker credentials: one MQTT account per device, member app or gateway, holding only a password hash.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broker_credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('device', 'member', 'gateway')", name=op.f("ck_broker_credentials_kind")
        ),
        sa.CheckConstraint(
            "(kind = 'device' AND device_id IS NOT NULL AND member_id IS NULL)"
            " OR (kind = 'member' AND member_id IS NOT NULL AND device_id IS NULL)"
            " OR (kind = 'gateway' AND device_id IS NULL AND member_id IS NULL)",
            name=op.f("ck_broker_credentials_owner"),
        ),
        sa.CheckConstraint(
            "(revoked_at IS NULL) = (password_hash IS NOT NULL)",
            name=op.f("ck_broker_credentials_revoked_has_no_hash"),
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_broker_credentials_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_broker_credentials_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broker_credentials")),
        sa.UniqueConstraint("device_id", name=op.f("uq_broker_credentials_device_id")),
        sa.UniqueConstraint("member_id", name=op.f("uq_broker_credentials_member_id")),
        sa.UniqueConstraint("username", name=op.f("uq_broker_credentials_username")),
    )


def downgrade() -> None:
    op.drop_table("broker_credentials")
