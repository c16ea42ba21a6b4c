"""A TCP proxy the fault tests control: put it between the worker and a server, then cut it.

``cut()`` closes every connection through the proxy at once (both sides see the
TCP stream end, as when a network link or the server goes away) and, until
``restore()``, closes every new connection as soon as it is accepted, so the
worker's reconnect attempts fail the way they fail against a server that is down.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import gevent
import gevent.event
from gevent.server import StreamServer

__all__ = ["Proxy"]

_CHUNK = 65536


class Proxy:
    """Forwards ``127.0.0.1:<listen_port>`` to ``target`` until told otherwise."""

    def __init__(self, listen_port: int, target: tuple[str, int], *, record: bool = False) -> None:
        self.target = target
        # With record: every byte clients sent towards the target, even after the
        # target stopped reading (what a client wrote, whether or not it arrived).
        self.record = record
        self.from_clients = bytearray()
        self._server = StreamServer(("127.0.0.1", listen_port), self._accept, backlog=256)
        self._links: set[tuple[socket.socket, socket.socket]] = set()
        self._open = gevent.event.Event()
        self._open.set()
        self.accepted = 0
        self.refused = 0
        self.cuts = 0
        self.forwarded = 0  # chunks clients sent towards the target
        self.watched = 0  # of those, chunks holding the bytes next_forward waits for
        self._watch = b""
        self._changed = gevent.event.Event()  # any of the counts above moved

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def is_cut(self) -> bool:
        return not self._open.is_set()

    @property
    def connections(self) -> int:
        return len(self._links)

    def start(self) -> Proxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self.cut()
        self._server.stop(timeout=1)

    def cut(self) -> None:
        """Close every proxied connection now and refuse new ones until restore()."""
        self._open.clear()
        self.cuts += 1
        for link in list(self._links):
            self._close(link)

    def restore(self) -> None:
        self._open.set()

    def next_forward(self, timeout: float, containing: bytes = b"") -> bool:
        """Wait until a client sends a chunk holding ``containing`` towards the target.

        False on timeout. One waiter at a time.
        """
        self._watch = containing
        return self._wait_past("watched", timeout)

    def next_refusal(self, timeout: float) -> bool:
        """Wait until a connection is refused (while cut); False on timeout."""
        return self._wait_past("refused", timeout)

    def _wait_past(self, count: str, timeout: float) -> bool:
        """Wait until the named count moves past its value now, re-checked as counts move."""
        before = getattr(self, count)
        deadline = time.monotonic() + timeout
        while getattr(self, count) == before:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            if getattr(self, count) == before:
                self._changed.wait(remaining)
        return True

    def _moved(self) -> None:
        self._changed.set()

    # ------------------------------------------------------------------ forwarding

    def _accept(self, client: socket.socket, _address: Any) -> None:
        if not self._open.is_set():
            self.refused += 1
            self._moved()
            _shut(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            self.refused += 1
            self._moved()
            _shut(client)
            return
        upstream.settimeout(None)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = (client, upstream)
        self._links.add(link)
        self.accepted += 1
        back = gevent.spawn(self._pump, upstream, client, link)
        try:
            self._pump(client, upstream, link, self.from_clients if self.record else None, towards_target=True)
        finally:
            back.join(timeout=5)

    def _pump(self, source: socket.socket, sink: socket.socket,
              link: tuple[socket.socket, socket.socket], tape: bytearray | None = None, *,
              towards_target: bool = False) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                if tape is not None:
                    tape += data
                sink.sendall(data)
                if towards_target:
                    self.forwarded += 1
                    if self._watch in data:
                        self.watched += 1
                    self._moved()
        except OSError:
            pass
        self._close(link)

    def _close(self, link: tuple[socket.socket, socket.socket]) -> None:
        if link in self._links:
            self._links.discard(link)
            for sock in link:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
