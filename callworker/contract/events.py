"""Events callworker publishes (CONTRACT.md section 5): types, envelope, call snapshot."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any

from .common import TENANT_RE, to_iso, utcnow

__all__ = [
    "CALL_SNAPSHOT_FIELDS",
    "CDR_FIELDS",
    "TERMINAL_EVENT_TYPES",
    "EventType",
    "call_snapshot",
    "cdr_data",
    "event_routing_key",
    "hook_event_type",
    "make_event",
]


class EventType(StrEnum):
    """Every fixed event type; ``hook.<name>`` types come from ``hook_event_type``."""

    CALL_INITIATED = "call.initiated"
    CALL_RINGING = "call.ringing"
    CALL_ANSWERED = "call.answered"
    CALL_HELD = "call.held"
    CALL_UNHELD = "call.unheld"
    CALL_MUTED = "call.muted"
    CALL_UNMUTED = "call.unmuted"
    CALL_COMPLETED = "call.completed"
    CALL_FAILED = "call.failed"
    CALL_CANCELLED = "call.cancelled"
    CALL_CDR = "call.cdr"
    CALL_DTMF = "call.dtmf"
    CALL_PLAYBACK_STARTED = "call.playback_started"
    CALL_PLAYBACK_FINISHED = "call.playback_finished"
    CALL_RECORDING_STARTED = "call.recording_started"
    CALL_RECORDING_STOPPED = "call.recording_stopped"
    FLASHCALL_CREATED = "flashcall.created"
    FLASHCALL_RINGING = "flashcall.ringing"
    FLASHCALL_ANSWERED = "flashcall.answered"
    FLASHCALL_FAILED = "flashcall.failed"
    FLASHCALL_VERIFIED = "flashcall.verified"
    FLASHCALL_REJECTED = "flashcall.rejected"
    FLASHCALL_EXPIRED = "flashcall.expired"
    FLASHCALL_LOCKED = "flashcall.locked"
    # Connections (calls/connect.py).
    CALL_BRIDGED = "call.bridged"
    CALL_UNBRIDGED = "call.unbridged"
    CALL_TRANSFERRED = "call.transferred"


TERMINAL_EVENT_TYPES: frozenset[EventType] = frozenset(
    {EventType.CALL_COMPLETED, EventType.CALL_FAILED, EventType.CALL_CANCELLED}
)

CALL_SNAPSHOT_FIELDS: tuple[str, ...] = (
    "call_id",
    "status",
    "direction",
    "destination_number",
    "caller_id_number",
    "on_hold",
    "muted",
    "node",
    "initiated_at",
    "answered_at",
    "ended_at",
    "duration_seconds",
    "hangup_cause",
    "user_id",
    "bridged_with",
    "cost_cents",
    "quality_score",
)

CDR_FIELDS: tuple[str, ...] = (
    "call_id",
    "tenant",
    "direction",
    "caller_id_name",
    "caller_id_number",
    "destination_number",
    "start_stamp",
    "answer_stamp",
    "end_stamp",
    "duration",
    "billsec",
    "billmsec",
    "hangup_cause",
    "hangup_cause_q850",
    "sip_hangup_disposition",
    "pdd_ms",
    "rtp_audio_in_mos",
    "read_codec",
    "write_codec",
    "missed_call",
    "node",
    "flashcall_order_id",
    "user_id",
    "bridged_with",
    "cost_cents",
    "quality_score",
    "recordings",
)

_HOOK_NAME_RE = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
# A routing-key word: no '.', and none of the topic wildcards '*' and '#'.
_SUBJECT_RE = re.compile(r"\A[A-Za-z0-9_-]{1,128}\Z")
_FIXED_TYPES = frozenset(t.value for t in EventType)


def hook_event_type(name: str) -> str:
    """``hook.<name>`` for a dialplan CUSTOM event ``callworker::<name>``; ValueError if unsafe."""
    if not isinstance(name, str) or _HOOK_NAME_RE.match(name) is None:
        raise ValueError("hook name must be 1 to 64 of [A-Za-z0-9_-]")
    return f"hook.{name}"


def _check_event_type(event_type: str) -> str:
    value = event_type.value if isinstance(event_type, Enum) else event_type
    if value in _FIXED_TYPES:
        return value
    if value.startswith("hook.") and _HOOK_NAME_RE.match(value[5:]) is not None:
        return value
    raise ValueError("not a contract event type")


def _check_route_words(tenant: str, subject_id: str) -> None:
    if TENANT_RE.match(tenant) is None:
        raise ValueError("tenant must match [a-z0-9][a-z0-9_-]{0,62}")
    if _SUBJECT_RE.match(subject_id) is None:
        raise ValueError("subject id must be 1 to 128 of [A-Za-z0-9_-]")


def make_event(
    *,
    event_type: str,
    tenant: str,
    node: str,
    subject_id: str,
    seq: int,
    occurred_at: datetime,
    data: dict[str, Any],
    event_id: str | None = None,
) -> dict[str, Any]:
    """The event envelope; flash-call events name their ``order_id``, the rest ``call_id``.

    ``seq`` counts from 1 per call (or order). Values in ``data`` are left as given;
    ``encode_json`` turns datetimes and UUIDs into strings.
    """
    type_value = _check_event_type(event_type)
    _check_route_words(tenant, subject_id)
    if type(seq) is not int or seq < 1:
        raise ValueError("seq must be an integer from 1")
    subject_key = "order_id" if type_value.startswith("flashcall.") else "call_id"
    return {
        "v": 1,
        "event_id": event_id if event_id is not None else str(uuid.uuid4()),
        "type": type_value,
        "tenant": tenant,
        "node": node,
        subject_key: subject_id,
        "seq": seq,
        "occurred_at": to_iso(occurred_at),
        "data": data,
    }


def event_routing_key(tenant: str, event_type: str, subject_id: str) -> str:
    """``<tenant>.<type>.<id>``, e.g. ``acme.call.answered.<call_id>``."""
    type_value = _check_event_type(event_type)
    _check_route_words(tenant, subject_id)
    return f"{tenant}.{type_value}.{subject_id}"


def _get(row: Mapping[str, Any] | object, name: str) -> Any:
    if isinstance(row, Mapping):
        return row.get(name)
    return getattr(row, name, None)


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _seconds_between(start: datetime, end: datetime) -> int:
    # Naive values (SQLite) are UTC.
    start, end = (d if d.tzinfo else d.replace(tzinfo=UTC) for d in (start, end))
    return max(0, int((end - start).total_seconds()))


def call_snapshot(
    row: Mapping[str, Any] | object, *, now: datetime | None = None
) -> dict[str, Any]:
    """The contract's view of a call row (a mapping, or an object with these attributes).

    Timestamps become ``to_iso`` strings and enums their values. ``duration_seconds``
    is null until the call is answered; once answered it is the whole seconds from
    ``answered_at`` to ``ended_at``, or, while the call is still up, to ``now``
    (default: the current time). ``on_hold`` and ``muted`` default to false.
    """
    snapshot = {name: _wire(_get(row, name)) for name in CALL_SNAPSHOT_FIELDS}
    snapshot["on_hold"] = bool(_get(row, "on_hold"))
    snapshot["muted"] = bool(_get(row, "muted"))
    answered = _as_datetime(_get(row, "answered_at"))
    if answered is None:
        snapshot["duration_seconds"] = None
    else:
        ended = _as_datetime(_get(row, "ended_at"))
        end = ended if ended is not None else (now if now is not None else utcnow())
        snapshot["duration_seconds"] = _seconds_between(answered, end)
    return snapshot


def cdr_data(row: Mapping[str, Any] | object) -> dict[str, Any]:
    """The contract's view of a CDR row: CDR_FIELDS in order, timestamps as ``to_iso``."""
    return {name: _wire(_get(row, name)) for name in CDR_FIELDS}
