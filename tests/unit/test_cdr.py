"""CDR fields from a real CHANNEL_HANGUP_COMPLETE (capture 13)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from callworker.calls.cdr import cdr_fields, cdr_row, epoch_us, synthetic_cdr_fields
from callworker.calls.record import CallRecord
from callworker.calls.states import Status
from callworker.esl.codec import FrameParser, parse_event


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
    assert epoch_us("1349437306912868") == datetime.fromtimestamp(1349437306.912868, tz=UTC)
