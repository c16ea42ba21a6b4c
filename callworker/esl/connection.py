"""The inbound event-socket connection to one FreeSWITCH node, kept up for ever.

Strategy: one TCP connection is one ``EslSession``, used once and thrown away.
Any failure closes the session and fails every caller still waiting: once one
reply is lost or late, no later reply can be matched to its command any more.

``EslConnection`` is the supervisor: it opens a session, authenticates,
subscribes, calls ``on_connected``; on loss it calls ``on_disconnected``, waits a
jittered, capped, exponential backoff and starts again with a new session.
Events go to the owner's ``EventBuffer``, whose ``put`` never blocks: the reader
is also where replies are matched, so it keeps reading whatever the consumer of
the events does (see ``esl/buffer.py`` for what happens when that falls behind).

One session's reading, sending and closing, and what is kept of greenswitch there,
are ``session.py``'s; docs/esl.md has the full account.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import gevent
import gevent.event
import gevent.lock
import gevent.socket

from callworker.backoff import Backoff
from callworker.errors import (
    FreeSwitchAuthError,
    FreeSwitchError,
    FreeSwitchNotSent,
    FreeSwitchUnavailable,
    ProtocolError,
)
from callworker.esl.buffer import EventBuffer
from callworker.esl.codec import Frame, encode_command
from callworker.esl.session import EslSession, EslStats

__all__ = ["EslConnection", "EslSession", "EslStats", "FreeSwitchNotSent"]

log = logging.getLogger("callworker.esl")

_RECV_SIZE = 65536
_FORMATS = ("plain", "json")


def _word(value: str, what: str) -> str:
    if not value or any(ch.isspace() for ch in value):
        raise ValueError(f"{what} must be one word: {value!r}")
    return value


def _subscription(fmt: str, events: Sequence[str], custom_subclasses: Sequence[str]) -> str:
    """``event <fmt> <names> [CUSTOM <subclasses>]``."""
    if fmt not in _FORMATS:
        raise ValueError(f"event format must be one of {_FORMATS}")
    names = [_word(name, "event name") for name in events if name != "CUSTOM"]
    subclasses = [_word(name, "event subclass") for name in custom_subclasses]
    if subclasses or "CUSTOM" in events:
        names += ["CUSTOM", *subclasses]
    if not names:
        raise ValueError("no events to subscribe to")
    return f"event {fmt} {' '.join(names)}"


class EslConnection:
    """A FreeSWITCH port over inbound ESL that reconnects by itself until ``stop()``."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        events: Sequence[str],
        custom_subclasses: Sequence[str] = (),
        event_format: str = "plain",
        event_queue: EventBuffer,
        send_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        on_connected: Callable[[], None] | None = None,
        on_disconnected: Callable[[], None] | None = None,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        filters: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._host, self._port, self._password = host, port, password
        self._setup = [_subscription(event_format, events, custom_subclasses)]
        self._setup += [f"filter {_word(name, 'filter header')} {value}" for name, value in filters]
        for line in self._setup:
            encode_command(line)  # a line break is refused now, not at every reconnect
        self._queue = event_queue
        self._send_timeout = send_timeout
        self._connect_timeout = connect_timeout
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._backoff = Backoff(backoff_initial, backoff_max)
        self.stats = EslStats()
        self.last_error: BaseException | None = None  # of the last failed attempt
        self._session: EslSession | None = None
        self._supervisor: gevent.Greenlet | None = None
        self._ready = gevent.event.Event()
        self._stopping = gevent.event.Event()

    def __repr__(self) -> str:
        return f"EslConnection({self._host}:{self._port}, connected={self.connected})"

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start the supervisor greenlet: connect, subscribe, reconnect on loss."""
        if self._supervisor is not None and not self._supervisor.dead:
            return
        self._stopping.clear()
        self._supervisor = gevent.spawn(self._supervise)

    def stop(self) -> None:
        """Say ``exit`` if connected, close, and stop reconnecting."""
        self._stopping.set()
        session = self._session
        if session is not None:
            if session.ready:
                try:
                    session.send("exit", min(self._send_timeout, 2.0))
                except FreeSwitchError:
                    pass
            session.close("stopped")
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not gevent.getcurrent():
            supervisor.join(timeout=self._connect_timeout + 1.0)
            supervisor.kill(block=True, timeout=1.0)

    @property
    def connected(self) -> bool:
        session = self._session
        return session is not None and session.ready

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.connected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._ready.wait(remaining)
        return True

    # ------------------------------------------------------------------ commands

    def api(self, command: str, *, timeout: float | None = None) -> str:
        """``api <command>``: the body of the api/response."""
        frame = self._request(encode_command(f"api {command}"), timeout)
        if frame.content_type != "api/response":
            raise FreeSwitchError(f"api refused: {frame.reply_text()}")
        return frame.body.decode("utf-8", "replace")

    def bgapi(
        self, command: str, *, job_uuid: str | None = None, timeout: float | None = None
    ) -> str:
        """``bgapi <command>``: the Job-UUID; the outcome arrives as BACKGROUND_JOB."""
        headers = [("Job-UUID", job_uuid)] if job_uuid is not None else []
        text = self._request(encode_command(f"bgapi {command}", headers), timeout).reply_text()
        job = text.partition("Job-UUID:")[2].strip()
        if not text.startswith("+OK") or not job:
            raise FreeSwitchError(f"bgapi refused: {text}")
        return job

    def command(self, line: str, *, timeout: float | None = None) -> Frame:
        """Any other ESL command: its reply frame, as it came."""
        return self._request(encode_command(line), timeout)

    def _request(self, payload: bytes, timeout: float | None) -> Frame:
        session = self._session
        if session is None or not session.ready:
            raise FreeSwitchNotSent(f"not connected to FreeSWITCH at {self._host}:{self._port}")
        return session.request(payload, self._send_timeout if timeout is None else timeout)

    # ------------------------------------------------------------------ supervisor

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            session = EslSession(
                self._host,
                self._port,
                self._password,
                connect_timeout=self._connect_timeout,
                on_event=self._queue.put,
                stats=self.stats,
                on_lost=self._ready.clear,
            )
            self._session = session
            try:
                self._establish(session)
            except Exception as exc:  # noqa: BLE001 - the supervisor never dies
                session.close("setup failed")
                self._note_failure(exc)
            else:
                self._run_connected(session)
            if not self._stopping.is_set():
                self._stopping.wait(self._backoff.next())

    def _establish(self, session: EslSession) -> None:
        session.connect()
        for line in self._setup:
            reply = session.send(line, self._send_timeout).reply_text()
            if not reply.startswith("+OK"):
                raise FreeSwitchError(f"{line.split(' ', 1)[0]} refused: {reply}")
        if self._stopping.is_set():
            raise FreeSwitchUnavailable("stopping")

    def _run_connected(self, session: EslSession) -> None:
        """Mark ready, tell the owner, then wait for the session to end."""
        session.mark_ready()
        self.last_error = None
        self.stats.connects += 1
        self._backoff.reset()
        if session.ready:  # not lost while subscribing
            self._ready.set()
        log.info("connected to FreeSWITCH at %s:%s", self._host, self._port)
        _call_safely(self._on_connected, "on_connected")
        session.lost.wait()
        self._ready.clear()
        self.stats.disconnects += 1
        level = logging.INFO if self._stopping.is_set() else logging.WARNING
        log.log(level, "disconnected from FreeSWITCH at %s:%s", self._host, self._port)
        _call_safely(self._on_disconnected, "on_disconnected")

    def _note_failure(self, exc: Exception) -> None:
        self.last_error = exc
        if self._stopping.is_set():
            return
        if isinstance(exc, (FreeSwitchError, ProtocolError)):
            level = logging.ERROR if isinstance(exc, FreeSwitchAuthError) else logging.WARNING
            log.log(level, "cannot connect to FreeSWITCH at %s:%s: %s", self._host, self._port, exc)
        else:
            log.error("cannot connect to FreeSWITCH at %s:%s", self._host, self._port, exc_info=exc)


def _call_safely(callback: Callable[[], None] | None, what: str) -> None:
    if callback is None:
        return
    try:
        callback()
    except Exception:
        log.exception("%s callback failed", what)
