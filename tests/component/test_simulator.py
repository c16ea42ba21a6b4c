"""The ESL simulator over real TCP, seen by a small client built on the codec.

No broker or database is needed; every wait has a timeout and nothing sleeps to
synchronise.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import gevent
import gevent.queue
import pytest

from callworker.esl.codec import (
    DISCONNECT_TEXT,
    Event,
    Frame,
    FrameParser,
    encode_command,
    parse_event,
    url_encode,
)
from callworker.simulator import Simulator

WAIT = 5.0
CLOSED = object()


class Client:
    """A minimal inbound ESL client: replies and events arrive on separate queues."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=WAIT)
        self.parser = FrameParser()
        self.replies: gevent.queue.Queue = gevent.queue.Queue()
        self.events: gevent.queue.Queue = gevent.queue.Queue()
        self.order: list[str] = []  # "reply"/"event:<name>" in arrival order
        self.raw = bytearray()
        self.reader = gevent.spawn(self._read)

    def _read(self) -> None:
        try:
            while data := self.sock.recv(65536):
                self.raw += data
                self.parser.feed(data)
                for frame in self.parser:
                    if frame.content_type.startswith("text/event-"):
                        event = parse_event(frame)
                        self.order.append(f"event:{event.name}")
                        self.events.put((frame, event))
                    else:
                        self.order.append(frame.content_type)
                        self.replies.put(frame)
        except OSError:
            pass
        self.replies.put(CLOSED)
        self.events.put(CLOSED)

    def send(self, line: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.sock.sendall(encode_command(line, headers))

    def reply(self, timeout: float = WAIT) -> Frame:
        frame = self.replies.get(timeout=timeout)
        assert frame is not CLOSED, "connection closed"
        return frame

    def command(self, line: str, headers: tuple[tuple[str, str], ...] = ()) -> Frame:
        self.send(line, headers)
        return self.reply()

    def api(self, line: str, timeout: float = WAIT) -> str:
        self.send(f"api {line}")
        frame = self.reply(timeout)
        assert frame.content_type == "api/response"
        return frame.body.decode()

    def auth(self) -> None:
        assert self.reply().content_type == "auth/request"
        assert self.command("auth ClueCon").reply_text() == "+OK accepted"

    def next_event(self, timeout: float = WAIT) -> tuple[Frame, Event]:
        item = self.events.get(timeout=timeout)
        assert item is not CLOSED, "connection closed"
        return item

    def wait_event(self, match: Callable[[Event], bool], timeout: float = WAIT) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            _, event = self.next_event(max(deadline - time.monotonic(), 0.01))
            if match(event):
                return event

    def collect(self, uuid: str, until: str, timeout: float = WAIT) -> list[Event]:
        """Events of one channel and BACKGROUND_JOBs, up to the first named ``until``."""
        events: list[Event] = []
        deadline = time.monotonic() + timeout
        while not events or events[-1].name != until:
            _, event = self.next_event(max(deadline - time.monotonic(), 0.01))
            if event.get("Unique-ID") == uuid or event.name == "BACKGROUND_JOB":
                events.append(event)
        return events

    def call_events(self, uuid: str, timeout: float = WAIT) -> list[Event]:
        """Events of one channel, up to its last (the state CS_DESTROY), and BACKGROUND_JOBs."""
        events: list[Event] = []
        deadline = time.monotonic() + timeout
        while not events or not (events[-1].name == "CHANNEL_STATE"
                                 and events[-1].get("Channel-State") == "CS_DESTROY"):
            _, event = self.next_event(max(deadline - time.monotonic(), 0.01))
            if event.get("Unique-ID") == uuid or event.name == "BACKGROUND_JOB":
                events.append(event)
        return events

    def wait_closed(self, timeout: float = WAIT) -> None:
        self.reader.join(timeout=timeout)
        assert self.reader.dead, "connection still open"

    def close(self) -> None:
        self.sock.close()
        self.reader.kill()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator("127.0.0.1", 0, ring_delay=0.01, answer_delay=0.02,
                          far_end_hangup_after=0.2)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim: Simulator) -> Iterator[Client]:
    c = Client(sim.address)
    c.auth()
    yield c
    c.close()


def uuid_of(n: int) -> str:
    return f"6f0c0a52-1d4e-4b8a-9c1f-{n:012d}"


def dial(number: str, uuid: str, extra: str = "") -> str:
    return (f"originate {{origination_uuid={uuid},originate_timeout=30,"
            f"origination_caller_id_number=15550001111{extra}}}sofia/gateway/gw/{number} &park()")


def names(events: list[Event]) -> list[str]:
    """Event names, with the new state for CHANNEL_STATE and CHANNEL_CALLSTATE."""
    out = []
    for e in events:
        if e.name == "CHANNEL_STATE":
            out.append(f"{e.name}:{e.get('Channel-State')}")
        elif e.name == "CHANNEL_CALLSTATE":
            out.append(f"{e.name}:{e.get('Channel-Call-State')}")
        else:
            out.append(e.name)
    return out


