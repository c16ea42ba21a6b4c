"""The outbound-socket server: FreeSWITCH's dialplan ``socket`` app hands calls here.

Strategy: gevent's ``StreamServer`` accepts connections as the event loop reports
them (no polling, so a hand-over waits for nothing) and gives each its own
greenlet. A connection is an ``OutboundSession``: say ``connect``, read the reply
(the channel's CHANNEL_DATA as a header-only ``command/reply``, Content-Type near
the end, capture 15) with the sans-I/O codec, give the session to
``on_session``, then keep reading until FreeSWITCH ends it with the disconnect
notice it sends when the channel hangs up (capture 16), or closes the socket.

What the session says to FreeSWITCH, and why:

* no ``myevents``/``event``: the worker's inbound connection already receives
  every channel's events; subscribing here as well would deliver each twice;
* no ``linger``: without it FreeSWITCH sends the disconnect notice as soon as the
  channel hangs up, which is exactly when the session has nothing left to do;
* no ``resume``, and the socket stays open for the whole call: closing it ends
  the park, and FreeSWITCH goes on with the dialplan after ``socket`` (the
  shipped dialplan hangs up with NORMAL_TEMPORARY_FAILURE). That is how a call is
  refused, and why stopping the server ends the calls it holds.

Only peers the allow-list admits get that far: any other connection is closed at
once, before a byte is said or read (anyone reaching the port could otherwise pose
as FreeSWITCH and have calls filed under any tenant).

A port that cannot be bound raises ``ConfigError``; nothing here exits the process.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import gevent
import gevent.event
import gevent.lock
from gevent.event import AsyncResult
from gevent.server import StreamServer

from callworker.errors import (
    CallworkerError,
    ConfigError,
    FreeSwitchError,
    FreeSwitchTimeout,
    FreeSwitchUnavailable,
    ProtocolError,
    UnsafeValue,
)
from callworker.esl.builders import check_uuid
from callworker.esl.codec import Event, Frame, FrameParser, encode_command

__all__ = ["OutboundServer", "OutboundSession"]

log = logging.getLogger("callworker.esl.outbound")

_RECV_SIZE = 65536
_REPLIES = ("command/reply", "api/response")


class OutboundSession:
    """One call handed over by the dialplan: its socket and its channel data.

    ``channel`` is the CHANNEL_DATA of the ``connect`` reply, read like an event
    (``channel["Unique-ID"]``, ``channel.get("variable_callworker_tenant")``).
    ``ended`` is set when FreeSWITCH ends the session or it is closed here.
    """

    def __init__(self, sock: Any, peer: Any, *, command_timeout: float = 5.0) -> None:
        self.sock = sock
        self.peer = peer
        self.command_timeout = command_timeout
        self.channel = Event({}, None, encoded=False)
        self.uuid = ""
        self.lingering = False
        self.ended = gevent.event.Event()
        self.end_reason: str | None = None
        self._parser = FrameParser()
        self._waiters: deque[AsyncResult] = deque()
        self._send_lock = gevent.lock.Semaphore()
        self._reader: gevent.Greenlet | None = None

    def __repr__(self) -> str:
        return f"OutboundSession({self.uuid or '?'} from {self.peer!r})"

    @property
    def socket_mode(self) -> str:
        return self.channel.get("Socket-Mode") or ""

    @property
    def control(self) -> str:
        return self.channel.get("Control") or ""

    # ------------------------------------------------------------------ life

    def handshake(self, timeout: float) -> Event:
        """Send ``connect`` and read the channel data FreeSWITCH answers with."""
        timer = gevent.Timeout(timeout)
        timer.start()
        try:
            self.sock.sendall(encode_command("connect"))
            frame = self._first_frame()
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            raise FreeSwitchTimeout(f"no reply to connect from {self.peer!r} within {timeout:g}s") from None
        finally:
            timer.close()
        if frame.content_type != "command/reply" or not frame.reply_text().startswith("+OK"):
            raise ProtocolError(f"unexpected reply to connect: {frame.content_type!r}")
        try:
            self.uuid = check_uuid(frame.headers.get("Unique-ID", ""))
        except UnsafeValue:
            raise ProtocolError("the connect reply names no channel (Unique-ID)") from None
        self.channel = Event(dict(frame.headers), None, encoded=False)
        return self.channel

    def _first_frame(self) -> Frame:
        while (frame := self._parser.next_frame()) is None:
            data = self.sock.recv(_RECV_SIZE)
            if not data:
                raise FreeSwitchUnavailable(f"{self.peer!r} closed the socket before connect")
            self._parser.feed(data)
        return frame

    def start(self) -> None:
        """Read in the background until FreeSWITCH ends the session."""
        self._reader = gevent.spawn(self._read)

    def close(self, reason: str = "closed") -> None:
        """Close once: fail waiting commands, close the socket, set ``ended``."""
        if self.ended.is_set():
            return
        self.end_reason = reason
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            waiter.set_exception(FreeSwitchUnavailable(f"outbound socket {self.uuid} ended: {reason}"))
        try:
            self.sock.close()
        finally:
            self.ended.set()
            reader = self._reader
            if reader is not None and reader is not gevent.getcurrent():
                reader.kill(block=False)

    # ------------------------------------------------------------------ commands

    def command(self, line: str, headers: Sequence[tuple[str, str]] = (), body: bytes = b"",
                *, timeout: float | None = None) -> Frame:
        """Send one command on this socket (``getvar x``, ``sendmsg``...) and return its reply."""
        payload = encode_command(line, headers, body)
        wait = self.command_timeout if timeout is None else timeout
        waiter = AsyncResult()
        with self._send_lock:
            if self.ended.is_set():
                raise FreeSwitchUnavailable(f"outbound socket {self.uuid} has ended")
            self._waiters.append(waiter)  # under the lock: wire order is reply order
            try:
                self.sock.sendall(payload)
            except OSError as exc:
                self.close(f"write failed: {exc}")
        try:
            return waiter.get(timeout=wait)  # type: ignore[no-any-return]
        except gevent.Timeout:
            # A late reply would be taken for the next command's: end the session.
            self.close(f"no reply within {wait:g}s")
            raise FreeSwitchTimeout(f"no reply on outbound socket {self.uuid} within {wait:g}s") from None

    # ------------------------------------------------------------------ reading

    def _read(self) -> None:
        try:
            while not self.ended.is_set():
                for frame in self._parser:
                    self._dispatch(frame)
                    if self.ended.is_set():
                        return
                data = self.sock.recv(_RECV_SIZE)
                if not data:
                    self.close("closed by FreeSWITCH")
                    return
                self._parser.feed(data)
        except OSError as exc:
            self.close(f"read failed: {exc}")
        except ProtocolError as exc:
            log.warning("unreadable outbound socket %s: %s", self.uuid, exc)
            self.close(f"protocol error: {exc}")

    def _dispatch(self, frame: Frame) -> None:
        ctype = frame.content_type
        if ctype in _REPLIES:
            if self._waiters:
                self._waiters.popleft().set(frame)
            else:
                log.debug("reply nobody waits for on outbound socket %s", self.uuid)
        elif ctype == "text/disconnect-notice":
            if frame.headers.get("Content-Disposition") == "linger":
                self.lingering = True  # the channel hung up; FreeSWITCH keeps the socket
            else:
                self.close("disconnect notice")
        else:
            log.debug("ignoring %r on outbound socket %s", ctype, self.uuid)


class OutboundServer:
    """Accepts the dialplan's ``socket`` connections and hands each call to ``on_session``.

    ``allow(peer_host)`` says whether a peer may hand calls over at all (see
    ``esl.peers``); one it refuses is closed at once. ``on_session(session)`` runs
    in the session's greenlet once the channel data is read; returning ``False``
    (or raising) refuses the call: the socket is closed and FreeSWITCH goes on with
    the dialplan. ``on_session_end(session)`` runs when a taken session ends,
    except while the server is stopping.
    """

    def __init__(
        self, host: str, port: int, *, allow: Callable[[str], bool],
        on_session: Callable[[OutboundSession], bool | None],
        on_session_end: Callable[[OutboundSession], None] | None = None,
        connect_timeout: float = 5.0, command_timeout: float = 5.0, backlog: int = 1024,
    ) -> None:
        self._bind = (host, port)
        self._allow = allow
        self._on_session = on_session
        self._on_session_end = on_session_end
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._backlog = backlog
        self._server: StreamServer | None = None
        self._sessions: set[OutboundSession] = set()
        self._stopping = False
        self.accepted = self.taken = self.refused = 0
        self.strangers = 0  # connections closed at once: the peer is not allowed

    def start(self) -> None:
        """Bind and accept in the background; ``ConfigError`` if the address cannot be used."""
        if self._server is not None:
            return
        server = StreamServer(self._bind, self._handle, backlog=self._backlog)
        try:
            server.start()
        except OSError as exc:
            host, port = self._bind
            raise ConfigError(
                f"cannot listen on {host}:{port} for the dialplan socket app "
                f"(CALLWORKER_SOCKET_HOST/CALLWORKER_SOCKET_PORT): {exc}"
            ) from exc
        self._stopping = False
        self._server = server
        log.info("outbound socket server listening on %s:%s", *self.address)

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None or self._server.socket is None:
            raise RuntimeError("the outbound socket server is not started")
        host, port = self._server.socket.getsockname()[:2]
        return host, port

    @property
    def sessions(self) -> list[OutboundSession]:
        """Sessions open now (handed over, or still saying ``connect``)."""
        return list(self._sessions)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting and close every session (FreeSWITCH then ends those calls)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping = True
        server.close()
        for session in list(self._sessions):
            session.close("server stopping")
        server.stop(timeout=timeout)

    # ------------------------------------------------------------------ sessions

    def _handle(self, sock: socket.socket, address: Any) -> None:
        peer = str(address[0]) if isinstance(address, tuple) else str(address)
        if not self._allowed(peer):
            self.strangers += 1
            log.warning("dialplan socket: closed a connection from %s, which may not hand calls over "
                        "(CALLWORKER_SOCKET_ALLOW)", peer)
            sock.close()
            return
        self.accepted += 1
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        session = OutboundSession(sock, address, command_timeout=self._command_timeout)
        self._sessions.add(session)
        try:
            try:
                session.handshake(self._connect_timeout)
            except (CallworkerError, OSError) as exc:
                log.warning("outbound socket from %s failed before hand-over: %s", address, exc)
                return
            session.start()
            if not self._hand_over(session):
                return
            session.ended.wait()
            if self._on_session_end is not None and not self._stopping:
                try:
                    self._on_session_end(session)
                except Exception:
                    log.exception("on_session_end failed for %s", session.uuid)
        finally:
            session.close("done")
            self._sessions.discard(session)

    def _allowed(self, peer: str) -> bool:
        try:
            return self._allow(peer)
        except Exception:
            log.exception("could not tell whether %s may hand calls over; refused", peer)
            return False

    def _hand_over(self, session: OutboundSession) -> bool:
        try:
            taken = self._on_session(session) is not False
        except FreeSwitchError as exc:
            log.warning("could not take call %s: %s", session.uuid, exc)
            taken = False
        except Exception:
            log.exception("could not take call %s", session.uuid)
            taken = False
        if taken:
            self.taken += 1
        else:
            self.refused += 1
            session.close("refused")
        return taken
