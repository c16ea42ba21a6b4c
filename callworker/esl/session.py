"""One TCP connection to FreeSWITCH's event socket (``EslSession``), used once and thrown away.

Any failure closes the session and fails every caller still waiting: once one
reply is lost or late, no later reply can be matched to its command any more.
The supervisor that makes a new one after a loss is ``connection.py``'s.

What greenswitch does here: ``EslSession`` subclasses greenswitch 0.0.19's
``InboundESL``, and only its constructor runs: the connection settings (host,
port, password, and ``timeout``, used as the connect timeout), the ``connected``
flag and ``_auth_request_event``, which ``connect`` waits on. Everything else is
overridden or never called, because of greenswitch's measured defects
(../shared/NOTES.md):

* its reader URL-decodes the whole header block before splitting it (fake
  headers), dies on a frame of unknown type while ``connected`` stays true, and
  loops for ever on a body cut by EOF: here ``receive_events`` is
  ``recv(65536)`` into the sans-I/O ``codec.FrameParser``;
* its ``send`` has no timeout (a ``gevent.Timeout`` around it leaves a stale
  waiter, so the next caller gets the wrong reply), never wakes its callers
  when the socket drops, and uses ``sock.send`` (a large command goes out in
  part): here ``request`` is ``sendall`` under a lock, so wire order is reply
  order, with a deadline, and ``close`` fails every waiter;
* its ``connect`` waits for ever for ``auth/request`` and raises a bare
  ``ValueError`` or the raw OS error: here one deadline and typed errors;
* an ``InboundESL`` cannot be reused after a drop: here the supervisor makes a
  new session and subscribes again;
* its dispatcher greenlet with an unbounded queue, its handlers and its
  root-logger logging never run: events go straight to the owner's
  ``EventBuffer``, logs to ``callworker.esl``.

docs/esl.md has the full account.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.socket
from greenswitch.esl import InboundESL

from callworker.errors import (
    FreeSwitchAuthError,
    FreeSwitchError,
    FreeSwitchNotSent,
    FreeSwitchTimeout,
    FreeSwitchUnavailable,
    ProtocolError,
)
from callworker.esl.codec import Event, Frame, FrameParser, encode_command, parse_event

__all__ = ["EslSession", "EslStats"]

log = logging.getLogger("callworker.esl")

_RECV_SIZE = 65536


@dataclass(slots=True)
class EslStats:
    """Counters over the life of an ``EslConnection`` (all its sessions)."""

    connects: int = 0
    disconnects: int = 0
    events_received: int = 0
    timeouts: int = 0
    resyncs: int = 0


class EslSession(InboundESL):  # type: ignore[misc]
    """One authenticated TCP connection, closed for good on its first failure.

    Of greenswitch only the constructor runs (the module docstring says why);
    its reader, its unbounded dispatcher queue and its root-logger logging never run.
    """

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        connect_timeout: float,
        on_event: Callable[[Event, int], Any],
        stats: EslStats | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(host, port, password, timeout=connect_timeout)
        self.where = f"{host}:{port}"
        self.stats = stats if stats is not None else EslStats()
        self.lost = gevent.event.Event()
        self.sock: Any = None
        self._on_event = on_event
        self._on_lost = on_lost
        self._commands_sent: deque[gevent.event.AsyncResult] = deque()
        self._send_lock = gevent.lock.Semaphore()
        self._parser = FrameParser()
        self._reader: gevent.Greenlet | None = None
        self._rejected = self._closed = self._ready = False
        self._dispatch: dict[str, Callable[[Frame], None]] = {
            "command/reply": self._on_reply,
            "api/response": self._on_reply,
            "text/event-plain": self._on_event_frame,
            "text/event-json": self._on_event_frame,
            "auth/request": lambda frame: self._auth_request_event.set(),
            "text/disconnect-notice": self._on_disconnect_notice,
            "text/rude-rejection": self._on_rude_rejection,
            "log/data": lambda frame: None,
        }

    @property
    def ready(self) -> bool:
        """Authenticated, subscribed (``mark_ready``) and not closed."""
        return self._ready and not self._closed

    def mark_ready(self) -> None:
        self._ready = True

    # ------------------------------------------------------------------ connect

    def connect(self) -> None:
        """Open, wait for ``auth/request``, authenticate: all within connect_timeout."""
        timer = gevent.Timeout(self.timeout)
        timer.start()
        try:
            self._open()
            self._auth_request_event.wait()
            if self._rejected:
                raise FreeSwitchAuthError(f"FreeSWITCH at {self.where} rejected the connection")
            if self._closed:
                raise FreeSwitchUnavailable(f"FreeSWITCH at {self.where} hung up before auth")
            self.authenticate()
        except gevent.Timeout as exc:
            self.close("connect timed out")
            if exc is not timer:
                raise
            raise FreeSwitchTimeout(
                f"no ESL greeting or auth reply from {self.where} within {self.timeout:g}s"
            ) from None
        except BaseException:
            self.close("connect failed")
            raise
        finally:
            timer.close()

    def _open(self) -> None:
        try:
            sock = gevent.socket.create_connection((self.host, self.port), timeout=self.timeout)
        except ConnectionRefusedError:
            raise FreeSwitchUnavailable(f"connection to {self.where} refused") from None
        except OSError as exc:
            raise FreeSwitchUnavailable(f"cannot connect to {self.where}: {exc}") from None
        # Small pipelined commands must not wait for the peer's delayed ACK.
        sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
        sock.setsockopt(gevent.socket.SOL_SOCKET, gevent.socket.SO_KEEPALIVE, 1)
        sock.settimeout(None)
        self.sock = sock
        self.connected = True
        self._reader = gevent.spawn(self.receive_events)

    def authenticate(self) -> None:
        try:
            payload = encode_command(f"auth {self.password}")
        except ValueError:
            raise FreeSwitchAuthError("the ESL password contains a line break") from None
        text = self.request(payload, None).reply_text()
        if not text.startswith("+OK"):
            # FreeSWITCH's own words; they never hold the password, but make sure.
            shown = text.replace(self.password, "***") if self.password else text
            raise FreeSwitchAuthError(f"FreeSWITCH at {self.where} refused the password: {shown}")

    # ------------------------------------------------------------------ commands

    def send(self, data: str, timeout: float | None = None) -> Frame:
        """Send one command line; return its reply frame."""
        return self.request(encode_command(data), timeout)

    def request(self, payload: bytes, timeout: float | None) -> Frame:
        """Write an encoded command and wait for the reply matched to it."""
        waiter = gevent.event.AsyncResult()
        sent = False
        timer = gevent.Timeout(timeout)  # None: never fires
        timer.start()
        try:
            with self._send_lock:
                if self._closed or not self.connected:
                    raise FreeSwitchNotSent(f"not connected to {self.where}")
                # Append and write under one lock: the wire order is the waiter order.
                self._commands_sent.append(waiter)
                sent = True
                try:
                    self.sock.sendall(payload)
                except OSError as exc:
                    # The command ends with its blank line, so a write that failed
                    # left FreeSWITCH an incomplete command it never runs.
                    self._commands_sent.remove(waiter)
                    sent = False
                    self.close(f"write failed: {exc}")
                    raise FreeSwitchNotSent(f"could not write to {self.where}: {exc}") from None
            return waiter.get()  # type: ignore[no-any-return]
        except FreeSwitchError:
            raise
        except gevent.Timeout as exc:
            if exc is not timer:
                self._abandon(waiter, sent)
                raise
            self.stats.timeouts += 1
            self.close(f"no reply within {timeout:g}s", FreeSwitchTimeout)
            raise FreeSwitchTimeout(f"no reply from {self.where} within {timeout:g}s") from None
        except BaseException:
            self._abandon(waiter, sent)
            raise
        finally:
            timer.close()

    def _abandon(self, waiter: gevent.event.AsyncResult, sent: bool) -> None:
        # A caller gave up on its reply: that reply would go to the next caller.
        if sent and not waiter.ready():
            self.close("a caller abandoned its reply")

    # ------------------------------------------------------------------ reading

    def receive_events(self) -> None:
        """The reader greenlet: recv, feed the parser, dispatch each frame."""
        recv, parser, dispatch = self.sock.recv, self._parser, self._dispatch
        try:
            while not self._closed:
                data = recv(_RECV_SIZE)
                if not data:
                    cut = f" mid-frame ({parser.buffered} bytes)" if parser.buffered else ""
                    self.close(f"closed by FreeSWITCH{cut}")
                    return
                parser.feed(data)
                resyncs = parser.resyncs
                while not self._closed and (frame := parser.next_frame()) is not None:
                    handler = dispatch.get(frame.content_type)
                    if handler is None:
                        log.debug("ignoring an ESL frame of type %r", frame.content_type)
                    else:
                        handler(frame)
                if parser.resyncs != resyncs:
                    self.stats.resyncs += parser.resyncs - resyncs
                    log.warning("skipped junk in the ESL stream from %s", self.where)
        except OSError as exc:
            self.close(f"read failed: {exc}")
        except ProtocolError as exc:
            log.warning("unreadable ESL stream from %s: %s", self.where, exc)
            self.close(f"protocol error: {exc}")
        except Exception:
            log.exception("ESL reader for %s failed", self.where)
            self.close("reader failed")

    def _on_reply(self, frame: Frame) -> None:
        if not self._commands_sent:
            # Nothing to match it to: every later reply would be off by one.
            log.warning("unexpected %s from %s", frame.content_type, self.where)
            self.close("reply without a pending command")
            return
        self._commands_sent.popleft().set(frame)

    def _on_event_frame(self, frame: Frame) -> None:
        try:
            event = parse_event(frame)
        except ProtocolError as exc:
            log.warning("dropping an unreadable event from %s: %s", self.where, exc)
            return
        self.stats.events_received += 1
        self._on_event(event, len(frame.body))  # never blocks: replies come on this greenlet too

    def _on_disconnect_notice(self, frame: Frame) -> None:
        if frame.headers.get("Content-Disposition") != "linger":
            self.close("disconnect notice from FreeSWITCH")

    def _on_rude_rejection(self, frame: Frame) -> None:
        self._rejected = True
        self.close("rejected by FreeSWITCH (ACL)")

    # ------------------------------------------------------------------ closing

    def close(
        self, reason: str = "closed", error: type[FreeSwitchUnavailable] = FreeSwitchUnavailable
    ) -> None:
        """Close once: fail every waiter, close the socket, stop the reader."""
        if self._closed:
            return
        self._closed = True
        self.connected = False
        log.info("ESL connection to %s closed: %s", self.where, reason)
        waiters, self._commands_sent = self._commands_sent, deque()
        for waiter in waiters:
            waiter.set_exception(error(f"ESL connection to {self.where} lost: {reason}"))
        self._auth_request_event.set()
        if self.sock is not None:
            self.sock.close()
        if self._reader is not None and self._reader is not gevent.getcurrent():
            self._reader.kill(block=False)
        self.lost.set()
        if self._on_lost is not None:
            self._on_lost()

    def stop(self) -> None:
        self.close("stopped")
