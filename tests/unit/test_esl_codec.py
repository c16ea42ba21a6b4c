"""The ESL codec over the real captures: byte-exact, whatever way the bytes arrive."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from callworker.errors import ProtocolError, UnsafeValue
from callworker.esl.codec import (
    DISCONNECT_TEXT,
    Command,
    CommandParser,
    Frame,
    FrameParser,
    api_response,
    command_reply,
    disconnect_notice,
    encode_command,
    encode_event_json,
    encode_event_plain,
    event_frame,
    parse_event,
    parse_event_json,
    parse_event_plain,
    rude_rejection,
    url_encode,
)

# Captures holding bytes exactly as FreeSWITCH sent them (SOURCES.md: level RAW).
RAW = ["00", *(f"{n:02}" for n in range(1, 17)), "19", "20", "21", "22", "24", "25", "27"]
NEXT_FRAME_START = b"Content-Length: 900\nContent-Type: text/event-plain\n\nEvent-Name: HEART"


def capture(captures_dir: Path, prefix: str) -> bytes:
    (path,) = captures_dir.glob(f"{prefix}_*.txt")
    return path.read_bytes()


def feed_in(chunks: list[bytes]) -> tuple[list[Frame], FrameParser]:
    parser = FrameParser()
    frames: list[Frame] = []
    for chunk in chunks:
        parser.feed(chunk)
        frames.extend(parser)
    return frames, parser


def random_splits(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 200))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def frames_of(data: bytes) -> list[Frame]:
    frames, parser = feed_in([data])
    assert parser.buffered == 0
    return frames


# ----------------------------------------------------------------------- framing


@pytest.mark.parametrize("prefix", RAW)
def test_raw_captures_frame_the_same_whole_bytewise_and_split(
    captures_dir: Path, prefix: str
) -> None:
    data = capture(captures_dir, prefix)
    whole = frames_of(data)
    assert whole
    bytewise, parser = feed_in([data[i : i + 1] for i in range(len(data))])
    assert bytewise == whole and parser.buffered == 0
    for seed in range(5):
        assert feed_in(random_splits(data, seed))[0] == whole
    trailing, parser = feed_in([data + NEXT_FRAME_START])
    assert trailing == whole
    assert parser.next_frame() is None and parser.buffered > 0
    for frame in whole:
        if frame.content_type.startswith("text/event-"):
            assert parse_event(frame).name


def test_the_2012_stream_has_45_events_and_one_resync(captures_dir: Path) -> None:
    data = capture(captures_dir, "00")
    frames, parser = feed_in([data])
    assert len(frames) == 45
    assert parser.resyncs == 1  # the junk "\nuuid_transfer " before an out-of-order HEARTBEAT
    events = [parse_event(frame) for frame in frames]
    names = [event.name for event in events]
    assert names.count("HEARTBEAT") == 4
    assert names[-3:] == ["CHANNEL_DESTROY", "CHANNEL_CALLSTATE", "CHANNEL_STATE"]
    assert events[-1]["Channel-State"] == "CS_DESTROY"
    assert events[-1]["Channel-Name"] == "sofia/B2BUA/4986517174963@call-home.net"
    assert feed_in([data[i : i + 1] for i in range(len(data))])[1].resyncs == 1


def test_event_values_decode_one_by_one(captures_dir: Path) -> None:
    (frame,) = frames_of(capture(captures_dir, "05"))
    event = parse_event(frame)
    assert event.name == "CHANNEL_CREATE"
    assert event["Event-Date-GMT"] == "Fri, 05 Oct 2012 11:41:46 GMT"
    assert event["Channel-Name"] == "sofia/B2BUA/4986517174963@call-home.net"
    sdp = event["variable_switch_r_sdp"]
    assert sdp.startswith("v=0\r\no=4986517174963 0 0 IN IP4 10.10.10.155\r\n")
    assert sdp.endswith("\r\n") and "m=audio" in sdp
    assert not any(name.startswith(("o=", "m=", "a=")) for name in event.names())


def test_hangup_complete_of_a_cancelled_call(captures_dir: Path) -> None:
    (frame,) = frames_of(capture(captures_dir, "13"))
    event = parse_event(frame)
    assert event.name == "CHANNEL_HANGUP_COMPLETE"
    assert event["Hangup-Cause"] == "ORIGINATOR_CANCEL"
    assert event["variable_hangup_cause_q850"] == "16"
    assert event["variable_sip_term_status"] == "487"


def test_background_job_bodies(captures_dir: Path) -> None:
    (plain,) = frames_of(capture(captures_dir, "20"))
    event = parse_event(plain)
    assert (event.name, event.body) == ("BACKGROUND_JOB", "-ERR NO_ROUTE_DESTINATION\n")
    assert event["Job-UUID"] == "4786f47d-2b41-48e4-813b-380f1e9bf359"
    arg = event["Job-Command-Arg"]
    assert arg.startswith("{origination_uuid=07295f9a-b09f-425e-b9d2-1a0562748035,")
    assert arg.endswith("apn-esl-core-smoke &park()")
    assert "Job-Owner-UUID" not in event and "Content-Length" not in event
    (js,) = frames_of(capture(captures_dir, "21"))
    event = parse_event(js)
    assert event.body == "+OK bbc848fb-ad50-4908-9ae4-6b124ca4d3b1\n"
    assert event["Job-UUID"] == "1dd29eca-8fed-476a-a9e8-69dc5615f2e2"
    assert "_body" not in event


def test_bgapi_reply_and_json_background_job(captures_dir: Path) -> None:
    reply, job = frames_of(capture(captures_dir, "27"))
    assert reply.reply_text() == "+OK Job-UUID: 7eb95f51-a8e3-4b30-80c1-230c2b9170ef"
    assert reply.headers["Job-UUID"] == "7eb95f51-a8e3-4b30-80c1-230c2b9170ef"
    event = parse_event(job)
    assert event["Job-UUID"] == reply.headers["Job-UUID"]
    assert event.body is not None and "last 5min 0 \n" in event.body


def test_a_frame_two_bytes_short_is_waited_for_not_misframed(captures_dir: Path) -> None:
    data = capture(captures_dir, "26")  # an editor removed two trailing spaces from the body
    frames, parser = feed_in([data])
    (reply,) = frames
    assert reply.reply_text() == "+OK Job-UUID: fd690cce-a6f1-4e8f-8200-99b8c8dcb3e7"
    assert parser.next_frame() is None
    parser.feed(b"  ")
    event = parse_event(parser.next_frame() or Frame({}))
    assert event.name == "BACKGROUND_JOB"
    assert event["Job-UUID"] == "fd690cce-a6f1-4e8f-8200-99b8c8dcb3e7"
    assert parser.buffered == 0


def test_outbound_connect_reply_is_header_only_with_content_type_near_the_end(
    captures_dir: Path,
) -> None:
    connect, *replies = frames_of(capture(captures_dir, "15"))
    assert connect.body == b""
    names = list(connect.headers)
    assert names[0] == "Event-Name" and names.index("Content-Type") > len(names) - 5
    assert connect.content_type == "command/reply"
    assert connect.reply_text() == "+OK\n"
    assert connect.headers["Socket-Mode"] == "async" and connect.headers["Control"] == "full"
    assert connect.headers["Channel-Caller-ID-Name"] == "Dan X-Lite"
    assert [frame.reply_text() for frame in replies] == [
        "+OK event listener enabled plain",
        "+OK will linger",
        "+OK",
    ]


def test_exit_reply_and_disconnect_notice(captures_dir: Path) -> None:
    bye, notice = frames_of(capture(captures_dir, "16"))
    assert bye.reply_text() == "+OK bye"
    assert notice.content_type == "text/disconnect-notice"
    assert notice.headers["Content-Disposition"] == "disconnect"
    assert notice.body == DISCONNECT_TEXT.encode()


def test_api_response_log_data_and_json_api_event(captures_dir: Path) -> None:
    (status,) = frames_of(capture(captures_dir, "19"))
    assert len(status.body) == 371
    assert status.body.decode().startswith("UP 0 years, 37 days")
    (log,) = frames_of(capture(captures_dir, "24"))
    assert log.headers["Log-Level"] == "7"
    assert log.body.endswith(b"State DESTROY going to sleep\n")
    (api,) = frames_of(capture(captures_dir, "25"))
    event = parse_event(api)
    assert (event.name, event["API-Command"], event["FreeSWITCH-IPv6"]) == ("API", "sofia", "::1")


# ----------------------------------------------------------------------- bodies and edited captures


def test_heartbeat_body_without_its_final_newline(captures_dir: Path) -> None:
    event = parse_event_plain(capture(captures_dir, "23"))
    assert event.name == "HEARTBEAT"
    assert event["Idle-CPU"] == "98.700000"
    assert event["FreeSWITCH-Version"] == "1.5.15b+git~20141226T052811Z~0a66db6f12~64bit"
    assert event.body is None


def test_edited_wiki_background_job(captures_dir: Path) -> None:
    # Outer and inner headers were merged by hand: only the event parser applies.
    event = parse_event_plain(capture(captures_dir, "28"))
    assert event.name == "BACKGROUND_JOB"
    assert event["Job-Command-Arg"] == "sofia/default/1005 '&park'"
    assert event.body == "+OK 7f4de4bc-17d7-11dd-b7a0-db4edd065621\n"


def test_edited_custom_register_event(captures_dir: Path) -> None:
    event = parse_event_plain(capture(captures_dir, "29"))
    assert (event.name, event.subclass) == ("CUSTOM", "sofia::register")
    contact = event["contact"]  # decoded once: the inner %3A escapes stay
    assert contact == (
        '"1000" <sip:1000@192.168.1.23:5060;fs_nat=yes;fs_path=sip%3A1000%40192.168.1.23%3A5060>'
    )


def test_nmap_rendering_is_not_framing(captures_dir: Path) -> None:
    # nmap removed the blank lines: no header block ever ends, so nothing is framed.
    frames, parser = feed_in([capture(captures_dir, "30")])
    assert frames == [] and parser.buffered > 0
    rejection, notice = frames_of(rude_rejection() + disconnect_notice())
    assert rejection.content_type == "text/rude-rejection"
    assert rejection.body == b"Access Denied, go away.\n"
    assert notice.body == DISCONNECT_TEXT.encode()


# ----------------------------------------------------------------------- values and bytes


def test_an_encoded_newline_never_makes_a_header() -> None:
    payload = b"Event-Name: CUSTOM\nNote: a%0AFake: x\nAfter: y\n\n"
    event = parse_event_plain(payload)
    assert event["Note"] == "a\nFake: x"
    assert "Fake" not in event and event["After"] == "y"
    (frame,) = frames_of(b"Content-Type: command/reply\nReply-Text: %2BOK%0AFake: x\n\n")
    assert frame.reply_text() == "+OK\nFake: x"
    assert "Fake" not in frame.headers


def test_body_lines_are_not_headers() -> None:
    body = "Key: value\nContent-Type: api/response\n"
    event = parse_event_plain(encode_event_plain([("Event-Name", "BACKGROUND_JOB")], body))
    assert event.body == body and "Key" not in event and event.names() == ["Event-Name"]


def test_multibyte_utf8_bodies_are_counted_in_bytes() -> None:
    text = "Grüße € 𝄞\n"
    data = api_response(text) + command_reply("+OK")
    frames = frames_of(data)
    assert frames[0].body.decode() == text and frames[1].reply_text() == "+OK"
    for cut in range(1, len(data)):
        assert feed_in([data[:cut], data[cut:]])[0] == frames
    event = parse_event(frames_of(event_frame(encode_event_plain([("Event-Name", "X")], text)))[0])
    assert event.body == text


def test_crlf_header_blocks_are_accepted() -> None:
    (frame,) = frames_of(b"Content-Type: api/response\r\nContent-Length: 3\r\n\r\nabc")
    assert frame.body == b"abc"


def test_unparseable_junk_fails_loudly() -> None:
    parser = FrameParser()
    parser.feed(b"complete garbage without any header\n\n")
    with pytest.raises(ProtocolError):
        parser.next_frame()


_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,24}", fullmatch=True).filter(
    lambda name: name != "Content-Length"
)


@settings(max_examples=300)
@given(st.dictionaries(_NAME, st.text(min_size=1), min_size=1, max_size=12), st.text())
def test_plain_events_round_trip(headers: dict[str, str], body: str) -> None:
    # A "%XX" already in a value is passed through as FreeSWITCH does (see below).
    assume(not any(re.search("%[0-9A-Fa-f]{2}", value) for value in headers.values()))
    event = parse_event_plain(encode_event_plain(list(headers.items()), body))
    assert event.headers() == headers
    assert event.body == (body or None)
    framed = parse_event(frames_of(event_frame(encode_event_plain(list(headers.items()), body)))[0])
    assert framed.headers() == headers


@settings(max_examples=200)
@given(st.dictionaries(_NAME, st.text(min_size=1), min_size=1, max_size=12), st.text())
def test_json_events_round_trip(headers: dict[str, str], body: str) -> None:
    event = parse_event_json(encode_event_json(list(headers.items()), body))
    assert event.headers() == headers and event.body == (body or None)


def test_an_existing_escape_is_not_encoded_again() -> None:
    assert url_encode("100% sure") == "100%25%20sure"
    assert url_encode("sip%3A1000") == "sip%3A1000"
    assert url_encode("a@b:c d") == "a%40b%3Ac%20d"


# ----------------------------------------------------------------------- commands


@pytest.mark.parametrize("bad", ["status\nexit", "status\r", "\n"])
def test_encode_command_refuses_line_breaks(bad: str) -> None:
    with pytest.raises(UnsafeValue):
        encode_command(bad)
    with pytest.raises(UnsafeValue):
        encode_command("sendmsg", [("call-command", bad)])
    with pytest.raises(UnsafeValue):
        encode_command("sendmsg", [(bad, "execute")])


def test_encode_command_frames_headers_and_body() -> None:
    assert encode_command("api status") == b"api status\n\n"
    data = encode_command("sendevent CUSTOM", [("Event-Subclass", "x::y")], "é\n".encode())
    assert data == b"sendevent CUSTOM\nEvent-Subclass: x::y\nContent-Length: 3\n\n\xc3\xa9\n"


def commands_of(chunks: list[bytes]) -> list[Command]:
    parser = CommandParser()
    out: list[Command] = []
    for chunk in chunks:
        parser.feed(chunk)
        while (cmd := parser.next_command()) is not None:
            out.append(cmd)
    return out


def test_command_parser_reads_headers_and_bodies_however_split() -> None:
    sendmsg = "sendmsg 6f1c2d3e-1111-4222-8333-444455556666"
    app = {"call-command": "execute", "execute-app-name": "park"}
    data = (
        b"\nauth ClueCon\n\n"
        + encode_command(sendmsg, list(app.items()))
        + encode_command("sendevent CUSTOM", [("Event-Subclass", "a::b")], b"Body: line\n\nmore")
        + b"api status\r\n\r\n"
    )
    expected = [
        Command("auth ClueCon", {}),
        Command(sendmsg, app),
        Command(
            "sendevent CUSTOM",
            {"Event-Subclass": "a::b", "Content-Length": "16"},
            b"Body: line\n\nmore",
        ),
        Command("api status", {}),
    ]
    assert commands_of([data]) == expected
    assert commands_of([data[i : i + 1] for i in range(len(data))]) == expected


def test_command_parser_keeps_carriage_returns_inside_a_body() -> None:
    # FreeSWITCH reads a command body as Content-Length raw bytes; only header lines lose CR.
    body = b"line one\r\nline two\r\n"
    data = encode_command("sendevent CUSTOM", [("Event-Subclass", "a::b")], body)
    data += b"api status\n\n"
    commands = commands_of([data])
    assert [cmd.line for cmd in commands] == ["sendevent CUSTOM", "api status"]
    assert commands[0].body == body


def test_json_event_with_non_string_values() -> None:
    event = parse_event_json(json.dumps({"Event-Name": "X", "n": 3, "_body": "b"}).encode())
    assert event["n"] == "3" and event.body == "b"
    with pytest.raises(ProtocolError):
        parse_event_json(b"[1, 2]")
