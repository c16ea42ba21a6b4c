"""A server-sent events client for the tests: reads a stream in its own greenlet, stamps each arrival."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
from gevent.queue import Empty, Queue

__all__ = ["Message", "SseClient", "fetch"]


@dataclass(frozen=True)
class Message:
    event: str
    id: str | None
    data: Any
    arrived: float  # time.time() when its blank line was read


def fetch(port: int, path: str) -> tuple[int, bytes]:
    """One plain GET: status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class SseClient:
    """``GET path`` on 127.0.0.1:port; the messages land in ``messages`` as they arrive."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None) -> None:
        self.messages: Queue[Message] = Queue()
        self.ended = gevent.event.Event()  # set when the server ends the stream
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self._connection.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
        self.response = self._connection.getresponse()
        self.status = self.response.status
        self._greenlet = gevent.spawn(self._read) if self.status == 200 else None

    def _read(self) -> None:
        try:
            self._read_messages()
        finally:
            self.ended.set()

    def _read_messages(self) -> None:
        fields: dict[str, str] = {}
        data: list[str] = []
        while True:
            raw = self.response.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\n")
            if line == "":
                if data:
                    text = "\n".join(data)
                    self.messages.put(Message(fields.get("event", "message"), fields.get("id"), json.loads(text),
                                              time.time()))
                fields, data = {}, []
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                else:
                    fields[name] = value

    def next(self, timeout: float = 10.0) -> Message:
        try:
            return self.messages.get(timeout=timeout)
        except Empty:
            raise TimeoutError("no message in time") from None

    def until(self, predicate: Any, timeout: float = 10.0) -> list[Message]:
        """Every message up to and including the first one matching ``predicate``."""
        deadline = time.monotonic() + timeout
        seen: list[Message] = []
        while True:
            message = self.next(max(0.01, deadline - time.monotonic()))
            seen.append(message)
            if predicate(message):
                return seen

    def drain(self, quiet: float) -> list[Message]:
        """What arrives until nothing has for ``quiet`` seconds."""
        seen: list[Message] = []
        while True:
            try:
                seen.append(self.messages.get(timeout=quiet))
            except Empty:
                return seen

    def close(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=2)
        self._connection.close()
