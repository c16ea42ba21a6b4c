"""One inbound event-socket client: authentication, commands, event delivery.

Strategy: the connection's own greenlet reads and runs commands one after
another, as mod_event_socket's listener thread does, so an ``api`` blocks that
socket until its output is ready. Everything sent goes through one outbox drained
by a writer greenlet that coalesces frames into large ``sendall`` calls. While an
``api`` runs, events for this client are held back and released right after the
``api/response`` (SPEC section 2). Delivery never blocks the greenlet that fires
an event; a client that stops reading is dropped once its backlog grows past a
bound, as FreeSWITCH drops a listener whose queue overflows.
"""

from __future__ import annotations

import socket
import uuid as uuidlib
from collections import deque
from collections.abc import Callable

import gevent
import gevent.event
from gevent.event import AsyncResult

from callworker.errors import ProtocolError
from callworker.esl.codec import (
    Command,
    CommandParser,
    api_response,
    auth_request,
    command_reply,
    disconnect_notice,
    rude_rejection,
)
from callworker.simulator.api import ApiRunner
from callworker.simulator.apps import apply_message
from callworker.simulator.events import Block, SimEvent
from callworker.simulator.subscription import Subscription
from callworker.simulator.switch import Switch

__all__ = ["Session"]

_MAX_BACKLOG = 256 << 20  # bytes queued for a client before it is dropped
_CHUNK = 1 << 20
_LOG_LEVELS = {"console": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5,
               "info": 6, "debug": 7}


