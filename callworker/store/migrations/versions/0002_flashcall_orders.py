"""Flash-call orders.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # The code itself is never a column: only its keyed hash (code_hmac).
    op.create_table(
        "flashcall_orders",
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.Column("phone_key", sa.String(15), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("code_hmac", sa.String(64), nullable=False),
        sa.Column("code_len", sa.Integer(), nullable=False),
        sa.Column("cid_prefix", sa.String(16), nullable=False),
        sa.Column("call_id", sa.String(36), nullable=True),
        sa.Column("call_status", sa.String(16), nullable=True),
        sa.Column("hangup_cause", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("supersedes", sa.String(36), nullable=True),
        _ts("created_at", nullable=False),
        _ts("expires_at", nullable=False),
        _ts("closed_at"),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("order_id", name="pk_flashcall_orders"),
    )
    op.create_index(
        "ix_flashcall_orders_tenant_phone_key_created_at",
        "flashcall_orders",
        ["tenant", "phone_key", "created_at"],
    )
    op.create_index(
        "ix_flashcall_orders_tenant_created_at", "flashcall_orders", ["tenant", "created_at"]
    )
    op.create_index("ix_flashcall_orders_node_status", "flashcall_orders", ["node", "status"])


def downgrade() -> None:
    op.drop_index("ix_flashcall_orders_node_status", table_name="flashcall_orders")
    op.drop_index("ix_flashcall_orders_tenant_created_at", table_name="flashcall_orders")
    op.drop_index("ix_flashcall_orders_tenant_phone_key_created_at", table_name="flashcall_orders")
    op.drop_table("flashcall_orders")
