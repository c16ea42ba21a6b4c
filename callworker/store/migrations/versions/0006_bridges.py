"""Bridges: which call a call is bridged to, what an answered call is connected to.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("bridged_with", sa.String(36), nullable=True))
    op.add_column("calls", sa.Column("connect", sa.JSON(none_as_null=True), nullable=True))
    op.add_column("cdrs", sa.Column("bridged_with", sa.String(36), nullable=True))


def downgrade() -> None:
    op.drop_column("cdrs", "bridged_with")
    op.drop_column("calls", "connect")
    op.drop_column("calls", "bridged_with")
