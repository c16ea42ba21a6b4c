"""Call detail records from CHANNEL_HANGUP_COMPLETE (fields after FusionPBX's v_xml_cdr)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from callworker.calls.clean import clean_name, clean_number, clean_token
from callworker.calls.record import CallRecord
from callworker.esl.causes import q850
from callworker.esl.codec import Event, HeaderBatch

__all__ = ["cdr_fields", "cdr_row", "synthetic_cdr_fields", "epoch_us"]


def epoch_us(value: str | None) -> datetime | None:
    """A FreeSWITCH microsecond epoch ("0" means never) as an aware datetime."""
    if not value or value == "0":
        return None
    try:
        # tz passed by position: the keyword form costs a third more per call.
        return datetime.fromtimestamp(int(value) / 1_000_000, UTC)
    except (ValueError, OverflowError, OSError):  # OSError: past what the platform's time holds
        return None


_INT32 = range(-(2**31), 2**31)  # the CDR's integer columns


def _int(value: str | None) -> int | None:
    """A whole number that fits its column; None otherwise (one bad value must not sink a batch)."""
    try:
        number = int(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is None or number in _INT32 else None


def _float(value: str | None) -> float | None:
    """A finite float, or None: "nan" or "inf" is no measurement, and JSON cannot carry it."""
    try:
        number = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is None or math.isfinite(number) else None


def _pdd_ms(start: str | None, progress: str | None, progress_media: str | None) -> int | None:
    """Post-dial delay: from the start to the first progress (180 or 183), in ms.

    Read from the microsecond epochs, not ``progressmsec``: FreeSWITCH's clock moves in
    20 ms steps, so a 180 in the start's step has ``progressmsec`` 0, the same as never.
    """
    begun = _int64(start)
    marks = [mark for mark in (_int64(progress), _int64(progress_media)) if mark]
    if not begun or not marks:
        return None
    return _int(str(max(0, (min(marks) - begun) // 1000)))


def _int64(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


# Every value a CDR reads, fetched together: the variables come from one pass over
# the event (a HANGUP_COMPLETE is 6-12 KB) rather than one search each.
_CDR_READS = HeaderBatch((
    "Caller-Orig-Caller-ID-Name",
    "Caller-Orig-Caller-ID-Number",
    "Caller-Caller-ID-Name",
    "Caller-Caller-ID-Number",
    "Caller-Destination-Number",
    "variable_start_uepoch",
    "variable_answer_uepoch",
    "variable_end_uepoch",
    "variable_duration",
    "variable_billsec",
    "variable_billmsec",
    "variable_hangup_cause",
    "variable_hangup_cause_q850",
    "variable_sip_hangup_disposition",
    "variable_progress_uepoch",
    "variable_progress_media_uepoch",
    "variable_rtp_audio_in_mos",
    "variable_read_codec",
    "variable_write_codec",
))


def cdr_fields(event: Event) -> dict[str, Any]:
    """What CHANNEL_HANGUP_COMPLETE says about the leg (read outside the journal)."""
    (
        orig_name, orig_number, caller_name, caller_number, destination,
        start, answer, end, duration, billsec, billmsec,
        cause, q850, disposition, progress, progress_media, mos, read_codec, write_codec,
    ) = event.get_many(_CDR_READS)
    # FreeSWITCH swaps caller and callee ID of an outbound leg when it is answered:
    # Caller-Caller-ID-* then name the far end, and the Orig-* fields the caller. The
    # pair goes together: a call placed without a name has an Orig number and no Orig
    # name, and the name left in Caller-Caller-ID-Name is the far end's.
    swapped = orig_number is not None or orig_name is not None
    return {
        "caller_id_name": clean_name(orig_name if swapped else caller_name),
        "caller_id_number": clean_number(orig_number if swapped else caller_number),
        "destination_number": clean_number(destination),
        "start_stamp": epoch_us(start),
        "answer_stamp": epoch_us(answer),
        "end_stamp": epoch_us(end),
        "duration": _int(duration),
        "billsec": _int(billsec),
        "billmsec": _int(billmsec),
        "hangup_cause": clean_token(cause or event.get("Hangup-Cause")),
        "hangup_cause_q850": _int(q850),
        "sip_hangup_disposition": clean_token(disposition),
        "pdd_ms": _pdd_ms(start, progress, progress_media),
        "rtp_audio_in_mos": _float(mos),
        "read_codec": clean_token(read_codec),
        "write_codec": clean_token(write_codec),
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
        "hangup_cause_q850": q850(cause),
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
        user_id=record.user_id,
        bridged_with=record.bridged_partner(),
        gateway=record.gateway,
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
        if row.get(name) is None or record.is_erased(name):
            # Erased from the call while it was up: FreeSWITCH still says it in clear.
            row[name] = getattr(record, name)
    return record.scrubbed(row) if record.scrubs else row