REPORTING = [
    "CHANNEL_STATE:CS_HANGUP", "CHANNEL_CALLSTATE:HANGUP", "CHANNEL_STATE:CS_REPORTING",
    "CHANNEL_HANGUP_COMPLETE",
]
DESTROY = ["CHANNEL_DESTROY", "CHANNEL_STATE:CS_DESTROY"]
TEARDOWN = [*REPORTING, *DESTROY]
SET_UP = [
    "CHANNEL_OUTGOING", "CHANNEL_STATE:CS_INIT", "CHANNEL_CREATE", "CHANNEL_ORIGINATE",
    "CHANNEL_STATE:CS_ROUTING", "CHANNEL_STATE:CS_CONSUME_MEDIA",
]
ANSWER = ["CODEC", "CODEC", "CHANNEL_ANSWER", "CHANNEL_CALLSTATE:ACTIVE", "CALL_UPDATE"]
PARK = ["CHANNEL_STATE:CS_EXECUTE", "CHANNEL_EXECUTE", "CHANNEL_PARK"]
UNPARK = ["CHANNEL_HANGUP", "CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE"]


# ------------------------------------------------------------------ connection


def test_auth_accepts_the_password(sim: Simulator) -> None:
    c = Client(sim.address)
    c.auth()
    assert c.api("uuid_exists nothing") == "false"
    assert sim.received_commands()[:2] == ["auth ClueCon", "api uuid_exists nothing"]
    c.close()


def test_wrong_password_is_refused_with_a_disconnect_notice(sim: Simulator) -> None:
    c = Client(sim.address)
    assert c.reply().content_type == "auth/request"
    assert c.command("auth nope").reply_text() == "-ERR invalid"
    notice = c.reply()
    assert notice.content_type == "text/disconnect-notice"
    assert notice.body.decode() == DISCONNECT_TEXT
    c.wait_closed()


def test_commands_before_auth_are_not_found_and_the_socket_stays_open(sim: Simulator) -> None:
    c = Client(sim.address)
    assert c.reply().content_type == "auth/request"
    assert c.command("api status").reply_text() == "-ERR command not found"
    assert c.command("auth ClueCon").reply_text() == "+OK accepted"
    c.close()


def test_acl_rejection_sends_rude_rejection_then_notice_and_closes() -> None:
    sim = Simulator("127.0.0.1", 0, acl_allow=False)
    sim.start()
    try:
        c = Client(sim.address)
        assert c.reply().content_type == "text/rude-rejection"
        assert c.reply().content_type == "text/disconnect-notice"
        c.wait_closed()
        assert bytes(c.raw).startswith(b"Content-Type: text/rude-rejection\nContent-Length: 24\n\n")
    finally:
        sim.stop()


def test_exit_says_bye_and_closes(client: Client) -> None:
    assert client.command("exit").reply_text() == "+OK bye"
    assert client.reply().content_type == "text/disconnect-notice"
    client.wait_closed()


def test_unknown_command_and_unknown_api(client: Client) -> None:
    assert client.command("frobnicate now").reply_text() == "-ERR command not found"
    assert client.api("frobnicate now") == "-ERR frobnicate Command not found!\n"


def test_drop_clients_closes_connections_while_calls_continue(
    sim: Simulator, client: Client
) -> None:
    client.command("event plain BACKGROUND_JOB")
    client.send(f"bgapi {dial('15550001234', uuid_of(1))}")
    client.reply()
    client.wait_event(lambda e: e.name == "BACKGROUND_JOB")
    sim.drop_clients()
    client.wait_closed()
    assert sim.live_channels() == [uuid_of(1)]
    other = Client(sim.address)
    other.auth()
    assert other.api(f"uuid_exists {uuid_of(1)}") == "true"
    other.close()


# ---------------------------------------------------------------------- events


def test_subscription_filter_and_noevents(sim: Simulator, client: Client) -> None:
    assert client.command("event plain").reply_text() == "-ERR no keywords supplied"
    assert client.command("noevents").reply_text() == "-ERR not listening for events"
    assert client.command("event plain CHANNEL_ANSWER").reply_text() == (
        "+OK event listener enabled plain")
    assert client.command("event plain CHANNEL_HANGUP").reply_text().startswith("+OK")
    reply = client.command(f"filter Unique-ID {uuid_of(2)}").reply_text()
    assert reply == f"+OK filter added. [Unique-ID]=[{uuid_of(2)}]"
    client.api(dial("15550001234", uuid_of(3)))
    client.api(dial("15550001234", uuid_of(2)))
    answer = client.wait_event(lambda e: True)
    assert (answer.name, answer["Unique-ID"]) == ("CHANNEL_ANSWER", uuid_of(2))
    client.api(f"uuid_kill {uuid_of(3)}")
    client.api(f"uuid_kill {uuid_of(2)}")
    hangup = client.wait_event(lambda e: True)
    assert (hangup.name, hangup["Unique-ID"]) == ("CHANNEL_HANGUP", uuid_of(2))
    assert client.command("noevents").reply_text() == "+OK no longer listening for events"
    assert client.api("uuid_exists x") == "false"
    assert client.events.empty()


def test_json_events_carry_raw_values(client: Client) -> None:
    assert client.command("event json CHANNEL_CREATE").reply_text() == (
        "+OK event listener enabled json")
    client.api(dial("15550001234", uuid_of(4), ",origination_caller_id_name='A & B'"))
    frame, event = client.next_event()
    assert frame.content_type == "text/event-json"
    data = json.loads(frame.body)
    assert data["Caller-Caller-ID-Name"] == "A & B"
    assert data["FreeSWITCH-IPv6"] == "::1"
    assert event["variable_origination_caller_id_name"] == "A & B"


