"""FreeSWITCH's end of an outbound socket: the dialplan ``socket`` app talking to a server.

Strategy: an outbound socket is an event-socket session that starts authenticated
and is bound to one channel, so it extends the inbound ``Session`` (same reader,
writer, subscription and API handling) with what SPEC section 3 adds: no
``auth/request``; the first command must come within 25 s; ``connect`` is
answered with the channel's data as a header-only ``command/reply`` (capture 15);
``myevents``, ``linger``, ``getvar``, ``resume``, ``divert_events`` and a
session-bound ``sendmsg``; without ``full`` only the session commands work; and
the end is a disconnect notice naming the channel (capture 16), or a linger
notice when the channel hangs up while lingering.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import gevent
import gevent.event

from callworker.errors import ProtocolError
from callworker.esl.codec import Command, disconnect_notice
from callworker.simulator.api import ApiRunner
from callworker.simulator.apps import apply_message
from callworker.simulator.channel import Channel
from callworker.simulator.events import Block
from callworker.simulator.headers import channel_blocks, profile_pairs
from callworker.simulator.session import Session
from callworker.simulator.switch import Switch

__all__ = ["FIRST_COMMAND_TIMEOUT", "OutboundSocket"]

FIRST_COMMAND_TIMEOUT = 25.0  # read_packet(listener, &ievent, 25) in mod_event_socket
_CONNECT_ORIGIN = ("mod_event_socket.c", "parse_command", 1875)
# What works on a socket opened without "full" (SPEC section 3).
_SESSION_COMMANDS = frozenset(
    {"connect", "myevents", "getvar", "resume", "filter", "divert_events", "sendmsg"})


class OutboundSocket(Session):
    """One outbound socket connection, bound to the channel ``ch``."""

    def __init__(self, switch: Switch, api: ApiRunner, sock: socket.socket, ch: Channel, *,
                 full: bool, record: Callable[[str], None],
                 first_command_timeout: float = FIRST_COMMAND_TIMEOUT) -> None:
        super().__init__(switch, api, sock, password="", acl_allow=True, record=record)
        self.ch = ch
        self.full = full
        self.first_command_timeout = first_command_timeout
        self.authed = True  # no auth/request on an outbound socket
        self.connected = gevent.event.Event()
        self.closed = gevent.event.Event()
        self.linger: int | None = None  # seconds; -1 lingers until the client leaves
        self.resume = False
        self._commands = self._handlers()  # again, now that ``full`` is known
        self.sw.listeners.append(self)  # it receives nothing until it subscribes

    # --------------------------------------------------------------- life cycle

    def run(self) -> None:
        self._reader = gevent.getcurrent()  # type: ignore[assignment]
        self._writer = gevent.spawn(self._write_loop)
        try:
            if self._first_command():
                self._read_loop()
        except (OSError, ProtocolError):
            pass
        finally:
            self._finish()

    def _first_command(self) -> bool:
        """Wait for the first command as FreeSWITCH does; False when the socket is done."""
        timer = gevent.Timeout(self.first_command_timeout)
        timer.start()
        try:
            command = None
            while command is None:
                data = self.sock.recv(65536)
                if not data:
                    return False
                self._parser.feed(data)
                command = self._parser.next_command()
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            self._bye(reply=None)  # FreeSWITCH logs "Socket Error!" and hangs up the socket
            return False
        finally:
            timer.close()
        self._handle(command)
        while not self.closing and (command := self._parser.next_command()) is not None:
            self._handle(command)
        return not self.closing

    def _finish(self) -> None:
        super()._finish()
        self.closed.set()

    def _notice(self) -> bytes:
        return disconnect_notice([("Controlled-Session-UUID", self.ch.uuid),
                                  ("Content-Disposition", "disconnect")])

    def channel_down(self) -> None:
        """The channel hung up: linger, or say goodbye and close (SPEC section 3)."""
        if self.closing:
            return
        if self.linger is None:
            self._close_with_notice()
            return
        self._send(
            f"Content-Type: text/disconnect-notice\nControlled-Session-UUID: {self.ch.uuid}\n"
            f"Content-Disposition: linger\nChannel-Name: {self.ch.name}\n"
            f"Linger-Time: {self.linger}\nContent-Length: 0\n\n".encode())
        if self.linger >= 0:
            gevent.spawn_later(self.linger, self._close_with_notice)

    def _close_with_notice(self) -> None:
        if self.closing:
            return
        self._bye(reply=None)
        reader = self._reader
        if reader is not None and reader is not gevent.getcurrent():
            reader.kill(block=False)  # it is waiting in recv; _finish flushes the notice

    # ------------------------------------------------------------------ commands

    def _handlers(self) -> dict[str, Callable[[str, Command], None]]:
        handlers = super()._handlers()
        handlers.update({
            "connect": self._connect, "myevents": self._myevents, "getvar": self._getvar,
            "resume": self._resume, "linger": self._linger, "nolinger": self._nolinger,
            "divert_events": self._divert_events, "sendmsg": self._session_sendmsg,
        })
        if not getattr(self, "full", True):  # the base class asks before ``full`` is set
            handlers = {verb: fn for verb, fn in handlers.items() if verb in _SESSION_COMMANDS}
        return handlers

    def _connect(self, _rest: str, _command: Command) -> None:
        self._send(self.channel_data())
        self.connected.set()

    def channel_data(self) -> bytes:
        """The reply to ``connect``: CHANNEL_DATA, header-only, Content-Type near the end."""
        ch = self.ch
        blocks = [
            self.sw.factory.head("CHANNEL_DATA", self.sw.now_us(), _CONNECT_ORIGIN),
            Block(profile_pairs(ch, "Channel")),
            *channel_blocks(ch, variables=True),
            Block([("Content-Type", "command/reply"), ("Reply-Text", "+OK\n"),
                   ("Socket-Mode", "async"), ("Control", "full" if self.full else "single-channel")]),
        ]
        return b"".join(block.plain for block in blocks) + b"\n"

    def _myevents(self, rest: str, _command: Command) -> None:
        if self.sub.session_uuid is not None:
            self._reply("-ERR aready enabled.")  # sic
            return
        for fmt in ("xml", "json"):
            if fmt in rest.lower():
                self.sub.format = fmt
        self.sub.my_events(self.ch.uuid)
        self._reply("+OK Events Enabled")

    def _getvar(self, rest: str, _command: Command) -> None:
        value = self.ch.variables.get(rest.strip()) if rest.strip() else None
        # An empty reply text becomes "-ERR command not found" (SPEC section 3).
        self._reply(value if value else "-ERR command not found")

    def _resume(self, _rest: str, _command: Command) -> None:
        self.resume = True
        self.ch.variables.set("socket_resume", "true")
        self._reply("+OK")

    def _linger(self, rest: str, _command: Command) -> None:
        word = rest.strip()
        if word and word.lstrip("-").isdigit():
            self.linger = int(word)
            self._reply(f"+OK will linger {self.linger} seconds")
        else:
            self.linger = -1
            self._reply("+OK will linger")

    def _nolinger(self, _rest: str, _command: Command) -> None:
        self.linger = None
        self._reply("+OK will not linger")

    def _divert_events(self, rest: str, _command: Command) -> None:
        word = rest.strip().lower()
        if not word:
            self._reply("-ERR missing value.")
        elif word == "on":
            self._reply("+OK events diverted")
        else:
            self._reply("+OK events not diverted")

    def _session_sendmsg(self, rest: str, command: Command) -> None:
        uuid = rest.split()[0] if rest.split() else ""
        ch = self.ch if uuid in ("", self.ch.uuid) else self.sw.find(uuid)
        if ch is None:
            self._reply(f"-ERR invalid session id [{uuid}]")
            return
        self._reply("+OK")  # async socket: queued, +OK at once
        apply_message(self.sw, ch, command.headers, command.body)
