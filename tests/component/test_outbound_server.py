"""The outbound-socket server and the simulator's outbound mode, over real TCP.

Two kinds of peer: a scripted FreeSWITCH (raw bytes, including capture 15 and 16
replayed) talking to ``OutboundServer``, and the simulator placing inbound calls
to a scripted server or to ``OutboundServer``. No broker or database; every wait
has a timeout.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.queue
import pytest
from gevent.server import StreamServer

from callworker.errors import ConfigError
from callworker.esl.codec import Event, Frame, FrameParser, encode_command, parse_event
from callworker.esl.outbound import OutboundServer, OutboundSession
from callworker.esl.peers import PeerAllowList, parse_networks
from callworker.simulator import Simulator

WAIT = 5.0
CAPTURE_UUID = "78b86350-4fb8-4d2b-a629-1eeafd7d2f74"
# FreeSWITCH here is on 127.0.0.1; a client bound to 127.0.0.2 is a stranger.
LOOPBACK = PeerAllowList(parse_networks(["127.0.0.1"])).allows


def capture_frames(captures_dir: Path, prefix: str) -> list[bytes]:
    """The frames of a capture, as raw bytes (frames end at a blank line or a body)."""
    raw = next(captures_dir.glob(f"{prefix}_*")).read_bytes()
    parser = FrameParser()
    parser.feed(raw)
    out, start = [], 0
    for frame in parser:
        end = raw.index(b"\n\n", start) + 2 + len(frame.body)
        out.append(raw[start:end])
        start = end
    return out


class Recorder:
    """Callbacks for ``OutboundServer`` that record what they were given."""

    def __init__(self, answer: Callable[[OutboundSession], Any] = lambda s: True) -> None:
        self.sessions: gevent.queue.Queue[OutboundSession] = gevent.queue.Queue()
        self.ended: gevent.queue.Queue[OutboundSession] = gevent.queue.Queue()
        self._answer = answer

    def on_session(self, session: OutboundSession) -> Any:
        self.sessions.put(session)
        return self._answer(session)

    def on_session_end(self, session: OutboundSession) -> None:
        self.ended.put(session)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder) -> Iterator[OutboundServer]:
    srv = OutboundServer("127.0.0.1", 0, allow=LOOPBACK, on_session=recorder.on_session,
                         on_session_end=recorder.on_session_end, connect_timeout=1.0)
    srv.start()
    yield srv
    srv.stop()


class FakeSwitch:
    """FreeSWITCH's side of an outbound socket, scripted byte by byte (from ``source`` if given)."""

    def __init__(self, address: tuple[str, int], source: str | None = None) -> None:
        self.sock = socket.create_connection(address, timeout=WAIT,
                                             source_address=(source, 0) if source else None)

    def expect_connect(self) -> None:
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = self.sock.recv(100)
            assert chunk, "closed before connect"
            data += chunk
        assert data == b"connect\n\n"

    def send(self, data: bytes, chunk: int = 0) -> None:
        if not chunk:
            self.sock.sendall(data)
            return
        for start in range(0, len(data), chunk):
            self.sock.sendall(data[start:start + chunk])

    def closed_by_peer(self) -> bool:
        return self.sock.recv(100) == b""

    def closed_without_a_word(self) -> bool:
        """Closed with nothing sent: a FIN, or a reset when what we sent was never read."""
        try:
            return self.sock.recv(100) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------- the server


@pytest.mark.parametrize("chunk", [0, 7], ids=["whole", "in-pieces"])
def test_connect_reply_of_capture_15_becomes_the_channel(
    captures_dir: Path, server: OutboundServer, recorder: Recorder, chunk: int
) -> None:
    connect_reply = capture_frames(captures_dir, "15")[0]
    peer = FakeSwitch(server.address)
    peer.expect_connect()
    peer.send(connect_reply, chunk)
    session = recorder.sessions.get(timeout=WAIT)
    assert session.uuid == CAPTURE_UUID
    channel = session.channel
    assert channel.name == "CHANNEL_DATA"
    assert channel["Caller-Caller-ID-Name"] == "Dan X-Lite"
    assert channel["Caller-Destination-Number"] == "3"
    assert channel["variable_sip_full_from"] == '"Dan X-Lite" <sip:1001@172.16.50.134>;tag=5996e014'
    assert channel["Reply-Text"] == "+OK\n"
    assert (session.socket_mode, session.control) == ("async", "full")
    assert channel.get("variable_callworker_tenant") is None
    peer.close()