def test_plain_frames_parse_back_byte_exactly_with_url_encoded_values(client: Client) -> None:
    client.command("event plain ALL")
    uuid = uuid_of(5)
    extra = ",callworker_tenant=t#1,note='ä 100%'"
    client.send(f"bgapi {dial('15550000200', uuid, extra)}")
    client.reply()
    client.call_events(uuid)
    parser = FrameParser()
    parser.feed(bytes(client.raw))
    frames = [f for f in parser if f.content_type == "text/event-plain"]
    assert parser.buffered == 0 and parser.resyncs == 0 and frames
    for frame in frames:
        head, _, _ = frame.body.partition(b"\n\n")
        assert len(frame.body) == int(frame.headers["Content-Length"])
        assert frame.body.endswith(b"\n")
        event = parse_event(frame)
        for line in head.decode().split("\n"):
            name, _, raw = line.partition(": ")
            if name != "Content-Length":
                assert raw == url_encode(event[name]), line
    create = next(f for f in frames if b"Event-Name: CHANNEL_CREATE\n" in f.body).body.decode()
    assert "\nvariable_callworker_tenant: t%231\n" in create
    assert "\nvariable_note: %C3%A4%20100%25\n" in create
    assert "\nCaller-Caller-ID-Number: 15550001111\n" in create


def test_custom_events_reach_subscribers_of_their_subclass(sim: Simulator, client: Client) -> None:
    client.command("event plain CUSTOM callworker::dtmf")
    client.api(dial("15550001234", uuid_of(6)))
    sim.fire_custom(uuid_of(6), "callworker::other", {"Digit": "1"})
    sim.fire_custom(uuid_of(6), "callworker::dtmf", {"Digit": "5"})
    event = client.wait_event(lambda e: True)
    assert (event.subclass, event["Digit"]) == ("callworker::dtmf", "5")
    assert event["Unique-ID"] == uuid_of(6)
    assert event.names()[13] == "Event-Subclass"
    assert event["variable_origination_uuid"] == uuid_of(6)


# ------------------------------------------------------------------------- api


def test_status_reports_live_counts(client: Client) -> None:
    client.api(dial("15550001234", uuid_of(7)))
    lines = client.api("status").split("\n")
    assert lines[0].startswith("UP 0 years, 0 days, 0 hours, ")
    assert lines[1] == ("FreeSWITCH (Version 1.10.11-release git f24064f 2023-12-22 18:08:31Z "
                        "64bit) is ready")
    assert lines[2] == "1 session(s) since startup"
    assert lines[3].startswith("1 session(s) - peak 1, last 5min ") and lines[3].endswith(" ")
    assert lines[5:] == ["1000 session(s) max", "min idle cpu 0.00/98.97",
                         "Current Stack Size/Max 240K/8192K", ""]


def test_bgapi_replies_with_job_uuid_then_background_job(client: Client) -> None:
    client.command("event plain BACKGROUND_JOB")
    reply = client.command("bgapi status")
    job = reply.headers["Job-UUID"]
    assert reply.reply_text() == f"+OK Job-UUID: {job}"
    frame, event = client.next_event()
    assert (event["Job-UUID"], event["Job-Command"]) == (job, "status")
    assert "Job-Command-Arg" not in event and "Job-Owner-UUID" not in event
    assert event.body is not None and event.body.startswith("UP ")
    chosen = "1c5a4b3e-0000-4000-8000-000000000042"
    reply = client.command("bgapi uuid_exists x", (("Job-UUID", chosen),))
    assert reply.reply_text() == f"+OK Job-UUID: {chosen}" and reply.headers["Job-UUID"] == chosen
    _, event = client.next_event()
    assert (event["Job-UUID"], event["Job-Command-Arg"], event.body) == (chosen, "x", "false")


def test_api_holds_events_until_its_response(client: Client) -> None:
    client.command("event plain ALL")
    out = client.api(dial("15550001234", uuid_of(8)))
    assert out == f"+OK {uuid_of(8)}\n"
    first_event = next(i for i, kind in enumerate(client.order) if kind.startswith("event:"))
    assert client.order[first_event - 1] == "api/response"
    # The API event is fired once the command has run, as switch_api_execute does.
    assert client.order[first_event:first_event + 2] == ["event:CHANNEL_OUTGOING",
                                                          "event:CHANNEL_STATE"]
    assert client.order.index("event:API") == client.order.index("event:CALL_UPDATE") + 1


def test_uuid_kill_replies(client: Client) -> None:
    assert client.api("uuid_kill") == "-USAGE: <uuid> [cause]\n"
    assert client.api(f"uuid_kill {uuid_of(99)}") == "-ERR No such channel!\n"
    client.command("event plain CHANNEL_HANGUP")
    client.api(dial("15550001234", uuid_of(9)))
    assert client.api(f"uuid_kill {uuid_of(9)} NOT_A_CAUSE") == "+OK\n"
    assert client.wait_event(lambda e: True)["Hangup-Cause"] == "NORMAL_CLEARING"


