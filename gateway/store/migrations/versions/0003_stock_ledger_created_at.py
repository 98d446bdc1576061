"""Stock ledger by time: the planner reads each community's recent use (logistics.loader.use_rates) on every
run, over a window of the whole ledger.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 00:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stock_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stock_ledger_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stock_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stock_ledger_created_at"))