def test_disconnect_notice_of_capture_16_ends_the_session(
    captures_dir: Path, server: OutboundServer, recorder: Recorder
) -> None:
    peer = FakeSwitch(server.address)
    peer.expect_connect()
    peer.send(capture_frames(captures_dir, "15")[0])
    session = recorder.sessions.get(timeout=WAIT)
    _bye, notice = capture_frames(captures_dir, "16")
    assert b"Controlled-Session-UUID: " + CAPTURE_UUID.encode() in notice
    peer.send(notice)
    assert recorder.ended.get(timeout=WAIT) is session
    assert session.end_reason == "disconnect notice"
    assert peer.closed_by_peer()


def test_linger_notice_keeps_the_session_until_the_socket_closes(
    captures_dir: Path, server: OutboundServer, recorder: Recorder
) -> None:
    peer = FakeSwitch(server.address)
    peer.expect_connect()
    peer.send(capture_frames(captures_dir, "15")[0])
    session = recorder.sessions.get(timeout=WAIT)
    peer.send(b"Content-Type: text/disconnect-notice\nControlled-Session-UUID: "
              + CAPTURE_UUID.encode() + b"\nContent-Disposition: linger\nChannel-Name: x\n"
              b"Linger-Time: -1\nContent-Length: 0\n\n")
    with pytest.raises(gevent.queue.Empty):
        recorder.ended.get(timeout=0.2)
    assert session.lingering and not session.ended.is_set()
    peer.close()
    assert recorder.ended.get(timeout=WAIT) is session
    assert session.end_reason == "closed by FreeSWITCH"


def test_a_refused_call_gets_its_socket_closed(captures_dir: Path) -> None:
    for answer in (lambda s: False, lambda s: 1 / 0):
        recorder = Recorder(answer)
        srv = OutboundServer("127.0.0.1", 0, allow=LOOPBACK, on_session=recorder.on_session,
                             on_session_end=recorder.on_session_end)
        srv.start()
        try:
            peer = FakeSwitch(srv.address)
            peer.expect_connect()
            peer.send(capture_frames(captures_dir, "15")[0])
            assert peer.closed_by_peer()
            assert (srv.taken, srv.refused) == (0, 1)
            assert recorder.ended.empty()
        finally:
            srv.stop()


@pytest.mark.parametrize(
    "reply",
    [None, b"Content-Type: command/reply\nReply-Text: -ERR nope\n\n",
     b"Content-Type: command/reply\nReply-Text: +OK\nUnique-ID: not-a-uuid\n\n",
     b"\x00\x01 garbage\n\n"],
    ids=["silent", "error", "no-uuid", "garbage"],
)
def test_a_peer_that_does_not_hand_over_a_call_is_dropped(
    server: OutboundServer, recorder: Recorder, reply: bytes | None
) -> None:
    peer = FakeSwitch(server.address)
    peer.expect_connect()
    if reply is not None:
        peer.send(reply)
    started = time.monotonic()
    assert peer.closed_by_peer()
    assert time.monotonic() - started < 3.0
    assert recorder.sessions.empty() and server.taken == 0