def test_hupall_hangs_up_matching_channels(sim: Simulator, client: Client) -> None:
    client.api(dial("15550001234", uuid_of(10), ",callworker_tenant=a"))
    client.api(dial("15550001234", uuid_of(11), ",callworker_tenant=b"))
    client.command("event plain CHANNEL_HANGUP")
    assert client.api("hupall USER_BUSY callworker_tenant a") == (
        "+OK hangup all channels matching [callworker_tenant]=[a] with cause: USER_BUSY\n")
    event = client.wait_event(lambda e: True)
    assert (event["Unique-ID"], event["Hangup-Cause"]) == (uuid_of(10), "USER_BUSY")
    assert client.api("hupall") == "+OK hangup all channels with cause MANAGER_REQUEST\n"
    assert client.wait_event(lambda e: True)["Hangup-Cause"] == "MANAGER_REQUEST"


def test_uuid_hold_and_unhold(client: Client) -> None:
    uuid = uuid_of(12)
    client.api(dial("15550001234", uuid))
    client.command("event plain CHANNEL_CALLSTATE CHANNEL_HOLD CHANNEL_UNHOLD")
    assert client.api(f"uuid_hold {uuid}") == "+OK Success\n"
    events = [client.next_event()[1] for _ in range(2)]
    seen = [(e.name, e.get("Original-Channel-Call-State"), e.get("Channel-Call-State"))
            for e in events]
    assert seen == [("CHANNEL_CALLSTATE", "ACTIVE", "HELD"), ("CHANNEL_HOLD", None, "HELD")]
    assert events[0]["Channel-Call-State-Number"] == "5"
    assert client.api(f"uuid_hold {uuid}") == "-ERR Operation failed\n"
    assert client.api(f"uuid_hold off {uuid}") == "+OK Success\n"
    events = [client.next_event()[1] for _ in range(3)]
    # UNHELD, and ACTIVE again on the next media frame.
    assert [(e.name, e.get("Channel-Call-State")) for e in events] == [
        ("CHANNEL_CALLSTATE", "UNHELD"), ("CHANNEL_UNHOLD", "UNHELD"),
        ("CHANNEL_CALLSTATE", "ACTIVE")]
    assert {e["Event-Calling-Function"] for e in events[:2]} == {
        "switch_ivr_unhold", "switch_channel_perform_set_callstate"}
    assert client.api(f"uuid_hold off {uuid}") == "-ERR Operation failed\n"
    assert client.api(f"uuid_hold {uuid_of(98)}") == "+OK Success\n"
    assert client.api("uuid_hold") == "-USAGE: [off|toggle] <uuid> [<display>]\n"


def test_uuid_audio_mutes_and_fires_media_bug_events(sim: Simulator, client: Client) -> None:
    uuid = uuid_of(13)
    usage = "-USAGE: <uuid> [start [read|write] [mute|level <level>]|stop]\n"
    client.api(dial("15550001234", uuid))
    client.command("event plain MEDIA_BUG_START MEDIA_BUG_STOP")
    assert client.api(f"uuid_audio {uuid} start read mute 1") == "+OK\n"
    assert client.next_event()[1]["Media-Bug-Function"] == "audio"
    assert sim.audio_state(uuid)["read"]["mute"] == 1
    assert client.api(f"uuid_audio {uuid} start write level 2") == "+OK\n"
    assert client.api(f"uuid_audio {uuid} start read mute 0") == "+OK\n"
    assert sim.audio_state(uuid)["read"]["mute"] == 0
    assert client.api(f"uuid_audio {uuid} start write level 9") == "+OK\n"
    assert sim.audio_state(uuid)["write"]["level"] == 2  # outside -4..4: ignored
    assert client.events.empty()  # the write level keeps the bug
    assert client.api(f"uuid_audio {uuid} start read") == usage
    assert client.api(f"uuid_audio {uuid}") == usage
    assert client.api(f"uuid_audio {uuid_of(97)} stop") == "-ERR No such channel!\n"
    assert client.api(f"uuid_audio {uuid} stop") == "+OK\n"
    assert client.next_event()[1].name == "MEDIA_BUG_STOP"


def test_unmuting_with_mute_0_removes_the_media_bug_after_the_reply(client: Client) -> None:
    """With nothing left to change (all mutes and levels 0) the bug removes itself on the
    next media frame: "mute 0", the worker's unmute, fires MEDIA_BUG_STOP (as on 1.10.12)."""
    uuid = uuid_of(17)
    client.api(dial("15550001234", uuid))
    client.command("event plain MEDIA_BUG_START MEDIA_BUG_STOP API")
    assert client.api(f"uuid_audio {uuid} start read mute 1") == "+OK\n"
    assert client.api(f"uuid_audio {uuid} start read mute 0") == "+OK\n"
    seen = [client.next_event()[1].name for _ in range(4)]
    assert seen == ["MEDIA_BUG_START", "API", "API", "MEDIA_BUG_STOP"]
    assert client.api(f"uuid_audio {uuid} start read mute 1") == "+OK\n"
    assert client.wait_event(lambda e: e.name != "API").name == "MEDIA_BUG_START"


