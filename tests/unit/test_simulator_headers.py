"""The simulator's events have the header sets, order and encoding of the real captures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callworker.esl.codec import (
    FrameParser,
    encode_event_json,
    encode_event_plain,
    parse_event,
    parse_event_plain,
    url_encode,
)
from callworker.simulator.api import ApiRunner
from callworker.simulator.causes import cause_from_text, q850
from callworker.simulator.channel import Variables
from callworker.simulator.dialstring import ORIGINATE_USAGE, UsageError, parse_originate, split_args
from callworker.simulator.events import SimEvent, encode_value
from callworker.simulator.originate import originate
from callworker.simulator.reports import show, status_text
from callworker.simulator.subscription import Subscription
from callworker.simulator.switch import Switch, Timing

COMMON = [
    "Event-Name", "Core-UUID", "FreeSWITCH-Hostname", "FreeSWITCH-Switchname", "FreeSWITCH-IPv4",
    "FreeSWITCH-IPv6", "Event-Date-Local", "Event-Date-GMT", "Event-Date-Timestamp",
    "Event-Calling-File", "Event-Calling-Function", "Event-Calling-Line-Number", "Event-Sequence",
]
CODEC_HEADERS = {
    "Channel-Read-Codec-Name", "Channel-Read-Codec-Rate", "Channel-Read-Codec-Bit-Rate",
    "Channel-Write-Codec-Name", "Channel-Write-Codec-Rate", "Channel-Write-Codec-Bit-Rate",
}
# Empty on an originated gateway leg, so FreeSWITCH 1.10.12 drops them (as the simulator does);
# Caller-Network-Addr too, until the far end has responded.
EMPTY_ON_OUTBOUND = {"Caller-Username", "Caller-Dialplan"}
BEFORE_RESPONSE = {"Caller-Network-Addr"}


class Collector:
    """A listener that takes every event."""

    def __init__(self) -> None:
        self.events: list[SimEvent] = []

    def wants(self, name: str, subclass: str | None, variable: Callable[[str], str | None] | None = None) -> bool:
        return True

    def deliver(self, event: SimEvent) -> None:
        self.events.append(event)

    def named(self, name: str) -> SimEvent:
        return next(e for e in self.events if e.name == name)


def run_call(dial: str, *, far_end: float = 0.0) -> tuple[Collector, list[str]]:
    """Originate on a bare switch (no sockets) and let the call finish."""
    sw = Switch("sim1", "127.0.0.1", Timing(0.0, 0.0, far_end))
    collector = Collector()
    sw.listeners.append(collector)
    results: list[str] = []
    originate(sw, dial, results.append)
    sw.calls.join(timeout=10)
    return collector, results


def capture_event(captures_dir: Path, prefix: str) -> list[str]:
    raw = next(captures_dir.glob(f"{prefix}_*")).read_bytes()
    parser = FrameParser()
    parser.feed(raw)
    frame = parser.next_frame()
    assert frame is not None
    return parse_event(frame).names()


def names_in_order(event: SimEvent) -> list[str]:
    """Header names as a client parses them from the plain frame."""
    parser = FrameParser()
    parser.feed(event.frame("plain"))
    frame = parser.next_frame()
    assert frame is not None and parser.buffered == 0
    return parse_event(frame).names()


def channel_prefix(names: list[str]) -> list[str]:
    """Common headers and channel data, up to the end of the caller profile."""
    return names[: names.index("Caller-Privacy-Hide-Number") + 1]


def compare_order(ours: list[str], theirs: list[str]) -> tuple[list[str], list[str]]:
    shared = set(ours) & set(theirs)
    return [n for n in ours if n in shared], [n for n in theirs if n in shared]


ANSWERED = (
    "{origination_uuid=6c1e0c2a-56a4-4c9f-8c53-0f6e3c3c0001,origination_caller_id_name=Acme}"
    "sofia/gateway/gw/15550000200 &park()"
)


def test_hangup_complete_prefix_has_capture_13_order(captures_dir: Path) -> None:
    collector, _ = run_call(ANSWERED)
    ours = channel_prefix(names_in_order(collector.named("CHANNEL_HANGUP_COMPLETE")))
    theirs = channel_prefix(capture_event(captures_dir, "13"))
    mine, capture = compare_order(ours, theirs)
    assert mine == capture
    assert set(theirs) - set(ours) == EMPTY_ON_OUTBOUND
    assert ours[:14] == [*COMMON, "Hangup-Cause"]


def test_channel_create_prefix_has_capture_05_order(captures_dir: Path) -> None:
    collector, _ = run_call(ANSWERED)
    ours = channel_prefix(names_in_order(collector.named("CHANNEL_CREATE")))
    theirs = channel_prefix(capture_event(captures_dir, "05"))
    mine, capture = compare_order(ours, theirs)
    assert mine == capture
    # No media is negotiated yet when an outbound leg is created.
    assert set(theirs) - set(ours) == EMPTY_ON_OUTBOUND | BEFORE_RESPONSE | CODEC_HEADERS
    assert ours[:13] == COMMON


def test_state_and_callstate_events_carry_no_variables() -> None:
    collector, _ = run_call(ANSWERED)
    for event in collector.events:
        has_vars = any(name.startswith("variable_") for name, _ in event.pairs())
        expected = event.name not in ("CHANNEL_STATE", "CHANNEL_CALLSTATE", "CHANNEL_OUTGOING", "CODEC")
        assert has_vars == expected, event.name


def test_hangup_complete_is_large_and_carries_the_cdr() -> None:
    collector, results = run_call(ANSWERED, far_end=0.05)
    event = collector.named("CHANNEL_HANGUP_COMPLETE")
    frame = event.frame("plain")
    assert len(frame) > 6000 and sum(1 for _ in event.pairs()) > 150
    parsed = parse_event_plain(event.payload("plain"))
    start, answer, end = (int(parsed[f"variable_{n}_uepoch"]) for n in ("start", "answer", "end"))
    # ...0200 answers without ringing: in the start's 20 ms step, as on the real switch.
    assert start <= answer < end
    assert parsed["variable_billusec"] == str(end - answer)
    assert parsed["variable_uduration"] == str(end - start)
    assert parsed["variable_billsec"] == str(end // 1_000_000 - answer // 1_000_000)
    assert parsed["variable_hangup_cause"] == "NORMAL_CLEARING"
    assert parsed["variable_hangup_cause_q850"] == "16"
    assert parsed["variable_sip_hangup_disposition"] == "recv_bye"
    assert parsed["variable_rtp_audio_in_mos"] == "4.50"
    assert parsed["Caller-Channel-Hangup-Time"] == str(end)
    assert results == ["+OK 6c1e0c2a-56a4-4c9f-8c53-0f6e3c3c0001\n"]


@pytest.mark.parametrize("name", ["CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_STATE"])
def test_plain_and_json_match_the_codec_encoders_byte_for_byte(name: str) -> None:
    collector, _ = run_call(
        "{origination_caller_id_name='Ann & Bob: 100%',callworker_tenant='t 1'}"
        "sofia/gateway/gw/15550000200 &park()"
    )
    event = collector.named(name)
    pairs = list(event.pairs())
    assert event.payload("plain") == encode_event_plain(pairs, event.body)
    assert event.payload("json") == encode_event_json(pairs, event.body)


def test_values_are_url_encoded_like_the_captures() -> None:
    collector, _ = run_call(
        "{origination_caller_id_name='John Doe',origination_caller_id_number=+15551230000}"
        "sofia/gateway/gw/15550000200 &park()"
    )
    text = collector.named("CHANNEL_CREATE").payload("plain").decode()
    assert "\nCaller-Caller-ID-Name: John%20Doe\n" in text
    assert "\nCaller-Caller-ID-Number: %2B15551230000\n" in text
    assert "\nFreeSWITCH-IPv6: %3A%3A1\n" in text
    assert "\nvariable_origination_caller_id_name: John%20Doe\n" in text
    assert text.endswith("\n\n")


@given(st.text(max_size=40))
def test_fast_value_encoding_equals_the_codec(value: str) -> None:
    assert encode_value(value) == url_encode(value)


def test_background_job_body_follows_an_inner_content_length() -> None:
    sw = Switch("sim1", "127.0.0.1", Timing(0, 0, 0))
    collector = Collector()
    sw.listeners.append(collector)
    ApiRunner(sw).background_job("j-1", "status", "")("+OK done\n")
    event = collector.named("BACKGROUND_JOB")
    payload = event.payload("plain")
    assert payload.endswith(b"Job-UUID: j-1\nJob-Command: status\nContent-Length: 9\n\n+OK done\n")
    assert parse_event_plain(payload).body == "+OK done\n"


def test_event_sequence_rises_across_the_switch() -> None:
    collector, _ = run_call(ANSWERED)
    numbers = [int(e.get("Event-Sequence") or 0) for e in collector.events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


# ------------------------------------------------------------------ dial strings


def test_originate_arguments_keep_quoted_spaces_and_escaped_commas() -> None:
    args = parse_originate(
        "{a=b,origination_caller_id_name='John Doe',list=x\\,y}[leg=1]sofia/gateway/gw/123 &park()"
    )
    assert args.variables == [("a", "b"), ("origination_caller_id_name", "John Doe"),
                              ("list", "x,y"), ("leg", "1")]
    assert args.endpoint == "sofia/gateway/gw/123"
    assert (args.app, args.app_arg, args.timeout) == ("park", "", 60)


def test_originate_timeout_variable_overrides_the_argument() -> None:
    args = parse_originate("{originate_timeout=7}sofia/gateway/gw/1 &echo() XML default A 1 30")
    assert (args.timeout, args.app, args.cid_name, args.cid_num) == (7, "echo", "A", "1")


@pytest.mark.parametrize("text", ["", "sofia/gateway/gw/1", "a b c d e f g h"])
def test_originate_with_wrong_argument_count_gives_usage(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_originate(text)
    assert str(caught.value) == ORIGINATE_USAGE


def test_split_args_removes_outer_quotes_only() -> None:
    assert split_args("{x='a b'}y '&park()'  z") == ["{x='a b'}y", "&park()", "z"]


# ----------------------------------------------------------------------- causes


def test_causes_by_name_number_and_unknown() -> None:
    assert cause_from_text("user_busy") == "USER_BUSY"
    assert cause_from_text("17") == "USER_BUSY"
    assert cause_from_text("NO_SUCH_CAUSE") == "NORMAL_CLEARING"
    assert (q850("ORIGINATOR_CANCEL"), q850("NO_ANSWER"), q850("UNALLOCATED_NUMBER")) == (16, 19, 1)


# ---------------------------------------------------------------------- filters


def test_filters_are_ored_case_insensitive_and_support_regex_and_negation() -> None:
    collector, _ = run_call(ANSWERED)
    create = collector.named("CHANNEL_CREATE")
    answer = collector.named("CHANNEL_ANSWER")
    sub = Subscription()
    sub.add_filter("Event-Name", "channel_create")
    sub.add_filter("Event-Name", "/^CHANNEL_ANS/")
    assert sub.passes(create) and sub.passes(answer)
    assert not sub.passes(collector.named("CHANNEL_PARK"))
    sub.add_filter("Answer-State", "-answered")
    assert not sub.passes(answer)
    sub.delete_filter("all", None)
    assert sub.passes(collector.named("CHANNEL_PARK"))


def test_custom_subclasses_need_to_be_listed() -> None:
    sub = Subscription()
    sub.add(["CHANNEL_ANSWER", "CUSTOM", "my::event"])
    assert sub.wants("CUSTOM", "my::event") and not sub.wants("CUSTOM", "other::event")
    assert sub.wants("CHANNEL_ANSWER", None) and not sub.wants("CHANNEL_PARK", None)
    sub.add(["ALL"])
    assert sub.wants("CUSTOM", "other::event")


# ---------------------------------------------------------------------- reports


def test_status_has_the_shape_of_capture_19(captures_dir: Path) -> None:
    raw = next(captures_dir.glob("19_*")).read_bytes()
    real = raw.split(b"\n\n", 1)[1].decode().splitlines(keepends=True)
    ours = status_text(Switch("sim1", "127.0.0.1", Timing(0, 0, 0))).splitlines(keepends=True)
    assert len(ours) == len(real)
    for mine, theirs in zip(ours, real, strict=True):
        assert [w for w in mine.split(" ") if not w.isdigit()] == [
            w for w in theirs.split(" ") if not w.isdigit()
        ]
    assert ours[3].endswith(" \n") and ours[4].endswith(" \n")


def test_show_channels_with_no_rows() -> None:
    sw = Switch("sim1", "127.0.0.1", Timing(0, 0, 0))
    assert show(sw, "channels as json") == '{"row_count": 0}\n'
    assert show(sw, "channels") == "\n0 total.\n"


def test_privacy_and_caller_id_come_from_the_dial_string() -> None:
    collector, _ = run_call(
        "{origination_privacy=hide_name:hide_number,origination_caller_id_number=100}"
        "sofia/gateway/gw/15550000200 &park()"
    )
    create = collector.named("CHANNEL_CREATE")
    assert create.get("Caller-Privacy-Hide-Name") == "true"
    assert create.get("Caller-Privacy-Hide-Number") == "true"
    assert create.get("Caller-Caller-ID-Number") == "100"


def test_a_variable_set_again_moves_to_the_end() -> None:
    variables = Variables()
    variables.update([("a", "1"), ("b", "2")])
    variables.set("a", "3")
    assert variables.block().pairs == [("variable_b", "2"), ("variable_a", "3")]
    assert variables.block().plain == b"variable_b: 2\nvariable_a: 3\n"
    variables.set("b", "")
    assert variables.copy() == {"a": "3"}
