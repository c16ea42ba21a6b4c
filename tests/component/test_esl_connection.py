"""EslConnection against a scripted FreeSWITCH over real TCP on 127.0.0.1.

The sections are named after the greenswitch 0.0.19 defects of NOTES.md: on a bare
``InboundESL`` those scenarios hang, hand a caller someone else's reply, or kill
the reader. The fake server speaks the inbound protocol through the project's
own codec; ``api <name> <args>`` runs the handler registered under ``name``.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.event
import pytest
from gevent.queue import Queue
from gevent.server import StreamServer

from callworker.backoff import Backoff
from callworker.errors import (
    FreeSwitchAuthError,
    FreeSwitchError,
    FreeSwitchTimeout,
    FreeSwitchUnavailable,
    UnsafeValue,
)
from callworker.esl.buffer import EventBuffer
from callworker.esl.codec import (
    Command,
    CommandParser,
    api_response,
    auth_request,
    command_reply,
    disconnect_notice,
    encode_event_json,
    encode_event_plain,
    event_frame,
    rude_rejection,
)
from callworker.esl.connection import EslConnection, EslSession
from callworker.esl.port import FreeSwitchPort

PASSWORD = "ClueCon"
WAIT = 5.0


class FakeConn:
    """The server side of one client connection."""

    def __init__(self, sock: socket.socket, number: int) -> None:
        self.sock = sock
        self.number = number

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            pass  # the client is gone; what it would have read no longer matters

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


Handler = Callable[[FakeConn, str], None]


class FakeFreeSwitch:
    """A scripted inbound event socket: auth, event, filter, api, bgapi, exit."""

    def __init__(self, *, password: str = PASSWORD, greeting: str = "auth") -> None:
        self.password = password
        self.greeting = greeting  # "auth", "silent" or "rude"
        self.api: dict[str, Handler] = {"echo": lambda conn, args: conn.send(api_response(args))}
        self.conns: list[FakeConn] = []
        self.opened: Queue[int] = Queue()
        self.closed: Queue[int] = Queue()
        self.seen: Queue[tuple[int, Command]] = Queue()
        self.server = StreamServer(("127.0.0.1", 0), self._serve)
        self.server.start()
        self.port: int = self.server.server_port

    def stop(self) -> None:
        self.server.stop(timeout=1)
        for conn in self.conns:
            conn.close()

    def expect(self, prefix: str) -> tuple[int, Command]:
        """The next command whose line starts with ``prefix`` (others are skipped)."""
        while True:
            number, cmd = self.seen.get(timeout=WAIT)
            if cmd.line.startswith(prefix):
                return number, cmd

    def lines(self, count: int) -> list[tuple[int, str]]:
        return [(n, c.line) for n, c in (self.seen.get(timeout=WAIT) for _ in range(count))]

    def _serve(self, sock: socket.socket, _addr: Any) -> None:
        conn = FakeConn(sock, len(self.conns))
        self.conns.append(conn)
        self.opened.put(conn.number)
        try:
            if self.greeting == "rude":
                conn.send(rude_rejection() + disconnect_notice())
                conn.close()
                return
            if self.greeting == "auth":
                conn.send(auth_request())
            self._read(conn)
        finally:
            self.closed.put(conn.number)

    def _read(self, conn: FakeConn) -> None:
        parser = CommandParser()
        while True:
            try:
                data = conn.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self.greeting == "silent":
                continue
            parser.feed(data)
            while (cmd := parser.next_command()) is not None:
                self.seen.put((conn.number, cmd))
                self._answer(conn, cmd)

    def _answer(self, conn: FakeConn, cmd: Command) -> None:
        word, _, rest = cmd.line.partition(" ")
        if word == "auth":
            if rest == self.password:
                conn.send(command_reply("+OK accepted"))
            else:
                conn.send(command_reply("-ERR invalid") + disconnect_notice())
                conn.close()
        elif word == "event":
            conn.send(command_reply(f"+OK event listener enabled {rest.split()[0]}"))
        elif word == "filter":
            name, _, value = rest.partition(" ")
            conn.send(command_reply(f"+OK filter added. [{name}]=[{value}]"))
        elif word == "exit":
            conn.send(command_reply("+OK bye") + disconnect_notice())
            conn.close()
        elif word == "api":
            name, _, args = rest.partition(" ")
            handler = self.api.get(name)
            if handler is None:
                conn.send(api_response(f"-ERR {name} Command not found!\n"))
            else:
                handler(conn, args)
        elif word == "bgapi":
            if rest.startswith("refuse"):
                conn.send(command_reply("-ERR refused"))
                return
            job = cmd.headers.get("Job-UUID") or str(uuid.uuid4())
            conn.send(command_reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)]))
        else:
            conn.send(command_reply("-ERR command not found"))


def plain_event(seq: int) -> bytes:
    headers = [("Event-Name", "CHANNEL_CREATE"), ("Event-Sequence", str(seq)), ("Unique-ID", "u-1")]
    return event_frame(encode_event_plain(headers))


def json_event(seq: int) -> bytes:
    payload = encode_event_json([("Event-Name", "CHANNEL_ANSWER"), ("Event-Sequence", str(seq))])
    return event_frame(payload, "json")


LOG_FRAME = b"Content-Type: log/data\nContent-Length: 9\nLog-Level: 7\n\nlog line\n"


@pytest.fixture
def fs() -> Iterator[FakeFreeSwitch]:
    server = FakeFreeSwitch()
    yield server
    server.stop()


@pytest.fixture
def make_conn(fs: FakeFreeSwitch) -> Iterator[Callable[..., EslConnection]]:
    made: list[EslConnection] = []

    def make(*, start: bool = True, **options: Any) -> EslConnection:
        params: dict[str, Any] = {
            "events": ("CHANNEL_CREATE", "BACKGROUND_JOB"),
            "event_queue": EventBuffer(100, 1 << 20),
            "connect_timeout": 2.0,
            "backoff_initial": 0.01,
            "backoff_max": 0.05,
        }
        params.update(options)
        password = params.pop("password", PASSWORD)
        conn = EslConnection("127.0.0.1", fs.port, password, **params)
        made.append(conn)
        if start:
            conn.start()
            assert conn.wait_connected(WAIT)
            fs.expect("event ")
        return conn

    yield make
    for conn in made:
        conn.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def session(port: int, password: str = PASSWORD, timeout: float = 2.0) -> EslSession:
    return EslSession("127.0.0.1", port, password, connect_timeout=timeout, on_event=lambda event, size: None)


# ----------------------------------------------------------------------- defect 1: timeouts


def test_timeout_fails_every_waiter_and_the_next_command_gets_its_own_reply(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    release = gevent.event.Event()

    def late(conn: FakeConn, args: str) -> None:
        def reply_when_released() -> None:
            release.wait()
            conn.send(api_response(f"late {args}"))

        gevent.spawn(reply_when_released)

    fs.api["late"] = late
    downs: Queue[str] = Queue()
    conn = make_conn(on_disconnected=lambda: downs.put("down"))
    other = gevent.spawn(conn.api, "late other", timeout=30)
    started = time.monotonic()
    with pytest.raises(FreeSwitchTimeout):
        conn.api("late mine", timeout=0.2)
    other.join(WAIT)
    assert isinstance(other.exception, FreeSwitchTimeout)
    assert time.monotonic() - started < 3
    assert not conn.connected
    release.set()
    assert downs.get(timeout=WAIT) == "down"
    assert conn.wait_connected(WAIT)
    assert conn.api("echo next") == "next"
    assert conn.stats.timeouts == 1


def test_a_caller_killed_while_waiting_resets_the_connection(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    fs.api["hang"] = lambda conn, args: None
    conn = make_conn()
    caller = gevent.spawn(conn.api, "hang", timeout=30)
    fs.expect("api hang")
    caller.kill(block=True)
    assert not conn.connected  # its reply, if it ever came, would go to the next caller
    assert conn.wait_connected(WAIT)
    assert conn.api("echo fresh") == "fresh"


# ----------------------------------------------------------------------- defect 2, 7: drops


def test_a_dropped_socket_wakes_every_pending_caller(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    fs.api["hang"] = lambda conn, args: None
    fs.api["drop"] = lambda conn, args: conn.close()
    conn = make_conn()
    waiting = [gevent.spawn(conn.api, "hang", timeout=30) for _ in range(3)]
    for _ in waiting:
        fs.expect("api hang")
    with pytest.raises(FreeSwitchUnavailable) as info:
        conn.api("drop", timeout=30)
    assert not isinstance(info.value, FreeSwitchTimeout)
    gevent.joinall(waiting, timeout=WAIT)
    for caller in waiting:
        assert isinstance(caller.exception, FreeSwitchUnavailable)
        assert not isinstance(caller.exception, FreeSwitchTimeout)


@pytest.mark.parametrize(
    "partial",
    [
        b"Content-Type: api/response\nContent-Length: 100\n\n0123456789",
        plain_event(1)[:-40],
        b"Content-Length: 500\nContent-Type: text/ev",
    ],
    ids=["api-body", "event-body", "header-block"],
)
def test_a_socket_closed_mid_frame_is_a_lost_connection(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection], partial: bytes
) -> None:
    def cut(conn: FakeConn, args: str) -> None:
        conn.send(partial)
        conn.close()

    fs.api["cut"] = cut
    conn = make_conn()
    with pytest.raises(FreeSwitchUnavailable):
        conn.api("cut", timeout=30)
    assert conn.wait_connected(WAIT)
    assert conn.api("echo back") == "back"
    assert conn.stats.disconnects == 1


def test_a_disconnect_notice_is_a_lost_connection_but_a_linger_notice_is_not(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    linger = disconnect_notice([("Content-Disposition", "linger")])
    fs.api["linger"] = lambda conn, args: conn.send(linger + api_response("still here"))
    fs.api["bye"] = lambda conn, args: conn.send(disconnect_notice())
    conn = make_conn()
    assert conn.api("linger") == "still here"
    with pytest.raises(FreeSwitchUnavailable):
        conn.api("bye", timeout=30)
    assert conn.wait_connected(WAIT)
    assert conn.stats.connects == 2


# ----------------------------------------------------------------------- defects 3, 4: reading


def test_frames_of_unknown_type_without_length_are_skipped(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    odd = b"Content-Type: text/x-mystery\nX-Note: no length\n\nX-Only: a header\n\n" + LOG_FRAME
    fs.api["odd"] = lambda conn, args: conn.send(odd + api_response("after"))
    conn = make_conn()
    assert conn.api("odd") == "after"
    assert conn.connected
    assert conn.api("echo again") == "again"
    assert conn.stats.disconnects == 0


def test_event_values_are_split_before_decoding(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    body = "-ERR NO_ROUTE_DESTINATION\nJob-Result: fake\n"
    payload = (
        b"Event-Name: BACKGROUND_JOB\nJob-UUID: j-1\nVariable-Note: a%0AFake: x\n"
        + f"Content-Length: {len(body)}\n\n{body}".encode()
    )
    frame = event_frame(payload)
    fs.api["emit"] = lambda conn, args: conn.send(frame + api_response("+OK"))
    queue: EventBuffer = EventBuffer(10, 1 << 20)
    conn = make_conn(event_queue=queue)
    assert conn.api("emit") == "+OK"
    event = queue.get(timeout=WAIT)
    assert event.name == "BACKGROUND_JOB"
    assert event["Variable-Note"] == "a\nFake: x"
    assert "Fake" not in event and "Job-Result" not in event
    assert event["Job-UUID"] == "j-1"
    assert event.body == body


def test_junk_in_the_stream_is_skipped_and_counted(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    queue: EventBuffer = EventBuffer(10, 1 << 20)
    junk = b"\nuuid_transfer " + plain_event(7) + api_response("ok")
    fs.api["junk"] = lambda conn, args: conn.send(junk)
    conn = make_conn(event_queue=queue)
    assert conn.api("junk") == "ok"
    assert queue.get(timeout=WAIT)["Event-Sequence"] == "7"
    assert conn.stats.resyncs == 1
    assert conn.connected


# ----------------------------------------------------------------------- defect 5: sendall


@pytest.mark.parametrize("size", [1 << 20, 8 << 20], ids=["1MB", "8MB"])
def test_a_large_command_is_sent_whole(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection], size: int
) -> None:
    # One send() on loopback here takes about 4 MB at most; the rest must follow.
    fs.api["size"] = lambda conn, args: conn.send(api_response(str(len(args))))
    conn = make_conn()
    assert conn.api("size " + "x" * size, timeout=20) == str(size)
    assert conn.api("echo after") == "after"


# ----------------------------------------------------------------------- defect 6: connect


def test_a_silent_server_times_out_the_connect() -> None:
    silent = FakeFreeSwitch(greeting="silent")
    try:
        started = time.monotonic()
        with pytest.raises(FreeSwitchTimeout):
            session(silent.port, timeout=0.3).connect()
        assert time.monotonic() - started < 3
        assert silent.closed.get(timeout=WAIT) == 0  # the client hung up
    finally:
        silent.stop()


def test_a_wrong_password_is_an_auth_error_that_does_not_show_the_password(
    fs: FakeFreeSwitch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Wr0ng-Secret-42"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FreeSwitchAuthError) as info:
        session(fs.port, password=secret).connect()
    assert secret not in str(info.value)
    assert "refused the password" in str(info.value)
    assert all(secret not in record.getMessage() for record in caplog.records)


def test_a_refused_port_is_unavailable() -> None:
    with pytest.raises(FreeSwitchUnavailable) as info:
        session(free_port()).connect()
    assert not isinstance(info.value, FreeSwitchTimeout)


def test_an_acl_rejection_is_an_auth_error() -> None:
    rude = FakeFreeSwitch(greeting="rude")
    try:
        with pytest.raises(FreeSwitchAuthError, match="rejected"):
            session(rude.port).connect()
    finally:
        rude.stop()


def test_the_supervisor_keeps_retrying_and_reports_the_last_error(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Other-Secret-7"
    caplog.set_level(logging.DEBUG)
    conn = make_conn(password=secret, start=False)
    conn.start()
    for _ in range(3):
        fs.opened.get(timeout=WAIT)  # a new attempt starts only after the last one failed
    assert not conn.connected
    assert isinstance(conn.last_error, FreeSwitchAuthError)
    assert secret not in str(conn.last_error)
    with pytest.raises(FreeSwitchUnavailable):
        conn.api("echo x")
    conn.stop()
    assert all(secret not in record.getMessage() for record in caplog.records)
    # defect 9: the connection logs under callworker.esl, never to the root logger
    ours = [r for r in caplog.records if r.name.startswith("callworker")]
    assert ours and all(r.name == "callworker.esl" for r in ours)
    assert not [r for r in caplog.records if r.name == "root"]


# ----------------------------------------------------------------------- defect 8: reconnect


def test_reconnect_uses_a_new_session_and_subscribes_again(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    ups: Queue[str] = Queue()
    downs: Queue[str] = Queue()

    def on_connected() -> None:
        ups.put(conn.api("echo resync"))  # commands work inside the callback
        raise RuntimeError("a failing callback is logged, not fatal")

    conn = make_conn(
        start=False,
        events=("CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE", "BACKGROUND_JOB"),
        custom_subclasses=("callworker::hook",),
        filters=[("Call-Direction", "outbound")],
        on_connected=on_connected,
        on_disconnected=lambda: downs.put("down"),
    )
    conn.start()
    expected = [
        "auth ClueCon",
        "event plain CHANNEL_CREATE CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB CUSTOM callworker::hook",
        "filter Call-Direction outbound",
        "api echo resync",
    ]
    assert fs.lines(4) == [(0, line) for line in expected]
    assert ups.get(timeout=WAIT) == "resync"
    fs.conns[0].close()
    assert downs.get(timeout=WAIT) == "down"
    assert fs.lines(4) == [(1, line) for line in expected]
    assert ups.get(timeout=WAIT) == "resync"
    assert conn.wait_connected(WAIT)
    assert (conn.stats.connects, conn.stats.disconnects) == (2, 1)


def test_json_subscription(fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]) -> None:
    queue: EventBuffer = EventBuffer(10, 1 << 20)
    fs.api["emit"] = lambda conn, args: conn.send(json_event(3) + api_response("ok"))
    conn = make_conn(start=False, event_format="json", event_queue=queue)
    conn.start()
    assert fs.expect("event ")[1].line == "event json CHANNEL_CREATE BACKGROUND_JOB"
    assert conn.wait_connected(WAIT)
    assert conn.api("emit") == "ok"
    assert queue.get(timeout=WAIT)["Event-Sequence"] == "3"


# ----------------------------------------------------------------------- matching and events


def test_two_thousand_concurrent_api_calls_each_get_their_own_reply(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    fs.api["evecho"] = lambda conn, args: conn.send(plain_event(int(args)) + api_response(args))
    queue: EventBuffer = EventBuffer(10, 1 << 20)
    conn = make_conn(event_queue=queue)
    received: list[str] = []

    def drain_events() -> None:
        for _ in range(1000):
            received.append(queue.get()["Event-Sequence"])

    drain = gevent.spawn(drain_events)
    lines = [f"{'evecho' if i % 2 else 'echo'} {i}" for i in range(2000)]
    calls = [gevent.spawn(conn.api, line, timeout=30) for line in lines]
    gevent.joinall(calls, timeout=60, raise_error=True)
    assert [call.value for call in calls] == [str(i) for i in range(2000)]
    drain.join(WAIT)
    assert received == [str(i) for i in range(1, 2000, 2)]


def test_events_reach_the_bounded_queue_in_order(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    frames = [json_event(i) if i % 3 == 0 else plain_event(i) for i in range(1, 301)]
    burst = b"".join(frame + (LOG_FRAME if i % 50 == 0 else b"") for i, frame in enumerate(frames))
    fs.api["burst"] = lambda conn, args: conn.send(burst + api_response("sent"))
    queue = EventBuffer(3, 1 << 20)
    conn = make_conn(event_queue=queue)
    caller = gevent.spawn(conn.api, "burst", timeout=30)
    sequences = []
    for _ in range(300):
        sequences.append(int(queue.get(timeout=WAIT)["Event-Sequence"]))
    assert sequences == list(range(1, 301))
    assert caller.get(timeout=WAIT) == "sent"
    assert conn.stats.events_received == 300


def test_replies_keep_coming_while_nobody_takes_the_events(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    # The journal stalls (say the database is away) and events pile up: each api
    # answer comes behind a burst of events, and must still reach its caller at once.
    fs.api["burst"] = lambda conn, args: conn.send(
        b"".join(plain_event(int(args) * 100 + i) for i in range(100)) + api_response(args))
    queue = EventBuffer(50, 1 << 20)
    conn = make_conn(event_queue=queue)
    for round_no in range(10):
        assert conn.api(f"burst {round_no}", timeout=2.0) == str(round_no)
    assert conn.stats.timeouts == 0 and conn.stats.disconnects == 0 and conn.connected
    assert queue.qsize() == 1000 and queue.overflow_events == 950 and queue.dropped == 0
    taken = [int(queue.get(timeout=WAIT)["Event-Sequence"]) for _ in range(1000)]
    assert taken == list(range(1000))


def test_past_the_overflow_cap_events_are_dropped_and_the_loss_reported_once_cleared(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    def body(seq: int) -> bytes:  # all of one size
        return encode_event_plain([("Event-Name", "CHANNEL_ANSWER"), ("Event-Sequence", f"{seq:03d}")])

    size = len(body(0))
    fs.api["burst"] = lambda conn, args: conn.send(
        b"".join(event_frame(body(i)) for i in range(int(args))) + api_response(args))
    losses: list[int] = []
    queue = EventBuffer(10, 20 * size, on_loss=lambda: losses.append(queue.dropped))
    conn = make_conn(event_queue=queue)
    assert conn.api("burst 100", timeout=2.0) == "100"
    # 10 in the queue, then 15 ordinary events in the overflow (a quarter of the cap is
    # kept for precious ones): the other 75 are dropped, and the connection stays up.
    assert (queue.qsize(), queue.overflow_events, queue.dropped) == (25, 15, 75)
    assert queue.losing and losses == [] and conn.connected
    taken = [int(queue.get(timeout=WAIT)["Event-Sequence"]) for _ in range(25)]
    assert taken == list(range(25))
    assert losses == [75] and not queue.losing
    assert conn.stats.timeouts == 0 and conn.stats.disconnects == 0


# ----------------------------------------------------------------------- commands


def test_bgapi_returns_the_job_uuid_and_refusals_raise(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    conn = make_conn()
    job = "4786f47d-2b41-48e4-813b-380f1e9bf359"
    assert conn.bgapi("status", job_uuid=job) == job
    assert fs.expect("bgapi status")[1].headers["Job-UUID"] == job
    assert uuid.UUID(conn.bgapi("status"))
    with pytest.raises(FreeSwitchError, match="-ERR refused"):
        conn.bgapi("refuse this")
    assert conn.connected


def test_command_returns_the_reply_frame(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    conn = make_conn()
    reply = conn.command("filter Unique-ID abc")
    assert reply.content_type == "command/reply"
    assert reply.reply_text() == "+OK filter added. [Unique-ID]=[abc]"
    assert conn.command("nonsense").reply_text() == "-ERR command not found"


def test_a_line_break_in_a_command_is_refused_and_nothing_is_sent(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    conn = make_conn()
    with pytest.raises(UnsafeValue):
        conn.api("status\n\nexit")
    with pytest.raises(UnsafeValue):
        conn.bgapi("status", job_uuid="x\nEvil: 1")
    assert conn.api("echo ok") == "ok"
    assert fs.seen.get(timeout=WAIT)[1].line == "api echo ok"


def test_commands_fail_at_once_when_not_connected(make_conn: Callable[..., EslConnection]) -> None:
    conn = make_conn(start=False)
    port: FreeSwitchPort = conn
    started = time.monotonic()
    with pytest.raises(FreeSwitchUnavailable):
        port.api("status")
    with pytest.raises(FreeSwitchUnavailable):
        port.bgapi("status")
    with pytest.raises(FreeSwitchUnavailable):
        conn.command("noevents")
    assert time.monotonic() - started < 0.5
    assert not port.connected


def test_stop_says_exit_and_stops_reconnecting(
    fs: FakeFreeSwitch, make_conn: Callable[..., EslConnection]
) -> None:
    downs: Queue[str] = Queue()
    conn = make_conn(on_disconnected=lambda: downs.put("down"))
    conn.stop()
    assert fs.expect("exit")[0] == 0
    assert not conn.connected
    assert downs.get(timeout=WAIT) == "down"
    with pytest.raises(FreeSwitchUnavailable):
        conn.api("echo x")
    assert not conn.wait_connected(0.3)
    assert fs.opened.qsize() == 1


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(0.1, 1.0)
    delays = [backoff.next() for _ in range(8)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert 0.05 <= backoff.next() <= 0.1
