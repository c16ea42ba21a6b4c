"""Statistics: the gateway of each call, CDR and flash-call order, and an index for every tenant's CDRs by time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("gateway", sa.String(64), nullable=True))
    op.add_column("cdrs", sa.Column("gateway", sa.String(64), nullable=True))
    op.add_column("flashcall_orders", sa.Column("gateway", sa.String(64), nullable=True))
    op.create_index("ix_cdrs_start_stamp", "cdrs", ["start_stamp"])


def downgrade() -> None:
    op.drop_index("ix_cdrs_start_stamp", table_name="cdrs")
    # Batch mode: SQLite drops columns by copying the table.
    for table in ("flashcall_orders", "cdrs", "calls"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("gateway")