def test_a_peer_not_allowed_is_closed_before_anything_is_said_or_read(
    captures_dir: Path, server: OutboundServer, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = FakeSwitch(server.address, source="127.0.0.2")
    stranger.send(capture_frames(captures_dir, "15")[0])  # a channel, unasked
    assert stranger.closed_without_a_word()  # never asked to connect, nothing read
    assert (server.strangers, server.accepted) == (1, 0)
    assert recorder.sessions.empty()
    [line] = [r.getMessage() for r in caplog.records if r.name == "callworker.esl.outbound"]
    assert "127.0.0.2" in line
    # FreeSWITCH itself still hands calls over.
    peer = FakeSwitch(server.address, source="127.0.0.1")
    peer.expect_connect()
    peer.send(capture_frames(captures_dir, "15")[0])
    assert recorder.sessions.get(timeout=WAIT).uuid == CAPTURE_UUID
    assert (server.strangers, server.accepted) == (1, 1)
    peer.close()


def test_an_allowed_network_admits_every_address_in_it(captures_dir: Path, recorder: Recorder) -> None:
    srv = OutboundServer("127.0.0.1", 0, allow=PeerAllowList(parse_networks(["127.0.0.0/8"])).allows,
                         on_session=recorder.on_session)
    srv.start()
    try:
        peer = FakeSwitch(srv.address, source="127.0.0.2")
        peer.expect_connect()
        peer.send(capture_frames(captures_dir, "15")[0])
        assert recorder.sessions.get(timeout=WAIT).uuid == CAPTURE_UUID
        peer.close()
    finally:
        srv.stop()


def test_an_allow_list_that_fails_refuses(recorder: Recorder) -> None:
    srv = OutboundServer("127.0.0.1", 0, allow=lambda host: 1 / 0 > 0, on_session=recorder.on_session)
    srv.start()
    try:
        peer = FakeSwitch(srv.address)
        assert peer.closed_by_peer() and srv.strangers == 1
    finally:
        srv.stop()


def test_commands_on_the_session_get_their_replies_in_order(
    captures_dir: Path, server: OutboundServer, recorder: Recorder
) -> None:
    peer = FakeSwitch(server.address)
    peer.expect_connect()
    peer.send(capture_frames(captures_dir, "15")[0])
    session = recorder.sessions.get(timeout=WAIT)
    first = gevent.spawn(session.command, "getvar a")
    second = gevent.spawn(session.command, "getvar b")
    received = b""
    while received.count(b"\n\n") < 2:
        received += peer.sock.recv(100)
    assert received == b"getvar a\n\ngetvar b\n\n"
    peer.send(b"Content-Type: command/reply\nReply-Text: one\n\n"
              b"Content-Type: command/reply\nReply-Text: two\n\n")
    assert first.get(timeout=WAIT).reply_text() == "one"
    assert second.get(timeout=WAIT).reply_text() == "two"


def test_a_port_in_use_raises_a_config_error_and_nothing_exits() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        port = holder.getsockname()[1]
        srv = OutboundServer("127.0.0.1", port, allow=LOOPBACK, on_session=lambda s: True)
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}"):
            srv.start()
    finally:
        holder.close()


def test_hand_over_waits_for_no_polling_interval(server: OutboundServer) -> None:
    # A server that polls accept every 100 ms would take about 2.5 s for these 50.
    started = time.monotonic()
    for _ in range(50):
        peer = FakeSwitch(server.address)
        peer.expect_connect()
        peer.close()
    assert time.monotonic() - started < 1.5


def test_stop_closes_every_session(captures_dir: Path, recorder: Recorder) -> None:
    srv = OutboundServer("127.0.0.1", 0, allow=LOOPBACK, on_session=recorder.on_session,
                         on_session_end=recorder.on_session_end)
    srv.start()
    peer = FakeSwitch(srv.address)
    peer.expect_connect()
    peer.send(capture_frames(captures_dir, "15")[0])
    recorder.sessions.get(timeout=WAIT)
    srv.stop()
    assert peer.closed_by_peer()
    assert srv.sessions == []


# --------------------------------------------------- against the simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator("127.0.0.1", 0, ring_delay=0.01, answer_delay=0.02)
    simulator.start()
    yield simulator
    simulator.stop()


def test_two_hundred_concurrent_calls_are_handed_over_and_end(
    sim: Simulator, server: OutboundServer, recorder: Recorder
) -> None:
    host, port = server.address
    uuids = {sim.place_inbound_call(host, port, caller_id_number="+15550001111",
                                    destination_number=f"+1555200{n:04d}") for n in range(200)}
    sessions = {recorder.sessions.get(timeout=WAIT).uuid for _ in uuids}
    assert sessions == uuids
    assert len(server.sessions) == 200
    for uuid in uuids:
        sim.hangup(uuid)
    ended = [recorder.ended.get(timeout=WAIT) for _ in uuids]
    assert {session.uuid for session in ended} == uuids
    assert {session.end_reason for session in ended} == {"disconnect notice"}


