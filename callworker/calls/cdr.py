"""Call detail records from CHANNEL_HANGUP_COMPLETE (fields after FusionPBX's v_xml_cdr)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from callworker.calls.clean import clean_name, clean_number, clean_token
from callworker.calls.record import CallRecord
from callworker.esl.codec import Event

__all__ = ["cdr_fields", "cdr_row", "synthetic_cdr_fields", "epoch_us", "Q850"]

# q850 codes of the causes a call can end with before FreeSWITCH made a channel.
Q850 = {
    "UNALLOCATED_NUMBER": 1,
    "NO_ROUTE_DESTINATION": 3,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20,
    "CALL_REJECTED": 21,
    "DESTINATION_OUT_OF_ORDER": 27,
    "INVALID_NUMBER_FORMAT": 28,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "CHAN_NOT_IMPLEMENTED": 66,
    "RECOVERY_ON_TIMER_EXPIRE": 102,
    "ORIGINATOR_CANCEL": 16,
}


def epoch_us(value: str | None) -> datetime | None:
    """A FreeSWITCH microsecond epoch ("0" means never) as an aware datetime."""
    if not value or value == "0":
        return None
    try:
        return datetime.fromtimestamp(int(value) / 1_000_000, tz=UTC)
    except (ValueError, OverflowError):
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _pdd_ms(event: Event) -> int | None:
    """Post-dial delay: from the start to the first progress (180 or 183), in ms."""
    marks = [_int(event.get(name)) for name in ("variable_progressmsec", "variable_progress_mediamsec")]
    positive = [mark for mark in marks if mark]
    return min(positive) if positive else None


def cdr_fields(event: Event) -> dict[str, Any]:
    """What CHANNEL_HANGUP_COMPLETE says about the leg (read outside the journal)."""
    cause = event.get("variable_hangup_cause") or event.get("Hangup-Cause")
    return {
        "caller_id_name": clean_name(event.get("Caller-Caller-ID-Name")),
        "caller_id_number": clean_number(event.get("Caller-Caller-ID-Number")),
        "destination_number": clean_number(event.get("Caller-Destination-Number")),
        "start_stamp": epoch_us(event.get("variable_start_uepoch")),
        "answer_stamp": epoch_us(event.get("variable_answer_uepoch")),
        "end_stamp": epoch_us(event.get("variable_end_uepoch")),
        "duration": _int(event.get("variable_duration")),
        "billsec": _int(event.get("variable_billsec")),
        "billmsec": _int(event.get("variable_billmsec")),
        "hangup_cause": clean_token(cause),
        "hangup_cause_q850": _int(event.get("variable_hangup_cause_q850")),
        "sip_hangup_disposition": clean_token(event.get("variable_sip_hangup_disposition")),
        "pdd_ms": _pdd_ms(event),
        "rtp_audio_in_mos": _float(event.get("variable_rtp_audio_in_mos")),
        "read_codec": clean_token(event.get("variable_read_codec")),
        "write_codec": clean_token(event.get("variable_write_codec")),
    }


def synthetic_cdr_fields(record: CallRecord, cause: str, ended_at: datetime) -> dict[str, Any]:
    """A CDR for a call that ended without a channel (FreeSWITCH refused it outright)."""
    start = record.initiated_at
    return {
        "caller_id_name": record.caller_id_name,
        "caller_id_number": record.caller_id_number,
        "destination_number": record.destination_number,
        "start_stamp": start,
        "answer_stamp": None,
        "end_stamp": ended_at,
        "duration": max(0, int((ended_at - start).total_seconds())),
        "billsec": 0,
        "billmsec": 0,
        "hangup_cause": cause,
        "hangup_cause_q850": Q850.get(cause),
        "sip_hangup_disposition": None,
        "pdd_ms": None,
        "rtp_audio_in_mos": None,
        "read_codec": None,
        "write_codec": None,
    }


def cdr_row(
    record: CallRecord, fields: dict[str, Any], *, now: datetime, reconstructed: bool = False
) -> dict[str, Any]:
    """The ``cdrs`` row: FreeSWITCH's figures plus what the worker knows of the call."""
    row = dict(fields)
    row.update(
        call_id=record.call_id,
        tenant=record.tenant,
        direction=record.direction,
        node=record.node,
        flashcall_order_id=record.flashcall_order_id,
        missed_call=record.direction == "inbound" and record.answered_at is None,
        reconstructed=reconstructed,
        created_at=now,
    )
    if record.flashcall_order_id is not None:
        # FreeSWITCH's caller ID of a flash call carries the code: keep the worker's
        # masked one instead.
        row["caller_id_number"] = record.caller_id_number
        row["caller_id_name"] = record.caller_id_name
    for name in ("caller_id_number", "caller_id_name", "destination_number"):
        if row.get(name) is None:
            row[name] = getattr(record, name)
    return row
