"""The tables of callworker: calls, their events, CDRs, command records, the outbox,
flash-call orders, and what the policy keeps (overrides, usage counts, erasures).

Every timestamp is stored as UTC and read back as an aware UTC datetime, on SQLite
as on PostgreSQL (see `UTCDateTime`). The migrations in
`migrations/versions/` create exactly these tables; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from callworker.contract.common import TERMINAL_STATUSES as CALL_TERMINAL_STATUSES

__all__ = [
    "Base",
    "Call",
    "CallEvent",
    "Cdr",
    "CommandRecord",
    "FlashcallOrder",
    "OutboxMessage",
    "PolicyOverride",
    "PolicyUsage",
    "PrivacyErasure",
    "Recording",
    "UTCDateTime",
    "metadata",
    "CALLS",
    "EVENTS",
    "CDRS",
    "COMMANDS",
    "OUTBOX",
    "FLASHCALL_ORDERS",
    "OVERRIDES",
    "USAGE",
    "ERASURES",
    "RECORDINGS",
    "USER_ID_LENGTH",
    "utcnow",
    "TERMINAL_STATUSES",
]

# A user id (CONTRACT section 3: up to 64 characters) or its erased form.
USER_ID_LENGTH = 64

# Statuses after which a call never changes again (CONTRACT section 5).
TERMINAL_STATUSES = tuple(sorted(status.value for status in CALL_TERMINAL_STATUSES))

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC.

    SQLite has no time zones: its DATETIME text drops the offset and reads back naive.
    Storing every value converted to UTC keeps the text sortable and lets us attach
    UTC on the way out. PostgreSQL returns timestamptz in the session's zone, which
    is converted to UTC too, so callers see the same values on both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive value is ambiguous; guessing would shift times silently.
            raise ValueError(f"naive datetime {value.isoformat()} where an aware one is needed")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # none_as_null: a missing reply or headers is SQL NULL, not the JSON text 'null'.
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(none_as_null=True)}


metadata = Base.metadata


class Call(Base):
    """The current state of one call leg; upserted by call_id."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_tenant_initiated_at", "tenant", "initiated_at"),
        Index("ix_calls_node_status", "node", "status"),
        Index("ix_calls_tenant_user_id_initiated_at", "tenant", "user_id", "initiated_at"),
        # Retention finds old calls by it.
        Index("ix_calls_initiated_at", "initiated_at"),
    )

    call_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(63))
    node: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    destination_number: Mapped[str | None] = mapped_column(String(32))
    caller_id_number: Mapped[str | None] = mapped_column(String(32))
    caller_id_name: Mapped[str | None] = mapped_column(String(64))
    on_hold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    muted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    initiated_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    last_seq: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    hangup_requested: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    flashcall_order_id: Mapped[str | None] = mapped_column(String(36))
    user_id: Mapped[str | None] = mapped_column(String(USER_ID_LENGTH))
    cost_cents: Mapped[int | None] = mapped_column(Integer)
    quality_score: Mapped[float | None] = mapped_column(Float)
    # The gateway an outbound call was placed through (null: inbound).
    gateway: Mapped[str | None] = mapped_column(String(64))
    # Counted in policy_usage while live: its end gives the slot back.
    counted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The other call while bridged; what the answered call is connected to (calls/connect.py).
    bridged_with: Mapped[str | None] = mapped_column(String(36))
    connect: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallEvent(Base):
    """One published event (call or flash-call order); call_id holds the order id for orders."""

    __tablename__ = "call_events"
    __table_args__ = (UniqueConstraint("call_id", "seq", name="uq_call_events_call_id_seq"),)

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # No foreign key: flash-call orders share this table and are not calls.
    call_id: Mapped[str] = mapped_column(String(36))
    tenant: Mapped[str] = mapped_column(String(63))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    body: Mapped[dict[str, Any]]