def test_session_commands_against_the_simulator(
    sim: Simulator, server: OutboundServer, recorder: Recorder
) -> None:
    host, port = server.address
    uuid = sim.place_inbound_call(host, port, caller_id_number="+15550001111",
                                  destination_number="+15552001234",
                                  variables={"callworker_tenant": "acme"})
    session = recorder.sessions.get(timeout=WAIT)
    assert session.uuid == uuid
    assert session.channel["variable_callworker_tenant"] == "acme"
    assert session.command("getvar callworker_tenant").reply_text() == "acme"
    # FreeSWITCH's quirk: an unset variable gives an empty reply, sent as this.
    assert session.command("getvar no_such_var").reply_text() == "-ERR command not found"
    answer = [("call-command", "execute"), ("execute-app-name", "answer")]
    assert session.command("sendmsg", answer).reply_text() == "+OK"
    assert sim.channel_vars(uuid)["endpoint_disposition"] == "ANSWER"
    assert session.command("exit").reply_text() == "+OK bye"
    assert recorder.ended.get(timeout=WAIT) is session
    # The dialplan goes on after the socket: the shipped one hangs up.
    assert sim.wait_ended(uuid, WAIT)
    assert sim.channel_vars(uuid)["hangup_cause"] == "NORMAL_TEMPORARY_FAILURE"


# ------------------------------------------- the simulator's outbound mode


class ScriptedServer:
    """The server side of outbound sockets, driven by the test: one ``Peer`` per call."""

    def __init__(self) -> None:
        self.peers: gevent.queue.Queue[Peer] = gevent.queue.Queue()
        self.server = StreamServer(("127.0.0.1", 0), self._accept)
        self.server.start()

    def _accept(self, sock: socket.socket, _address: Any) -> None:
        peer = Peer(sock)
        self.peers.put(peer)
        peer.done.wait()

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address[0], self.server.server_port

    def stop(self) -> None:
        self.server.stop(timeout=1)


class Peer:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = FrameParser()
        self.raw = bytearray()
        self.done = gevent.event.Event()

    def frame(self, timeout: float = WAIT) -> Frame | None:
        """The next frame, None once FreeSWITCH closed the socket."""
        with gevent.Timeout(timeout):
            while (frame := self.parser.next_frame()) is None:
                data = self.sock.recv(65536)
                if not data:
                    return None
                self.raw += data
                self.parser.feed(data)
            return frame

    def command(self, line: str, headers: Sequence[tuple[str, str]] = ()) -> Frame:
        self.sock.sendall(encode_command(line, headers))
        frame = self.frame()
        assert frame is not None
        return frame

    def events_until(self, done: Callable[[Frame], bool]) -> list[Frame]:
        frames = []
        while (frame := self.frame()) is not None:
            frames.append(frame)
            if done(frame):
                break
        return frames

    def close(self) -> None:
        self.sock.close()
        self.done.set()


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.stop()


def place(sim: Simulator, scripted: ScriptedServer, **kwargs: Any) -> tuple[str, Peer]:
    uuid = sim.place_inbound_call(*scripted.address, caller_id_number="+15550001111",
                                  destination_number="+15552001234", **kwargs)
    return uuid, scripted.peers.get(timeout=WAIT)


def test_simulator_sends_no_auth_and_answers_connect_like_capture_15(
    sim: Simulator, scripted: ScriptedServer
) -> None:
    uuid, peer = place(sim, scripted, caller_id_name="Jane Caller",
                       variables={"callworker_tenant": "acme", "note": "a b&c"})
    reply = peer.command("connect")
    assert reply.content_type == "command/reply" and reply.body == b""
    names = list(reply.headers)
    assert names[0] == "Event-Name" and reply.headers["Event-Name"] == "CHANNEL_DATA"
    assert names[-4:] == ["Content-Type", "Reply-Text", "Socket-Mode", "Control"]
    assert b"\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n" in peer.raw
    assert names.index("Channel-Direction") < names.index("Channel-State") < names.index(
        "Caller-Direction") < names.index("variable_direction")
    h = reply.headers
    assert (h["Unique-ID"], h["Call-Direction"], h["Answer-State"]) == (uuid, "inbound", "ringing")
    assert (h["Caller-Caller-ID-Number"], h["Caller-Destination-Number"]) == (
        "+15550001111", "+15552001234")
    assert h["Caller-Caller-ID-Name"] == "Jane Caller" and h["Channel-Caller-ID-Name"] == "Jane Caller"
    assert (h["variable_callworker_tenant"], h["variable_note"]) == ("acme", "a b&c")
    assert h["variable_current_application"] == "socket"
    assert h["Event-Calling-Function"] == "parse_command"
    peer.close()


