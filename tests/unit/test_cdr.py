"""CDR fields from a real CHANNEL_HANGUP_COMPLETE (capture 13), and from any values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from callworker.calls.cdr import _float, _int, _int64, cdr_fields, cdr_row, epoch_us, synthetic_cdr_fields
from callworker.calls.clean import clean_name, clean_number, clean_token
from callworker.calls.record import CallRecord
from callworker.calls.states import Status
from callworker.esl.codec import (
    Event,
    Frame,
    FrameParser,
    encode_event_json,
    encode_event_plain,
    parse_event,
    parse_event_json,
    parse_event_plain,
)
from tests.capture_frames import event_frames


def _hangup_complete(captures_dir: Path):
    parser = FrameParser()
    parser.feed((captures_dir / "13_channel_hangup_complete_originator_cancel_plain_2012.txt").read_bytes())
    return parse_event(next(iter(parser)))


def _record(direction: str = "inbound") -> CallRecord:
    return CallRecord(
        call_id="303c0f9f-4b32-4b9b-9f77-df0ca215bbe7", tenant="acme", node="fs1",
        direction=direction, status=Status.FAILED,
        initiated_at=datetime(2012, 10, 5, 11, 41, 46, tzinfo=UTC),
    )


def test_cdr_from_a_real_hangup_complete(captures_dir: Path) -> None:
    fields = cdr_fields(_hangup_complete(captures_dir))
    assert fields["hangup_cause"] == "ORIGINATOR_CANCEL"
    assert fields["hangup_cause_q850"] == 16
    assert fields["caller_id_number"] == "4986517174963"
    assert fields["destination_number"] == "4986517174963"
    assert fields["start_stamp"] == datetime.fromtimestamp(1349437306.912868, tz=UTC)
    assert fields["answer_stamp"] is None
    assert fields["end_stamp"] == datetime.fromtimestamp(1349437362.372974, tz=UTC)
    assert (fields["duration"], fields["billsec"], fields["billmsec"]) == (56, 0, 0)
    assert fields["read_codec"] == "PCMA" and fields["write_codec"] == "PCMA"
    assert fields["pdd_ms"] is None  # never progressed


def test_an_unanswered_inbound_call_is_a_missed_call(captures_dir: Path) -> None:
    now = datetime.now(UTC)
    row = cdr_row(_record("inbound"), cdr_fields(_hangup_complete(captures_dir)), now=now)
    assert row["missed_call"] is True and row["tenant"] == "acme" and row["node"] == "fs1"
    outbound = cdr_row(_record("outbound"), cdr_fields(_hangup_complete(captures_dir)), now=now)
    assert outbound["missed_call"] is False


def test_a_call_refused_before_any_channel_still_gets_a_cdr() -> None:
    record = _record("outbound")
    record.destination_number = "+15551230404"
    ended = datetime(2012, 10, 5, 11, 41, 50, tzinfo=UTC)
    fields = synthetic_cdr_fields(record, "UNALLOCATED_NUMBER", ended)
    assert fields["hangup_cause_q850"] == 1 and fields["duration"] == 4 and fields["billsec"] == 0
    assert fields["destination_number"] == "+15551230404"


def test_epoch_zero_means_never() -> None:
    assert epoch_us("0") is None and epoch_us(None) is None and epoch_us("x") is None
    assert epoch_us("9" * 23) is None  # beyond any datetime: no stamp rather than a lost hangup
    assert epoch_us("1349437306912868") == datetime.fromtimestamp(1349437306.912868, tz=UTC)


# ------------------------------------------- the batched read against one get per field

_CDR_HEADERS = (
    "Caller-Orig-Caller-ID-Name", "Caller-Orig-Caller-ID-Number", "Caller-Caller-ID-Name",
    "Caller-Caller-ID-Number", "Caller-Destination-Number", "Hangup-Cause",
    "variable_start_uepoch", "variable_answer_uepoch", "variable_end_uepoch", "variable_duration",
    "variable_billsec", "variable_billmsec", "variable_hangup_cause", "variable_hangup_cause_q850",
    "variable_sip_hangup_disposition", "variable_progress_uepoch", "variable_progress_media_uepoch",
    "variable_rtp_audio_in_mos", "variable_read_codec", "variable_write_codec",
)
_ODD_VALUES = st.sampled_from([
    "0", "16", "-3", " 42 ", "1.5", "nan", "inf", "1e3", "x", "99999999999999999999999", "1349437306912868",
    "ORIGINATOR_CANCEL", " PCMA ", "PCMU@8000h", "send_bye", "Jürgen\tMüller\u200b", "a b%20c", "%", "%4",
    "+4986517174963", "4986 517", "\x00",
])
_VALUES = st.one_of(st.none(), _ODD_VALUES, st.text(max_size=30))


def _cdr_fields_one_get_each(event: Event) -> dict[str, Any]:
    """The CDR as read one ``get`` per field: what ``cdr_fields`` must equal."""
    cause = event.get("variable_hangup_cause") or event.get("Hangup-Cause")
    start = _int64(event.get("variable_start_uepoch"))
    marks = [_int64(event.get(n)) for n in ("variable_progress_uepoch", "variable_progress_media_uepoch")]
    positive = [mark for mark in marks if mark]
    pdd = _int(str(max(0, (min(positive) - start) // 1000))) if start and positive else None
    orig_name, orig_number = event.get("Caller-Orig-Caller-ID-Name"), event.get("Caller-Orig-Caller-ID-Number")
    swapped = orig_name is not None or orig_number is not None
    return {
        "caller_id_name": clean_name(orig_name if swapped else event.get("Caller-Caller-ID-Name")),
        "caller_id_number": clean_number(orig_number if swapped else event.get("Caller-Caller-ID-Number")),
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
        "pdd_ms": pdd,
        "rtp_audio_in_mos": _float(event.get("variable_rtp_audio_in_mos")),
        "read_codec": clean_token(event.get("variable_read_codec")),
        "write_codec": clean_token(event.get("variable_write_codec")),
    }


def _outcome(read: Callable[[Event], dict[str, Any]], event: Event) -> str:
    """What a read gives, as text: a "nan" MOS is a float that equals nothing, itself included."""
    try:
        return repr(read(event))
    except Exception as exc:  # noqa: BLE001 - an error must be the same error
        return f"raises {exc!r}"


def _same_cdr(parse: Callable[[], Event]) -> None:
    assert _outcome(cdr_fields, parse()) == _outcome(_cdr_fields_one_get_each, parse())


def _hangup_complete_frames(captures_dir: Path) -> list[Frame]:
    return event_frames(captures_dir, name="CHANNEL_HANGUP_COMPLETE")


def test_a_mos_that_is_not_a_finite_number_reads_as_unknown() -> None:
    # It travels in the call.cdr event's JSON, where NaN is not a value: PostgreSQL
    # would refuse the whole batch of other calls' events along with it.
    read = [_float(text) for text in ("4.5", "nan", "inf", "-Infinity", "", None)]
    assert read == [4.5, None, None, None, None, None]


def test_a_number_too_large_for_its_column_reads_as_unknown() -> None:
    # The CDR goes into an integer column: a value past it would make the database
    # refuse the whole batch of other calls' events along with it.
    assert _int(str(2**31 - 1)) == 2**31 - 1
    assert _int(str(2**31)) is None and _int("-" + "9" * 30) is None


def test_every_captured_hangup_complete_gives_the_cdr_of_one_get_per_field(captures_dir: Path) -> None:
    frames = _hangup_complete_frames(captures_dir)
    assert len(frames) >= 2  # capture 00's call and capture 13
    for frame in frames:
        _same_cdr(partial(parse_event, frame))
        # The same event without the variables a CDR falls back from, and fully decoded first.
        headers = [(k, v) for k, v in parse_event(frame).headers().items() if k != "variable_hangup_cause"]

        def plain(headers: list[tuple[str, str]] = headers) -> Event:
            return parse_event_plain(encode_event_plain(headers))

        def as_json(headers: list[tuple[str, str]] = headers) -> Event:
            return parse_event_json(encode_event_json(headers))

        _same_cdr(plain)
        _same_cdr(as_json)
        split = parse_event(frame)
        split.headers()

        def given_split(split: Event = split) -> Event:
            return split

        _same_cdr(given_split)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({name: _VALUES for name in _CDR_HEADERS}), st.booleans())
def test_any_cdr_values_give_the_cdr_of_one_get_per_field(
    captures_dir: Path, values: dict[str, str | None], in_front: bool
) -> None:
    base = [(k, v) for k, v in _hangup_complete(captures_dir).headers().items() if k not in values]
    drawn = [(name, value) for name, value in values.items() if value is not None]
    headers = [*drawn, *base] if in_front else [*base, *drawn]
    _same_cdr(lambda: parse_event_plain(encode_event_plain(headers)))
    _same_cdr(lambda: parse_event_json(encode_event_json(headers)))


def test_empty_cdr_lines_read_as_empty_values() -> None:
    # encode_event_plain drops empty values; FreeSWITCH's "Name:" lines are written by hand.
    empty = "".join(f"{name}:\n" for name in _CDR_HEADERS if name != "Hangup-Cause")
    block = empty + "Hangup-Cause: NORMAL_CLEARING\n"
    _same_cdr(lambda: parse_event_plain(block.encode()))
    assert cdr_fields(parse_event_plain(block.encode()))["hangup_cause"] == "NORMAL_CLEARING"


def _event(**headers: str) -> Event:
    return parse_event_plain(encode_event_plain(list(headers.items())))


def test_an_answered_outbound_leg_keeps_the_caller_id_that_was_sent() -> None:
    """FreeSWITCH swaps caller and callee ID on answer; the Orig-* fields keep the caller's."""
    event = _event(**{
        "Event-Name": "CHANNEL_HANGUP_COMPLETE",
        "Caller-Caller-ID-Name": "+15551230001", "Caller-Caller-ID-Number": "+15551230001",
        "Caller-Orig-Caller-ID-Name": "Front Desk", "Caller-Orig-Caller-ID-Number": "+15550001111",
    })
    fields = cdr_fields(event)
    assert (fields["caller_id_name"], fields["caller_id_number"]) == ("Front Desk", "+15550001111")
    plain = cdr_fields(_event(**{"Event-Name": "CHANNEL_HANGUP_COMPLETE", "Caller-Caller-ID-Number": "+15550002222"}))
    assert plain["caller_id_number"] == "+15550002222"
    # Placed without a name: FreeSWITCH sends an Orig number and no Orig name, and the
    # name left in Caller-Caller-ID-Name is the far end's number, not the caller's.
    nameless = cdr_fields(_event(**{
        "Event-Name": "CHANNEL_HANGUP_COMPLETE",
        "Caller-Caller-ID-Name": "+15551230200", "Caller-Caller-ID-Number": "+15551230200",
        "Caller-Orig-Caller-ID-Number": "+15550001111",
    }))
    assert (nameless["caller_id_name"], nameless["caller_id_number"]) == (None, "+15550001111")


def test_pdd_is_zero_when_the_first_ring_falls_in_the_starting_20_ms_step() -> None:
    start = "1796173123065540"
    rang_at_once = _event(**{"Event-Name": "X", "variable_start_uepoch": start,
                             "variable_progress_uepoch": start, "variable_progressmsec": "0"})
    assert cdr_fields(rang_at_once)["pdd_ms"] == 0
    later = _event(**{"Event-Name": "X", "variable_start_uepoch": start,
                      "variable_progress_uepoch": "1796173123365540",
                      "variable_progress_media_uepoch": "1796173123185540"})
    assert cdr_fields(later)["pdd_ms"] == 120  # the earlier of 180 and 183
    never = _event(**{"Event-Name": "X", "variable_start_uepoch": start, "variable_progress_uepoch": "0"})
    assert cdr_fields(never)["pdd_ms"] is None
