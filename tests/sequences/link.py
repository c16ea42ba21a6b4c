"""A bare inbound event-socket connection for driving a switch and watching its events.

Built on the worker's codec only, so it speaks to the real FreeSWITCH and to the
simulator alike. Replies are matched in order; every event is kept, in arrival order.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import gevent
import gevent.event
from gevent.queue import Queue

from callworker.esl.codec import Event, Frame, FrameParser, encode_command, parse_event

__all__ = ["EslLink", "LinkClosed"]

_CLOSED = object()


class LinkClosed(ConnectionError):
    """The switch closed the connection."""


class EslLink:
    def __init__(self, host: str, port: int, password: str, *, events: str | None = None,
                 timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(None)
        self.events: list[Event] = []
        self._parser = FrameParser()
        self._replies: Queue[object] = Queue()
        self._arrived = gevent.event.Event()
        self._reader = gevent.spawn(self._read)
        if self._reply(timeout).content_type != "auth/request":
            raise LinkClosed("no auth/request")
        if self.command(f"auth {password}", timeout=timeout).reply_text() != "+OK accepted":
            raise LinkClosed("authentication refused")
        if events:
            self.command(f"event plain {events}", timeout=timeout)

    def _read(self) -> None:
        try:
            while data := self.sock.recv(65536):
                self._parser.feed(data)
                for frame in self._parser:
                    if frame.content_type.startswith("text/event-"):
                        self.events.append(parse_event(frame))
                        self._arrived.set()
                    else:
                        self._replies.put(frame)
        except OSError:
            pass
        self._replies.put(_CLOSED)

    def _reply(self, timeout: float) -> Frame:
        item = self._replies.get(timeout=timeout)
        if not isinstance(item, Frame):
            raise LinkClosed("connection closed")
        return item

    def command(self, line: str, headers: tuple[tuple[str, str], ...] = (),
                timeout: float = 10.0) -> Frame:
        self.sock.sendall(encode_command(line, headers))
        return self._reply(timeout)

    def api(self, line: str, timeout: float = 10.0) -> str:
        return self.command(f"api {line}", timeout=timeout).body.decode("utf-8", "replace")

    def until(self, check: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``check()`` holds, looking again as each event arrives; False at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self._arrived.clear()
            if check():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._arrived.wait(remaining)

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            self._reader.kill(block=False)
