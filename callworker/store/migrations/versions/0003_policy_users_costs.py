"""Policy, users, costs: user ids, cost and quality, limits' counts, policy overrides, erasures.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USER_ID = sa.String(64)


def _ts(name: str, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _ring(element: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any]:
    # PostgreSQL updates the ring in SQL (an array); SQLite keeps it as JSON text.
    return sa.ARRAY(element).with_variant(sa.JSON(), "sqlite")


def upgrade() -> None:
    op.add_column("calls", sa.Column("user_id", USER_ID, nullable=True))
    op.add_column("calls", sa.Column("cost_cents", sa.Integer(), nullable=True))
    op.add_column("calls", sa.Column("quality_score", sa.Float(), nullable=True))
    op.add_column("calls", sa.Column("counted", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index("ix_calls_tenant_user_id_initiated_at", "calls", ["tenant", "user_id", "initiated_at"])
    op.create_index("ix_calls_initiated_at", "calls", ["initiated_at"])

    op.add_column("cdrs", sa.Column("user_id", USER_ID, nullable=True))
    op.add_column("cdrs", sa.Column("cost_cents", sa.Integer(), nullable=True))
    op.add_column("cdrs", sa.Column("quality_score", sa.Float(), nullable=True))
    op.create_index("ix_cdrs_tenant_user_id_start_stamp", "cdrs", ["tenant", "user_id", "start_stamp"])

    op.add_column("commands", sa.Column("user_id", USER_ID, nullable=True))
    op.create_index("ix_commands_created_at", "commands", ["created_at"])

    # Phones grow to hold an erased value ("erased:" and a keyed hash).
    with op.batch_alter_table("flashcall_orders") as batch:
        batch.add_column(sa.Column("user_id", USER_ID, nullable=True))
        batch.alter_column("phone", type_=sa.String(32), existing_type=sa.String(16), existing_nullable=False)
        batch.alter_column("phone_key", type_=sa.String(32), existing_type=sa.String(15), existing_nullable=False)
    op.create_index("ix_flashcall_orders_created_at", "flashcall_orders", ["created_at"])

    op.create_table(
        "policy_overrides",
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("user_id", USER_ID, nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("tenant", "user_id", name="pk_policy_overrides"),
    )

    op.create_table(
        "policy_usage",
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("user_id", USER_ID, nullable=False),
        sa.Column("live", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("day", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("day_used", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("minute_used", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("ring_sec", _ring(sa.BigInteger()), nullable=False),
        sa.Column("ring_cnt", _ring(sa.Integer()), nullable=False),
        sa.Column("minute_cap", sa.Integer(), nullable=True),
        sa.Column("day_cap", sa.Integer(), nullable=True),
        sa.Column("live_cap", sa.Integer(), nullable=True),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("tenant", "user_id", name="pk_policy_usage"),
        sa.CheckConstraint("minute_cap IS NULL OR minute_used <= minute_cap", name="ck_policy_usage_minute"),
        sa.CheckConstraint("day_cap IS NULL OR day_used <= day_cap", name="ck_policy_usage_day"),
        sa.CheckConstraint("live_cap IS NULL OR live <= live_cap", name="ck_policy_usage_live"),
    )

    op.create_table(
        "privacy_erasures",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_privacy_erasures"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("privacy_erasures")
    op.drop_table("policy_usage")
    op.drop_table("policy_overrides")
    op.drop_index("ix_flashcall_orders_created_at", table_name="flashcall_orders")
    with op.batch_alter_table("flashcall_orders") as batch:
        batch.alter_column("phone_key", type_=sa.String(15), existing_type=sa.String(32), existing_nullable=False)
        batch.alter_column("phone", type_=sa.String(16), existing_type=sa.String(32), existing_nullable=False)
        batch.drop_column("user_id")
    op.drop_index("ix_commands_created_at", table_name="commands")
    op.drop_index("ix_cdrs_tenant_user_id_start_stamp", table_name="cdrs")
    op.drop_index("ix_calls_initiated_at", table_name="calls")
    op.drop_index("ix_calls_tenant_user_id_initiated_at", table_name="calls")
    # Batch mode: SQLite drops columns by copying the table.
    for table, names in (
        ("commands", ("user_id",)),
        ("cdrs", ("quality_score", "cost_cents", "user_id")),
        ("calls", ("counted", "quality_score", "cost_cents", "user_id")),
    ):
        with op.batch_alter_table(table) as batch:
            for name in names:
                batch.drop_column(name)