class Cdr(Base):
    """The call detail record of one leg, stored once (CONTRACT section 5)."""

    __tablename__ = "cdrs"
    __table_args__ = (
        Index("ix_cdrs_tenant_start_stamp", "tenant", "start_stamp"),
        Index("ix_cdrs_tenant_user_id_start_stamp", "tenant", "user_id", "start_stamp"),
        # stats.get of every tenant (admin) reads by it.
        Index("ix_cdrs_start_stamp", "start_stamp"),
    )

    call_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(63))
    direction: Mapped[str] = mapped_column(String(8))
    caller_id_name: Mapped[str | None] = mapped_column(String(64))
    caller_id_number: Mapped[str | None] = mapped_column(String(32))
    destination_number: Mapped[str | None] = mapped_column(String(32))
    start_stamp: Mapped[datetime | None]
    answer_stamp: Mapped[datetime | None]
    end_stamp: Mapped[datetime | None]
    duration: Mapped[int | None] = mapped_column(Integer)
    billsec: Mapped[int | None] = mapped_column(Integer)
    billmsec: Mapped[int | None] = mapped_column(Integer)
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    hangup_cause_q850: Mapped[int | None] = mapped_column(Integer)
    sip_hangup_disposition: Mapped[str | None] = mapped_column(String(64))
    pdd_ms: Mapped[int | None] = mapped_column(Integer)
    rtp_audio_in_mos: Mapped[float | None] = mapped_column(Float)
    read_codec: Mapped[str | None] = mapped_column(String(64))
    write_codec: Mapped[str | None] = mapped_column(String(64))
    missed_call: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    node: Mapped[str] = mapped_column(String(255))
    flashcall_order_id: Mapped[str | None] = mapped_column(String(36))
    reconstructed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    user_id: Mapped[str | None] = mapped_column(String(USER_ID_LENGTH))
    cost_cents: Mapped[int | None] = mapped_column(Integer)
    quality_score: Mapped[float | None] = mapped_column(Float)
    bridged_with: Mapped[str | None] = mapped_column(String(36))
    # The ids of the call's recordings (a JSON list), in the order they were started.
    recordings: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    gateway: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CommandRecord(Base):
    """A command seen within a tenant: the idempotency key and the reply sent for it."""

    __tablename__ = "commands"
    # Retention deletes command records after 7 days by it.
    __table_args__ = (Index("ix_commands_created_at", "created_at"),)

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    command_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    reply: Mapped[dict[str, Any] | None]
    call_id: Mapped[str | None] = mapped_column(String(36))
    user_id: Mapped[str | None] = mapped_column(String(USER_ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMessage(Base):
    """A message committed for publishing; deleted once the broker confirmed it.

    ``node`` is the worker that wrote it: each node's relay publishes only its
    own rows, in its own commit order.
    """

    __tablename__ = "outbox"
    # Ids must never be reused (the relay reads "after id N"): on SQLite that takes
    # AUTOINCREMENT, or an emptied table would hand out 1 again.
    __table_args__ = (Index("ix_outbox_node_id", "node", "id"), {"sqlite_autoincrement": True})

    # SQLite autoincrements only an INTEGER primary key.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    node: Mapped[str] = mapped_column(String(255))
    exchange: Mapped[str] = mapped_column(String(255))
    routing_key: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str | None] = mapped_column(String(255))
    headers: Mapped[dict[str, Any] | None]
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FlashcallOrder(Base):
    """A flash-call order; upserted by order_id. Never holds the code, only its keyed hash."""

    __tablename__ = "flashcall_orders"
    __table_args__ = (
        Index(
            "ix_flashcall_orders_tenant_phone_key_created_at", "tenant", "phone_key", "created_at"
        ),
        Index("ix_flashcall_orders_tenant_created_at", "tenant", "created_at"),
        Index("ix_flashcall_orders_node_status", "node", "status"),
        Index("ix_flashcall_orders_created_at", "created_at"),
    )

    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(63))
    node: Mapped[str] = mapped_column(String(255))
    # Room for an erased phone ("erased:" and a keyed hash).
    phone: Mapped[str] = mapped_column(String(32))
    # The phone's digits without '+': the key of supersede and of the per-phone limits.
    phone_key: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    code_hmac: Mapped[str] = mapped_column(String(64))
    code_len: Mapped[int] = mapped_column(Integer)
    cid_prefix: Mapped[str] = mapped_column(String(16))
    call_id: Mapped[str | None] = mapped_column(String(36))
    call_status: Mapped[str | None] = mapped_column(String(16))
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    supersedes: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    user_id: Mapped[str | None] = mapped_column(String(USER_ID_LENGTH))
    # The gateway its call is placed through.
    gateway: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PolicyOverride(Base):
    """Policy values set by ``admin.policy.set``; they win over the policy file's.

    ``user_id`` is empty for the tenant's own values.
    """

    __tablename__ = "policy_overrides"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    settings: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