def test_uuid_exists_getvar_setvar(client: Client) -> None:
    uuid = uuid_of(14)
    client.api(dial("15550001234", uuid, ",callworker_tenant=t1"))
    assert client.api(f"uuid_exists {uuid}") == "true"
    assert client.api(f"uuid_getvar {uuid} callworker_tenant") == "t1"
    assert client.api(f"uuid_getvar {uuid} nothing") == "_undef_"
    assert client.api(f"uuid_setvar {uuid} greeting hello world") == "+OK\n"
    assert client.api(f"uuid_getvar {uuid} greeting") == "hello world"
    assert client.api(f"uuid_getvar {uuid_of(96)} x") == "-ERR No such channel!\n"


def test_show_channels_as_json_and_csv(client: Client) -> None:
    assert client.api("show channels as json") == '{"row_count": 0}\n'
    assert client.api("show channels") == "\n0 total.\n"
    client.api(dial("15550001234", uuid_of(15)))
    client.api(dial("15550001234", uuid_of(16)))
    data = json.loads(client.api("show channels as json"))
    assert data["row_count"] == 2
    assert [r["uuid"] for r in data["rows"]] == [uuid_of(15), uuid_of(16)]
    assert data["rows"][0]["callstate"] == "ACTIVE" and data["rows"][0]["application"] == "park"
    csv = client.api("show channels")
    assert csv.startswith("uuid,direction,created,created_epoch,name,state,")
    assert csv.endswith("\n\n2 total.\n")


def test_refused_api_commands_answer_as_told_then_as_usual(sim: Simulator, client: Client) -> None:
    sim.refuse_api("show channels", "-ERR no reply\n", times=2)
    assert client.api("show channels as json") == "-ERR no reply\n"
    assert client.api("uuid_exists x") == "false"  # other commands are not touched
    assert client.api("show channels as json") == "-ERR no reply\n"
    assert client.api("show channels as json") == '{"row_count": 0}\n'


def test_a_lagging_channel_list_does_not_show_a_new_channel_the_core_has(
    sim: Simulator, client: Client
) -> None:
    sim.channel_list_lag = 60.0
    uuid = uuid_of(17)
    assert client.api(dial("15550001234", uuid)) == f"+OK {uuid}\n"
    assert client.api("show channels as json") == '{"row_count": 0}\n'
    assert client.api("show channels") == "\n0 total.\n"
    assert client.api(f"uuid_exists {uuid}") == "true"
    sim.channel_list_lag = 0.0
    assert [r["uuid"] for r in json.loads(client.api("show channels as json"))["rows"]] == [uuid]


# -------------------------------------------------------------------- outcomes


def test_answered_call_killed_by_request(sim: Simulator, client: Client) -> None:
    client.command("event plain ALL")
    uuid = uuid_of(20)
    client.send(f"bgapi {dial('15550001234', uuid, ',callworker_tenant=t1')}")
    client.reply()
    job = client.wait_event(lambda e: e.name == "BACKGROUND_JOB")
    assert job.body == f"+OK {uuid}\n"
    assert sim.channel_vars(uuid)["origination_caller_id_number"] == "15550001111"
    client.api(f"uuid_kill {uuid}")
    events = client.call_events(uuid)
    assert names(events) == [*PARK, *UNPARK, *TEARDOWN]
    hangup, complete = events[3], events[9]
    assert (hangup["Channel-State"], hangup["Channel-State-Number"]) == ("CS_EXECUTE", "10")
    assert hangup["Answer-State"] == "hangup"
    assert complete["variable_sip_hangup_disposition"] == "send_bye"
    assert "variable_sip_term_status" not in complete  # a BYE we sent records no response
    assert complete["variable_hangup_cause"] == "NORMAL_CLEARING"
    assert complete["variable_callworker_tenant"] == "t1"
    assert int(complete["variable_answer_epoch"]) > 0
    assert sim.live_channels() == []


