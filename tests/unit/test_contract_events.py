"""Event types, the event envelope, routing keys and the call snapshot."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import pytest

from callworker.contract import (
    CALL_SNAPSHOT_FIELDS,
    CDR_FIELDS,
    TERMINAL_EVENT_TYPES,
    CallStatus,
    EventType,
    call_snapshot,
    cdr_data,
    encode_json,
    event_routing_key,
    hook_event_type,
    make_event,
)

CALL = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3"
ORDER = "9d8c7b6a-5f4e-4d3c-8b2a-190817161514"
T0 = datetime(2026, 11, 22, 10, 31, tzinfo=UTC)


def test_event_types_are_the_contracts() -> None:
    assert [t.value for t in EventType] == [
        "call.initiated", "call.ringing", "call.answered", "call.held", "call.unheld",
        "call.muted", "call.unmuted", "call.completed", "call.failed", "call.cancelled",
        "call.cdr", "call.dtmf", "call.playback_started", "call.playback_finished",
        "call.recording_started", "call.recording_stopped", "flashcall.created", "flashcall.ringing",
        "flashcall.answered",
        "flashcall.failed", "flashcall.verified", "flashcall.rejected", "flashcall.expired",
        "flashcall.locked", "call.bridged", "call.unbridged", "call.transferred",
    ]
    assert TERMINAL_EVENT_TYPES == {"call.completed", "call.failed", "call.cancelled"}


def test_field_lists_follow_the_contract_order() -> None:
    assert CALL_SNAPSHOT_FIELDS == (
        "call_id", "status", "direction", "destination_number", "caller_id_number", "on_hold",
        "muted", "node", "initiated_at", "answered_at", "ended_at", "duration_seconds",
        "hangup_cause", "user_id", "bridged_with", "cost_cents", "quality_score",
    )
    assert CDR_FIELDS == (
        "call_id", "tenant", "direction", "caller_id_name", "caller_id_number",
        "destination_number", "start_stamp", "answer_stamp", "end_stamp", "duration",
        "billsec", "billmsec", "hangup_cause", "hangup_cause_q850", "sip_hangup_disposition",
        "pdd_ms", "rtp_audio_in_mos", "read_codec", "write_codec", "missed_call", "node",
        "flashcall_order_id", "user_id", "bridged_with", "cost_cents", "quality_score", "recordings",
    )


@pytest.mark.parametrize("name", ["survey_done", "A-1", "x" * 64])
def test_hook_event_type(name: str) -> None:
    assert hook_event_type(name) == f"hook.{name}"


@pytest.mark.parametrize("name", ["", "a.b", "a*", "a#", "a b", "x" * 65, "done\n", "caf\u00e9"])
def test_hook_event_type_refuses_unsafe_names(name: str) -> None:
    with pytest.raises(ValueError):
        hook_event_type(name)


def _event(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "event_type": EventType.CALL_ANSWERED, "tenant": "acme", "node": "fs1",
        "subject_id": CALL, "seq": 3, "occurred_at": T0, "data": {"status": "answered"},
    }
    args.update(overrides)
    return make_event(**args)


def test_call_event_envelope() -> None:
    event = _event(event_id="e1")
    assert event == {
        "v": 1, "event_id": "e1", "type": "call.answered", "tenant": "acme", "node": "fs1",
        "call_id": CALL, "seq": 3, "occurred_at": "2026-11-22T10:31:00.000000+00:00",
        "data": {"status": "answered"},
    }
    assert list(event) == ["v", "event_id", "type", "tenant", "node", "call_id", "seq",
                           "occurred_at", "data"]
    assert type(event["type"]) is str


def test_flashcall_events_carry_order_id() -> None:
    event = _event(event_type="flashcall.verified", subject_id=ORDER, seq=1)
    assert event["order_id"] == ORDER
    assert "call_id" not in event


def test_hook_events_carry_call_id() -> None:
    event = _event(event_type=hook_event_type("survey_done"))
    assert event["type"] == "hook.survey_done"
    assert event["call_id"] == CALL


def test_event_id_defaults_to_a_fresh_uuid4() -> None:
    first, second = _event()["event_id"], _event()["event_id"]
    assert first != second
    assert UUID(first).version == 4 and str(UUID(first)) == first


def test_occurred_at_is_written_in_utc() -> None:
    local = datetime(2026, 11, 22, 13, 31, tzinfo=timezone(timedelta(hours=3)))
    assert _event(occurred_at=local)["occurred_at"] == "2026-11-22T10:31:00.000000+00:00"


def test_event_encodes_to_json() -> None:
    event = _event(data={"at": T0, "status": CallStatus.ANSWERED})
    decoded = json.loads(encode_json(event))
    assert decoded["data"] == {"at": "2026-11-22T10:31:00.000000+00:00", "status": "answered"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"event_type": "call.exploded"},
        {"event_type": "hook."},
        {"event_type": "hook.a.b"},
        {"seq": 0},
        {"seq": True},
        {"tenant": "Acme"},
        {"tenant": "acme.other"},
        {"subject_id": "a.b"},
        {"subject_id": "#"},
        {"subject_id": ""},
    ],
    ids=lambda o: "-".join(f"{k}={v!r}" for k, v in o.items()),
)
def test_make_event_refuses_what_would_break_routing_or_ordering(
    overrides: dict[str, Any],
) -> None:
    with pytest.raises(ValueError):
        _event(**overrides)


@pytest.mark.parametrize(
    ("tenant", "event_type", "subject", "key"),
    [
        ("acme", EventType.CALL_ANSWERED, CALL, f"acme.call.answered.{CALL}"),
        ("acme", "flashcall.verified", ORDER, f"acme.flashcall.verified.{ORDER}"),
        ("acme", "hook.survey_done", CALL, f"acme.hook.survey_done.{CALL}"),
        ("default", EventType.CALL_CDR, CALL, f"default.call.cdr.{CALL}"),
    ],
)
def test_event_routing_key(tenant: str, event_type: str, subject: str, key: str) -> None:
    assert event_routing_key(tenant, event_type, subject) == key


@pytest.mark.parametrize(
    ("tenant", "event_type", "subject"),
    [("acme.x", "call.answered", CALL), ("acme", "call.nope", CALL),
     ("acme", "call.answered", "a.b"), ("acme", "call.answered", "*")],
)
def test_event_routing_key_refuses_unsafe_words(tenant: str, event_type: str, subject: str) -> None:
    with pytest.raises(ValueError):
        event_routing_key(tenant, event_type, subject)


# --- call snapshot -------------------------------------------------------------------

def _row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "call_id": CALL, "tenant": "acme", "status": CallStatus.RINGING,
        "direction": "outbound", "destination_number": "79991234567",
        "caller_id_number": "74951234567", "on_hold": False, "muted": False, "node": "fs1",
        "initiated_at": T0, "answered_at": None, "ended_at": None, "hangup_cause": None,
        "internal_column": "not for the wire",
    }
    row.update(overrides)
    return row


def test_snapshot_of_a_ringing_call() -> None:
    snap = call_snapshot(_row())
    assert list(snap) == list(CALL_SNAPSHOT_FIELDS)
    assert snap == {
        "call_id": CALL, "status": "ringing", "direction": "outbound",
        "destination_number": "79991234567", "caller_id_number": "74951234567",
        "on_hold": False, "muted": False, "node": "fs1",
        "initiated_at": "2026-11-22T10:31:00.000000+00:00", "answered_at": None,
        "ended_at": None, "duration_seconds": None, "hangup_cause": None,
        "user_id": None, "bridged_with": None, "cost_cents": None, "quality_score": None,
    }
    assert type(snap["status"]) is str


def test_snapshot_of_an_unanswered_ended_call_has_no_duration() -> None:
    snap = call_snapshot(_row(status="failed", ended_at=T0 + timedelta(seconds=20),
                              hangup_cause="USER_BUSY"))
    assert snap["duration_seconds"] is None
    assert snap["hangup_cause"] == "USER_BUSY"
    assert snap["ended_at"] == "2026-11-22T10:31:20.000000+00:00"


def test_snapshot_duration_counts_from_answer_to_end() -> None:
    snap = call_snapshot(_row(status=CallStatus.COMPLETED,
                              answered_at=T0 + timedelta(seconds=5),
                              ended_at=T0 + timedelta(seconds=47, milliseconds=900)))
    assert snap["duration_seconds"] == 42


def test_snapshot_duration_of_a_call_still_up_counts_to_now() -> None:
    row = _row(status=CallStatus.ON_HOLD, on_hold=True, answered_at=T0)
    assert call_snapshot(row, now=T0 + timedelta(seconds=90))["duration_seconds"] == 90
    assert call_snapshot(row, now=T0)["duration_seconds"] == 0
    assert call_snapshot(row, now=T0 - timedelta(seconds=3))["duration_seconds"] == 0
    assert call_snapshot(row)["duration_seconds"] >= 0
    assert call_snapshot(row)["on_hold"] is True


def test_snapshot_takes_naive_timestamps_as_utc() -> None:
    naive = T0.replace(tzinfo=None)
    snap = call_snapshot(_row(answered_at=naive, ended_at=naive + timedelta(seconds=7)))
    assert snap["answered_at"] == "2026-11-22T10:31:00.000000+00:00"
    assert snap["duration_seconds"] == 7
    mixed = call_snapshot(_row(answered_at=naive), now=T0 + timedelta(seconds=11))
    assert mixed["duration_seconds"] == 11


def test_snapshot_of_an_object_row() -> None:
    row = SimpleNamespace(**_row(on_hold=None, muted=1, answered_at=T0,
                                 ended_at=T0 + timedelta(seconds=3)))
    snap = call_snapshot(row)
    assert snap["on_hold"] is False and snap["muted"] is True
    assert snap["duration_seconds"] == 3


def test_cdr_data_picks_the_contract_fields() -> None:
    row: dict[str, Any] = {name: None for name in CDR_FIELDS}
    row.update(call_id=UUID(CALL), start_stamp=T0, billsec=12, missed_call=False, extra=1)
    data = cdr_data(row)
    assert list(data) == list(CDR_FIELDS)
    assert data["call_id"] == CALL
    assert data["start_stamp"] == "2026-11-22T10:31:00.000000+00:00"
    assert data["billsec"] == 12 and data["missed_call"] is False