def _ring(element: Any) -> Any:
    # PostgreSQL updates the ring in SQL (an array); SQLite keeps it as JSON text.
    return ARRAY(element).with_variant(JSON(), "sqlite")


class PolicyUsage(Base):
    """What the limits count for a tenant (``user_id`` empty) or one of its users.

    Calls not yet ended (``live``), calls of the UTC day ``day`` (days since the
    epoch), and a ring of per-second counts over the last 60 seconds: slot
    ``s % 60`` holds second ``s`` (``ring_sec``) and its calls (``ring_cnt``).
    The caps are those of the last call placed; a check constraint refuses a
    write that takes a count over its cap, which is what refuses a call over a
    limit on every node at once (see ``store/usage.py``).
    """

    __tablename__ = "policy_usage"
    __table_args__ = (
        CheckConstraint("minute_cap IS NULL OR minute_used <= minute_cap", name="ck_policy_usage_minute"),
        CheckConstraint("day_cap IS NULL OR day_used <= day_cap", name="ck_policy_usage_day"),
        CheckConstraint("live_cap IS NULL OR live <= live_cap", name="ck_policy_usage_live"),
    )

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    live: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    day: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    day_used: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    minute_used: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    ring_sec: Mapped[list[int]] = mapped_column(_ring(BigInteger()))
    ring_cnt: Mapped[list[int]] = mapped_column(_ring(Integer()))
    minute_cap: Mapped[int | None] = mapped_column(Integer)
    day_cap: Mapped[int | None] = mapped_column(Integer)
    live_cap: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PrivacyErasure(Base):
    """One ``privacy.erase``: only the erased value (``erased:<keyed hash>``), never the clear one.

    Every node reads new rows to erase the value from the calls it holds in memory.
    """

    __tablename__ = "privacy_erasures"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant: Mapped[str] = mapped_column(String(63))
    token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Recording(Base):
    """One recording of a call: a WAV file FreeSWITCH writes (docs/media.md); upserted by id.

    ``status`` is ``starting`` (asked of FreeSWITCH), ``recording`` (RECORD_START seen) or
    ``stopped``. ``command_id`` is the ``record start`` that asked for it.
    """

    __tablename__ = "recordings"
    __table_args__ = (
        Index("ix_recordings_call_id", "call_id"),
        Index("ix_recordings_tenant_started_at", "tenant", "started_at"),
    )

    recording_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(36))
    tenant: Mapped[str] = mapped_column(String(63))
    node: Mapped[str] = mapped_column(String(255))
    command_id: Mapped[str | None] = mapped_column(String(36))
    path: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# The Core tables, for the statements of writes.py and queries.py.
CALLS: Table = Call.__table__  # type: ignore[assignment]
EVENTS: Table = CallEvent.__table__  # type: ignore[assignment]
CDRS: Table = Cdr.__table__  # type: ignore[assignment]
COMMANDS: Table = CommandRecord.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]
FLASHCALL_ORDERS: Table = FlashcallOrder.__table__  # type: ignore[assignment]
OVERRIDES: Table = PolicyOverride.__table__  # type: ignore[assignment]
USAGE: Table = PolicyUsage.__table__  # type: ignore[assignment]
ERASURES: Table = PrivacyErasure.__table__  # type: ignore[assignment]
RECORDINGS: Table = Recording.__table__  # type: ignore[assignment]