def test_simulator_outbound_commands(sim: Simulator, scripted: ScriptedServer) -> None:
    uuid, peer = place(sim, scripted)
    peer.command("connect")
    assert peer.command("getvar channel_name").reply_text() == "sofia/external/+15550001111@203.0.113.10"
    assert peer.command("getvar unset_thing").reply_text() == "-ERR command not found"
    assert peer.command("resume").reply_text() == "+OK"
    assert peer.command("linger 5").reply_text() == "+OK will linger 5 seconds"
    assert peer.command("nolinger").reply_text() == "+OK will not linger"
    assert peer.command("linger").reply_text() == "+OK will linger"
    assert peer.command("filter Unique-ID " + uuid).reply_text().startswith("+OK filter added.")
    assert peer.command("divert_events on").reply_text() == "+OK events diverted"
    assert peer.command("myevents").reply_text() == "+OK Events Enabled"
    assert peer.command("myevents").reply_text() == "-ERR aready enabled."
    assert peer.command(f"sendmsg {'0' * 8}-0000-4000-8000-{'0' * 12}").reply_text().startswith(
        "-ERR invalid session id")
    assert peer.command("api uuid_exists " + uuid).body == b"true"
    assert peer.command("event plain CHANNEL_HANGUP").reply_text() == (
        "+OK event listener enabled plain")
    assert peer.command("nolinger").reply_text() == "+OK will not linger"
    hangup = [("call-command", "hangup"), ("hangup-cause", "USER_BUSY")]
    assert peer.command("sendmsg", hangup).reply_text() == "+OK"
    frames = peer.events_until(lambda f: f.content_type == "text/disconnect-notice")
    names = [parse_event(f).name for f in frames[:-1]]
    assert names[0] == "CHANNEL_HANGUP" and "CHANNEL_HANGUP_COMPLETE" not in names
    assert frames[-1].headers["Content-Disposition"] == "disconnect"
    assert peer.frame() is None
    assert sim.wait_ended(uuid, WAIT)
    assert sim.channel_vars(uuid)["hangup_cause"] == "USER_BUSY"
    assert sim.channel_vars(uuid)["sip_hangup_disposition"] == "send_refuse"
    peer.close()


def test_without_full_only_session_commands_work(sim: Simulator, scripted: ScriptedServer) -> None:
    _uuid, peer = place(sim, scripted, full=False)
    reply = peer.command("connect")
    assert reply.headers["Control"] == "single-channel"
    assert peer.command("getvar direction").reply_text() == "inbound"
    for line in ("api status", "event plain ALL", "linger", "log debug"):
        assert peer.command(line).reply_text() == "-ERR command not found", line
    peer.close()


def test_myevents_sends_this_channels_events_then_the_disconnect_notice(
    sim: Simulator, scripted: ScriptedServer
) -> None:
    uuid, peer = place(sim, scripted)
    other, other_peer = place(sim, scripted)
    peer.command("connect")
    assert peer.command("myevents").reply_text() == "+OK Events Enabled"
    sim.answer(other)
    answer = [("call-command", "execute"), ("execute-app-name", "answer"), ("Event-UUID", "app-1")]
    assert peer.command("sendmsg", answer).reply_text() == "+OK"
    sim.hangup(uuid)
    frames = peer.events_until(lambda f: f.content_type == "text/disconnect-notice")
    events = [parse_event(f) for f in frames[:-1]]
    assert {e["Unique-ID"] for e in events} == {uuid}
    names = [e.name for e in events]
    assert names[:3] == ["CHANNEL_EXECUTE", "CHANNEL_ANSWER", "CHANNEL_EXECUTE_COMPLETE"]
    assert events[0]["Application-UUID"] == "app-1"
    assert "CHANNEL_HANGUP" in names and "CHANNEL_HANGUP_COMPLETE" not in names
    notice = frames[-1]
    assert notice.headers["Controlled-Session-UUID"] == uuid
    assert notice.headers["Content-Disposition"] == "disconnect"
    assert list(notice.headers) == ["Content-Type", "Controlled-Session-UUID",
                                    "Content-Disposition", "Content-Length"]
    assert peer.frame() is None
    other_peer.close()