def test_call_that_rings_then_answers_and_the_far_end_hangs_up(
    sim: Simulator, client: Client
) -> None:
    client.command("event plain ALL")
    uuid = uuid_of(21)
    client.send(f"bgapi {dial('15550001234', uuid)}")
    client.reply()
    head = client.collect(uuid, "CHANNEL_PARK")
    sim.hangup(uuid)
    events = head + client.call_events(uuid)
    assert names(events) == [
        *SET_UP, "CHANNEL_PROGRESS", "CHANNEL_CALLSTATE:RINGING", *ANSWER, "BACKGROUND_JOB",
        *PARK, *UNPARK, *TEARDOWN]
    by_name = {e.name: e for e in events}
    assert by_name["CHANNEL_PROGRESS"]["Channel-Call-State"] == "DOWN"
    assert by_name["CHANNEL_ANSWER"]["Channel-Call-State"] == "RINGING"
    assert by_name["CHANNEL_ANSWER"]["Answer-State"] == "answered"
    assert by_name["CHANNEL_EXECUTE"]["Application"] == "park"
    complete = by_name["CHANNEL_HANGUP_COMPLETE"]
    assert complete["variable_sip_hangup_disposition"] == "recv_bye"
    assert complete["variable_proto_specific_hangup_cause"] == "sip:200"
    start, answer, end = (int(complete[f"variable_{n}_uepoch"]) for n in ("start", "answer", "end"))
    assert complete["variable_billusec"] == str(end - answer)
    assert complete["variable_duration"] == str(end // 10**6 - start // 10**6)
    assert complete["variable_progress_mediamsec"] == "0"
    progress = int(complete["variable_progress_uepoch"])
    assert complete["variable_progressusec"] == str(progress - start) and start <= progress < answer


def test_0200_answers_without_ringing_and_the_far_end_hangs_up(client: Client) -> None:
    client.command("event plain ALL")
    uuid = uuid_of(22)
    client.send(f"bgapi {dial('15550000200', uuid)}")
    client.reply()
    events = client.call_events(uuid)
    # No 180 came, so no CHANNEL_PROGRESS: the answer finds the call state DOWN.
    assert names(events) == [*SET_UP, *ANSWER, "BACKGROUND_JOB", *PARK, *UNPARK, *TEARDOWN]
    answer = events[len(SET_UP) + 2]
    assert (answer.name, answer["Channel-Call-State"]) == ("CHANNEL_ANSWER", "DOWN")
    complete = events[-3]
    assert complete["variable_sip_hangup_disposition"] == "recv_bye"
    assert complete["variable_progress_uepoch"] == "0"
    start, answer_at, end = (int(complete[f"variable_{n}_uepoch"]) for n in ("start", "answer", "end"))
    assert end - answer_at >= 180_000  # far_end_hangup_after=0.2, on a clock of 20 ms steps


def test_caller_and_callee_id_swap_once_the_originate_succeeds(client: Client) -> None:
    """FreeSWITCH swaps caller and callee ID of an answered outbound leg (CALL_UPDATE);
    the Orig-* fields keep what was sent, which the worker's CDR reads."""
    client.command("event plain ALL")
    uuid = uuid_of(23)
    named = dial("15550001234", uuid, ",origination_caller_id_name='Front Desk'")
    client.send(f"bgapi {named}")
    client.reply()
    head = client.collect(uuid, "CHANNEL_PARK")
    client.api(f"uuid_kill {uuid}")
    events = {e.name: e for e in head + client.call_events(uuid)}
    seen = {name: (e["Caller-Caller-ID-Name"], e["Caller-Caller-ID-Number"],
                   e["Caller-Callee-ID-Name"], e["Caller-Callee-ID-Number"])
            for name, e in events.items() if name in ("CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE")}
    assert seen == {
        "CHANNEL_ANSWER": ("Front Desk", "15550001111", "15550001234", "15550001234"),
        "CHANNEL_HANGUP_COMPLETE": ("15550001234", "15550001234", "Front Desk", "15550001111"),
    }
    complete = events["CHANNEL_HANGUP_COMPLETE"]
    assert (complete["Caller-Orig-Caller-ID-Name"], complete["Caller-Orig-Caller-ID-Number"]) == (
        "Front Desk", "15550001111")


@pytest.mark.parametrize(
    ("number", "cause", "q850", "status", "rings"),
    [
        ("15550000486", "USER_BUSY", "17", "486", True),
        ("15550000403", "CALL_REJECTED", "21", "403", False),
        ("15550000404", "UNALLOCATED_NUMBER", "1", "404", False),
    ],
)
def test_refused_calls_end_before_the_originate_says_err(
    client: Client, number: str, cause: str, q850: str, status: str, rings: bool
) -> None:
    client.command("event plain ALL")
    uuid = uuid_of(30)
    client.send(f"bgapi {dial(number, uuid)}")
    client.reply()
    events = client.call_events(uuid)
    ringing = ["CHANNEL_PROGRESS", "CHANNEL_CALLSTATE:RINGING"] if rings else []
    # The leg's HANGUP_COMPLETE comes before the originate's -ERR, as on the real switch.
    assert names(events) == [*SET_UP, *ringing, "CHANNEL_HANGUP", *REPORTING, "BACKGROUND_JOB",
                             *DESTROY]
    complete, job = events[-4], events[-3]
    assert job.body == f"-ERR {cause}\n"
    assert complete["Hangup-Cause"] == cause
    assert complete["variable_hangup_cause_q850"] == q850
    assert complete["variable_sip_term_status"] == status
    assert complete["variable_proto_specific_hangup_cause"] == f"sip:{status}"
    assert complete["variable_sip_hangup_disposition"] == "recv_refuse"
    assert (complete["variable_answer_epoch"], complete["variable_billsec"]) == ("0", "0")
    assert "variable_rtp_audio_in_mos" not in complete and "variable_read_codec" not in complete


def test_unanswered_call_times_out_with_no_answer(client: Client) -> None:
    client.command("event plain ALL")
    uuid = uuid_of(31)
    command = dial("15550000408", uuid).replace("originate_timeout=30", "originate_timeout=1")
    client.send(f"bgapi {command}")
    client.reply()
    events = client.call_events(uuid, timeout=5)
    # The originate hangs up the leg itself and returns at once: -ERR right after HANGUP.
    assert names(events) == [*SET_UP, "CHANNEL_PROGRESS", "CHANNEL_CALLSTATE:RINGING",
                             "CHANNEL_HANGUP", "BACKGROUND_JOB", *TEARDOWN]
    complete = events[-3]
    assert (complete["Hangup-Cause"], complete["variable_hangup_cause_q850"]) == ("NO_ANSWER", "19")
    assert complete["variable_sip_hangup_disposition"] == "send_cancel"
    assert int(complete["variable_duration"]) >= 0 and int(complete["variable_mduration"]) >= 980
    assert events[-7].body == "-ERR NO_ANSWER\n"


def test_ringing_call_cancelled_by_uuid_kill() -> None:
    sim = Simulator("127.0.0.1", 0, ring_delay=0.01, answer_delay=30)
    sim.start()
    try:
        c = Client(sim.address)
        c.auth()
        c.command("event plain ALL")
        uuid = uuid_of(32)
        c.send(f"bgapi {dial('15550001234', uuid)}")
        c.reply()
        c.wait_event(lambda e: e.name == "CHANNEL_PROGRESS")
        assert c.api(f"uuid_kill {uuid} ORIGINATOR_CANCEL") == "+OK\n"
        complete = c.wait_event(lambda e: e.name == "CHANNEL_HANGUP_COMPLETE")
        assert complete["variable_sip_hangup_disposition"] == "send_cancel"
        assert complete["variable_hangup_cause_q850"] == "16"
        job = c.wait_event(lambda e: e.name in ("BACKGROUND_JOB", "CHANNEL_DESTROY"))
        assert job.body == "-ERR ORIGINATOR_CANCEL\n"
        c.close()
    finally:
        sim.stop()


def test_failures_before_any_channel(client: Client) -> None:
    client.command("event plain ALL")
    assert client.api("originate error/user_busy &park()") == "-ERR USER_BUSY\n"
    assert client.api("originate foo/bar &park()") == "-ERR CHAN_NOT_IMPLEMENTED\n"
    assert client.api("originate sofia/gateway/gw/1").startswith("-USAGE: <call url> <exten>")
    assert [n for n in client.order if n.startswith("event:") and n != "event:API"] == []


# ------------------------------------------------------------------- early media


def _early(client: Client, uuid: str, ignore: bool) -> str:
    flags = ",ignore_early_media=true" if ignore else ""
    command = dial("15550000183", uuid, flags).replace("originate_timeout=30", "originate_timeout=1")
    client.send(f"bgapi {command}")
    client.reply()
    return command


def test_early_media_is_ignored_so_the_originate_timeout_holds(client: Client) -> None:
    """The worker's originate: 183 with SDP, never answered, ends NO_ANSWER at the timeout."""
    client.command("event plain ALL")
    uuid = uuid_of(33)
    started = time.monotonic()
    _early(client, uuid, ignore=True)
    events = client.call_events(uuid, timeout=5)
    took = time.monotonic() - started
    assert names(events) == [*SET_UP, "CHANNEL_PROGRESS_MEDIA", "CHANNEL_CALLSTATE:EARLY", "CODEC",
                             "CODEC", "CHANNEL_HANGUP", "BACKGROUND_JOB", *TEARDOWN]
    progress, job, complete = events[len(SET_UP)], events[-7], events[-3]
    assert (progress["Answer-State"], progress["Channel-Call-State"]) == ("early", "DOWN")
    assert job.body == "-ERR NO_ANSWER\n" and 0.9 <= took < 3
    assert complete["variable_sip_hangup_disposition"] == "send_cancel"
    assert complete["variable_progress_uepoch"] == "0"
    assert int(complete["variable_progress_media_uepoch"]) > 0
    assert complete["variable_read_codec"] == "PCMU"  # media flowed, unanswered


def test_without_ignore_early_media_the_originate_succeeds_at_once_and_never_times_out(
    sim: Simulator, client: Client
) -> None:
    """Why the worker always sends ignore_early_media=true: without it a 183 ends the
    originate with +OK before any answer, and originate_timeout no longer ends the call."""
    client.command("event plain ALL")
    uuid = uuid_of(34)
    _early(client, uuid, ignore=False)
    job = client.wait_event(lambda e: e.name == "BACKGROUND_JOB")
    assert job.body == f"+OK {uuid}\n"
    with pytest.raises(gevent.queue.Empty):  # past the 1 s timeout, the call is still up
        client.wait_event(lambda e: e.name == "CHANNEL_HANGUP", timeout=2.0)
    assert sim.live_channels() == [uuid]
    assert client.api(f"uuid_kill {uuid}") == "+OK\n"
    complete = client.wait_event(lambda e: e.name == "CHANNEL_HANGUP_COMPLETE")
    assert (complete["variable_answer_epoch"], complete["variable_sip_hangup_disposition"]) == (
        "0", "send_cancel")


# ----------------------------------------------------------------------- 0180


def test_0180_rings_until_the_far_end_gives_up_with_no_answer() -> None:
    sim = Simulator("127.0.0.1", 0, ring_delay=0.01, long_ring=0.3)
    sim.start()
    try:
        c = Client(sim.address)
        c.auth()
        c.command("event plain ALL")
        uuid = uuid_of(35)
        c.send(f"bgapi {dial('15550000180', uuid)}")
        c.reply()
        events = c.call_events(uuid)
        assert names(events) == [*SET_UP, "CHANNEL_PROGRESS", "CHANNEL_CALLSTATE:RINGING",
                                 "CHANNEL_HANGUP", *REPORTING, "BACKGROUND_JOB", *DESTROY]
        complete = events[-4]
        assert (complete["Hangup-Cause"], complete["variable_hangup_cause_q850"]) == ("NO_ANSWER", "19")
        # The carrier's 480 with a Q.850 Reason of 19, not our CANCEL.
        assert complete["variable_sip_hangup_disposition"] == "recv_refuse"
        assert complete["variable_sip_term_status"] == "480"
        assert events[-3].body == "-ERR NO_ANSWER\n"
        c.close()
    finally:
        sim.stop()


def test_0180_rings_60_seconds_by_default() -> None:
    assert Simulator("127.0.0.1", 0)._switch.timing.long_ring == 60.0


# ------------------------------------------------------------------ far-end hold


def test_far_end_hold_is_marked_by_the_channel_not_by_switch_ivr(
    sim: Simulator, client: Client
) -> None:
    uuid = uuid_of(36)
    client.api(dial("15550001234", uuid))
    client.command("event plain CHANNEL_CALLSTATE CHANNEL_HOLD CHANNEL_UNHOLD")
    assert sim.far_end_hold(uuid) is True
    assert sim.far_end_hold(uuid) is False  # already held
    assert client.api(f"uuid_hold off {uuid}") == "+OK Success\n"  # ours to end: not held by us
    events = [client.next_event()[1] for _ in range(5)]
    assert [(e.name, e["Channel-Call-State"], e["Event-Calling-Function"]) for e in events] == [
        ("CHANNEL_CALLSTATE", "HELD", "switch_channel_perform_set_callstate"),
        ("CHANNEL_HOLD", "HELD", "switch_channel_mark_hold"),
        ("CHANNEL_CALLSTATE", "UNHELD", "switch_channel_perform_set_callstate"),
        ("CHANNEL_UNHOLD", "UNHELD", "switch_ivr_unhold"),
        ("CHANNEL_CALLSTATE", "ACTIVE", "switch_channel_perform_set_callstate"),
    ]
    assert sim.far_end_hold(uuid) is True and sim.far_end_hold(uuid, hold=False) is True
    events = [client.next_event()[1] for _ in range(5)]
    assert [e["Event-Calling-Function"] for e in events if e.name != "CHANNEL_CALLSTATE"] == [
        "switch_channel_mark_hold", "switch_channel_mark_hold"]


def test_far_end_hold_needs_an_answered_call() -> None:
    sim = Simulator("127.0.0.1", 0, ring_delay=0.01, answer_delay=30)
    sim.start()
    try:
        c = Client(sim.address)
        c.auth()
        c.command("event plain CHANNEL_PROGRESS")
        c.send(f"bgapi {dial('15550001234', uuid_of(37))}")
        c.reply()
        c.next_event()
        assert sim.far_end_hold(uuid_of(37)) is False
        with pytest.raises(KeyError):
            sim.far_end_hold(uuid_of(38))
        c.close()
    finally:
        sim.stop()


# ---------------------------------------------------------------- origination_uuid


def test_origination_uuid_in_use_is_refused_with_no_channel(sim: Simulator, client: Client) -> None:
    uuid = uuid_of(40)
    assert client.api(dial("15550001234", uuid)) == f"+OK {uuid}\n"
    client.command("event plain ALL")
    # FreeSWITCH 1.10.12 logs "Duplicate UUID!" and makes no session at all.
    assert client.api(dial("15550001234", uuid)) == "-ERR DESTINATION_OUT_OF_ORDER\n"
    assert [n for n in client.order if n.startswith("event:")] == ["event:API"]
    assert sim.live_channels() == [uuid] and sim.stats.calls_started == 1


# ------------------------------------------------------------------------ clock


def test_event_times_move_in_20_ms_steps_unless_asked_otherwise(client: Client) -> None:
    client.command("event plain CHANNEL_CREATE")
    client.api(dial("15550001234", uuid_of(41)))
    stamp = int(client.next_event()[1]["Event-Date-Timestamp"])
    assert stamp % 20_000 == 0
    exact = Simulator("127.0.0.1", 0, clock_step=0)
    exact.start()
    try:
        c = Client(exact.address)
        c.auth()
        c.command("event plain CHANNEL_CREATE")
        stamps = set()
        for n in range(5):
            c.api(dial("15550001234", uuid_of(42 + n)))
            stamps.add(int(c.next_event()[1]["Event-Date-Timestamp"]) % 20_000)
        assert stamps != {0}
        c.close()
    finally:
        exact.stop()


# -------------------------------------------------------------------------- load


def test_three_hundred_concurrent_originates_all_complete(sim: Simulator, client: Client) -> None:
    client.command("event plain BACKGROUND_JOB CHANNEL_HANGUP_COMPLETE")
    commands = b"".join(
        encode_command(f"bgapi {dial('15550001234', uuid_of(1000 + n))}") for n in range(300))
    client.sock.sendall(commands)
    assert all(client.reply().headers["Job-UUID"] for _ in range(300))
    jobs = [client.wait_event(lambda e: e.name == "BACKGROUND_JOB", timeout=20) for _ in range(300)]
    expected = sorted(f"+OK {uuid_of(1000 + n)}\n" for n in range(300))
    assert sorted(j.body or "" for j in jobs) == expected
    assert len(sim.live_channels()) == 300
    client.api("hupall NORMAL_CLEARING")
    done = {
        client.wait_event(lambda e: e.name == "CHANNEL_HANGUP_COMPLETE", timeout=20)["Unique-ID"]
        for _ in range(300)
    }
    assert len(done) == 300 and sim.stats.calls_started == 300