class Session:
    """Serves one client socket until it leaves, is dropped, or the simulator stops."""

    def __init__(self, switch: Switch, api: ApiRunner, sock: socket.socket, *, password: str,
                 acl_allow: bool, record: Callable[[str], None]) -> None:
        self.sw = switch
        self.api = api
        self.sock = sock
        self.password = password
        self.acl_allow = acl_allow
        self.record = record
        self.sub = Subscription()
        self.authed = False
        self.closing = False
        self._aborted = False
        self._parser = CommandParser()
        self._out: deque[bytes] = deque()
        self._backlog = 0
        self._wake = gevent.event.Event()
        self._holding = 0
        self._held: list[SimEvent] = []
        self._logging = False
        self._reader: gevent.Greenlet | None = None
        self._writer: gevent.Greenlet | None = None
        self._commands = self._handlers()

    # --------------------------------------------------------------- life cycle

    def run(self) -> None:
        """The connection greenlet: read and run commands until the end."""
        self._reader = gevent.getcurrent()  # type: ignore[assignment]
        self._writer = gevent.spawn(self._write_loop)
        try:
            if not self.acl_allow:
                self._send(rude_rejection())
                self._bye(reply=None)
                return
            self._send(auth_request())
            self._read_loop()
        except (OSError, ProtocolError):
            pass
        finally:
            self._finish()

    def _read_loop(self) -> None:
        while not self.closing:
            data = self.sock.recv(65536)
            if not data:
                return
            self._parser.feed(data)
            while not self.closing:
                command = self._parser.next_command()
                if command is None:
                    break
                self._handle(command)

    def _finish(self) -> None:
        self.closing = True
        if self in self.sw.listeners:
            self.sw.listeners.remove(self)
        writer = self._writer
        if writer is not None:
            if not self._aborted:
                self._wake.set()
                writer.join(timeout=5)
            writer.kill(block=False)
        self._close_socket()

    def abort(self) -> None:
        """Close the connection at once, dropping anything not yet sent."""
        self._aborted = self.closing = True
        self._out.clear()
        self._close_socket()
        reader = self._reader
        if reader is not None and reader is not gevent.getcurrent():
            reader.kill(block=False)

    def _close_socket(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    # ------------------------------------------------------------------ output

    def _send(self, data: bytes) -> None:
        if self._aborted:
            return
        self._out.append(data)
        self._backlog += len(data)
        if self._backlog > _MAX_BACKLOG:
            self.abort()
            return
        self._wake.set()

    def _write_loop(self) -> None:
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                while self._out:
                    chunk: list[bytes] = []
                    size = 0
                    while self._out and size < _CHUNK:
                        data = self._out.popleft()
                        chunk.append(data)
                        size += len(data)
                    self._backlog -= size
                    self.sock.sendall(b"".join(chunk))
                if self.closing:
                    return
        except OSError:
            self.abort()

    def _reply(self, text: str, extra: list[tuple[str, str]] | None = None) -> None:
        self._send(command_reply(text, extra or ()))

    def _bye(self, reply: str | None = "+OK bye") -> None:
        if reply:
            self._reply(reply)
        self._send(self._notice())
        self.closing = True

    def _notice(self) -> bytes:
        """The disconnect notice this kind of socket ends with."""
        return disconnect_notice()

    # ------------------------------------------------------------------ events

    def wants(self, name: str, subclass: str | None, variable: Callable[[str], str | None] | None = None) -> bool:
        return not self.closing and self.sub.wants(name, subclass, variable)

    def deliver(self, event: SimEvent) -> None:
        if not self.sub.passes(event):
            return
        if self._holding:
            self._held.append(event)
            return
        self.sw.stats.events_sent += 1
        self._send(event.frame(self.sub.format))

    def _release(self) -> None:
        held, self._held = self._held, []
        for event in held:
            self.sw.stats.events_sent += 1
            self._send(event.frame(self.sub.format))

    # ---------------------------------------------------------------- commands

    def _handle(self, command: Command) -> None:
        line = command.line
        self.record(line)
        self.sw.stats.commands += 1
        verb, _, rest = line.partition(" ")
        verb = verb.lower()
        rest = rest.strip()
        if verb in ("exit", "..."):
            self._bye()
        elif not self.authed:
            self._unauthenticated(verb, rest)
        else:
            handler = self._commands.get(verb)
            if handler is None:
                self._reply("-ERR command not found")
            else:
                handler(rest, command)

    def _unauthenticated(self, verb: str, rest: str) -> None:
        if verb != "auth":
            self._reply("-ERR command not found")
        elif rest == self.password:
            self.authed = True
            self.sw.listeners.append(self)
            self._reply("+OK accepted")
        else:
            self._reply("-ERR invalid")
            self._bye(reply=None)

    def _handlers(self) -> dict[str, Callable[[str, Command], None]]:
        return {
            "api": self._api, "bgapi": self._bgapi, "event": self._event,
            "nixevent": self._nixevent, "noevents": self._noevents, "filter": self._filter,
            "log": self._log, "nolog": self._nolog, "sendevent": self._sendevent,
            "sendmsg": self._sendmsg,
            "linger": lambda r, c: self._reply("-ERR not controlling a session"),
            "nolinger": lambda r, c: self._reply("-ERR not controlling a session"),
            "divert_events": lambda r, c: self._reply("-ERR not controlling a session."),
        }

    def _api(self, rest: str, _command: Command) -> None:
        name, _, args = rest.partition(" ")
        result: AsyncResult = AsyncResult()
        self._holding += 1
        try:
            self.api.run(name, args.strip(), result.set)
            output = result.get()
        finally:
            self._holding -= 1
        self._send(api_response(output or "-ERR no reply\n"))
        if not self._holding:
            self._release()

    def _bgapi(self, rest: str, command: Command) -> None:
        name, _, args = rest.partition(" ")
        job = command.headers.get("Job-UUID") or str(uuidlib.uuid4())
        self._reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)])
        self.api.run(name, args.strip(), self.api.background_job(job, name, args.strip()))

    def _event(self, rest: str, _command: Command) -> None:
        words = rest.split()
        if words and words[0].lower() in ("plain", "json", "xml"):
            self.sub.format = words.pop(0).lower()
        if not words:
            self._reply("-ERR no keywords supplied")
            return
        self.sub.add(words)
        self._reply(f"+OK event listener enabled {self.sub.format}")

    def _nixevent(self, rest: str, _command: Command) -> None:
        self.sub.remove(rest.split())
        self._reply("+OK events nixed")

    def _noevents(self, _rest: str, _command: Command) -> None:
        if not self.sub.active:
            self._reply("-ERR not listening for events")
            return
        self.sub.clear()
        self._reply("+OK no longer listening for events")

    def _filter(self, rest: str, _command: Command) -> None:
        header, _, value = rest.partition(" ")
        value = value.strip()
        if header.lower() == "delete" and value:
            name, _, val = value.partition(" ")
            self.sub.delete_filter(name, val.strip() or None)
            self._reply(f"+OK filter deleted. [{name}][{val.strip()}]")
        elif header and value:
            self.sub.add_filter(header, value)
            self._reply(f"+OK filter added. [{header}]=[{value}]")
        else:
            self._reply("-ERR invalid syntax")

    def _log(self, rest: str, _command: Command) -> None:
        level = rest.strip().lower() or "debug"
        number = int(level) if level.isdigit() else _LOG_LEVELS.get(level)
        if number is None or number > 7:
            self._reply("-ERR invalid log level")
            return
        name = next(k for k, v in _LOG_LEVELS.items() if v == number).upper()
        self._logging = True
        self._reply(f"+OK log level {name} [{number}]")

    def _nolog(self, _rest: str, _command: Command) -> None:
        if not self._logging:
            self._reply("-ERR not loging")
            return
        self._logging = False
        self._reply("+OK no longer logging")

    def _sendevent(self, rest: str, command: Command) -> None:
        name = (rest.split() or ["CUSTOM"])[0].upper()
        pairs = [(k, v) for k, v in command.headers.items() if k != "Content-Length"]
        subclass = command.headers.get("Event-Subclass") if name == "CUSTOM" else None
        pairs = [(k, v) for k, v in pairs if k != "Event-Subclass"]
        body = command.body.decode("utf-8", "replace") or None
        self.sw.fire(name, lambda: [Block(pairs)], body=body, subclass=subclass)
        self._reply(f"+OK {uuidlib.uuid4()}")

    def _sendmsg(self, rest: str, command: Command) -> None:
        uuid = rest.split()[0] if rest.split() else ""
        ch = self.sw.find(uuid)
        if ch is None:
            self._reply(f"-ERR invalid session id [{uuid}]")
            return
        # Queued for the channel: +OK comes at once, the effects after it.
        self._reply("+OK")
        apply_message(self.sw, ch, command.headers, command.body)