def test_linger_keeps_events_flowing_after_the_hangup(sim: Simulator, scripted: ScriptedServer) -> None:
    uuid, peer = place(sim, scripted, answer=True)
    connect = peer.command("connect")
    assert connect.headers["Answer-State"] == "answered"
    peer.command("myevents")
    assert peer.command("linger 1").reply_text() == "+OK will linger 1 seconds"
    sim.hangup(uuid)
    frames = peer.events_until(lambda f: f.content_type == "text/disconnect-notice"
                               and f.headers.get("Content-Disposition") == "disconnect")
    kinds = [f.headers.get("Content-Disposition") or parse_event(f).name for f in frames]
    linger = kinds.index("linger")
    assert kinds.index("CHANNEL_HANGUP") < linger < kinds.index("CHANNEL_HANGUP_COMPLETE")
    notice = frames[linger].headers
    assert (notice["Controlled-Session-UUID"], notice["Linger-Time"]) == (uuid, "1")
    assert notice["Channel-Name"] == "sofia/external/+15550001111@203.0.113.10"
    complete = parse_event(frames[kinds.index("CHANNEL_HANGUP_COMPLETE")])
    assert complete["variable_sip_hangup_disposition"] == "recv_bye"
    assert peer.frame() is None


def test_inbound_channel_events_reach_inbound_listeners(sim: Simulator, scripted: ScriptedServer) -> None:
    listener = socket.create_connection(sim.address, timeout=WAIT)
    parser = FrameParser()
    frames: gevent.queue.Queue[Frame] = gevent.queue.Queue()

    def read() -> None:
        while data := listener.recv(65536):
            parser.feed(data)
            for frame in parser:
                frames.put(frame)

    reader = gevent.spawn(read)
    listener.sendall(encode_command("auth ClueCon") + encode_command("event plain ALL"))
    for _ in range(3):  # auth/request, +OK accepted, +OK event listener enabled
        frames.get(timeout=WAIT)
    uuid, peer = place(sim, scripted, variables={"callworker_tenant": "acme"})
    peer.command("connect")
    sim.hangup(uuid)
    seen: list[Event] = []
    while not seen or seen[-1].name != "CHANNEL_DESTROY":
        frame = frames.get(timeout=WAIT)
        if frame.content_type == "text/event-plain":
            event = parse_event(frame)
            if event.get("Unique-ID") == uuid:
                seen.append(event)
    names = [e.name for e in seen]
    assert names.index("CHANNEL_CREATE") < names.index("CHANNEL_PARK") < names.index("CHANNEL_HANGUP")
    create = seen[names.index("CHANNEL_CREATE")]
    assert create["Call-Direction"] == "inbound" and create["Caller-Context"] == "public"
    complete = seen[names.index("CHANNEL_HANGUP_COMPLETE")]
    assert complete["variable_direction"] == "inbound"
    assert complete["variable_callworker_tenant"] == "acme"
    assert complete["variable_hangup_cause"] == "ORIGINATOR_CANCEL"
    assert complete["variable_sip_hangup_disposition"] == "recv_cancel"
    assert complete["variable_last_app"] == "socket" and complete["variable_billsec"] == "0"
    reader.kill()
    listener.close()
    peer.close()


def test_no_server_listening_hangs_up_like_the_shipped_dialplan(sim: Simulator) -> None:
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()
    uuid = sim.place_inbound_call("127.0.0.1", port, caller_id_number="+15550001111",
                                  destination_number="+15552001234")
    assert sim.wait_ended(uuid, WAIT)
    assert sim.channel_vars(uuid)["hangup_cause"] == "NORMAL_TEMPORARY_FAILURE"
    assert sim.channel_vars(uuid)["sip_term_status"] == "503"
