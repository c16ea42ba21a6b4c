"""Initial schema: calls, call_events, cdrs, commands, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("call_id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("destination_number", sa.String(32), nullable=True),
        sa.Column("caller_id_number", sa.String(32), nullable=True),
        sa.Column("caller_id_name", sa.String(64), nullable=True),
        sa.Column("on_hold", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("muted", sa.Boolean(), server_default=sa.false(), nullable=False),
        _ts("initiated_at"),
        _ts("answered_at"),
        _ts("ended_at"),
        sa.Column("hangup_cause", sa.String(64), nullable=True),
        sa.Column("last_seq", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("hangup_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("flashcall_order_id", sa.String(36), nullable=True),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_calls"),
    )
    op.create_index("ix_calls_tenant_initiated_at", "calls", ["tenant", "initiated_at"])
    op.create_index("ix_calls_node_status", "calls", ["node", "status"])

    op.create_table(
        "call_events",
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("call_id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        _ts("occurred_at", nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_call_events"),
        sa.UniqueConstraint("call_id", "seq", name="uq_call_events_call_id_seq"),
    )

    op.create_table(
        "cdrs",
        sa.Column("call_id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("caller_id_name", sa.String(64), nullable=True),
        sa.Column("caller_id_number", sa.String(32), nullable=True),
        sa.Column("destination_number", sa.String(32), nullable=True),
        _ts("start_stamp"),
        _ts("answer_stamp"),
        _ts("end_stamp"),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("billsec", sa.Integer(), nullable=True),
        sa.Column("billmsec", sa.Integer(), nullable=True),
        sa.Column("hangup_cause", sa.String(64), nullable=True),
        sa.Column("hangup_cause_q850", sa.Integer(), nullable=True),
        sa.Column("sip_hangup_disposition", sa.String(64), nullable=True),
        sa.Column("pdd_ms", sa.Integer(), nullable=True),
        sa.Column("rtp_audio_in_mos", sa.Float(), nullable=True),
        sa.Column("read_codec", sa.String(64), nullable=True),
        sa.Column("write_codec", sa.String(64), nullable=True),
        sa.Column("missed_call", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("flashcall_order_id", sa.String(36), nullable=True),
        sa.Column("reconstructed", sa.Boolean(), server_default=sa.false(), nullable=False),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_cdrs"),
    )
    op.create_index("ix_cdrs_tenant_start_stamp", "cdrs", ["tenant", "start_stamp"])

    op.create_table(
        "commands",
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("command_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reply", sa.JSON(), nullable=True),
        sa.Column("call_id", sa.String(36), nullable=True),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("tenant", "command_id", name="pk_commands"),
    )

    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("exchange", sa.String(255), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("correlation_id", sa.String(255), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_node_id", "outbox", ["node", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_node_id", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("commands")
    op.drop_index("ix_cdrs_tenant_start_stamp", table_name="cdrs")
    op.drop_table("cdrs")
    op.drop_table("call_events")
    op.drop_index("ix_calls_node_status", table_name="calls")
    op.drop_index("ix_calls_tenant_initiated_at", table_name="calls")
    op.drop_table("calls")
