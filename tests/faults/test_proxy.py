"""The fault proxy: forwards both ways, cut() ends every connection and refuses new ones."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from gevent.server import StreamServer

from tests.faults.proxy import Proxy


def _echo(sock: socket.socket, _address: Any) -> None:
    while data := sock.recv(4096):
        sock.sendall(data)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    server = StreamServer(("127.0.0.1", 0), _echo)
    server.start()
    through = Proxy(0, ("127.0.0.1", server.server_port), record=True).start()
    yield through
    through.stop()
    server.stop(timeout=1)


def dial(proxy: Proxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.settimeout(5)
    return sock


def test_bytes_go_both_ways_and_what_clients_sent_is_recorded(proxy: Proxy) -> None:
    with dial(proxy) as sock:
        sock.sendall(b"hello")
        assert sock.recv(5) == b"hello"
    assert bytes(proxy.from_clients) == b"hello"


def test_a_cut_ends_connections_and_refuses_new_ones_until_restored(proxy: Proxy) -> None:
    with dial(proxy) as sock:
        sock.sendall(b"one")
        assert sock.recv(3) == b"one"
        proxy.cut()
        assert sock.recv(10) == b""
    with dial(proxy) as refused:
        assert refused.recv(10) == b""
    proxy.restore()
    with dial(proxy) as again:
        again.sendall(b"two")
        assert again.recv(3) == b"two"
    assert proxy.cuts == 1 and proxy.refused >= 1


def test_waits_end_when_a_client_sends_or_a_connection_is_refused(proxy: Proxy) -> None:
    assert not proxy.next_forward(timeout=0.05)  # nothing sent: the wait times out
    with dial(proxy) as sock:
        sock.sendall(b"other")
        assert sock.recv(5) == b"other"
        sending = gevent.spawn(sock.sendall, b"a batch")
        assert proxy.next_forward(timeout=5, containing=b"batch")
        sending.join()
        assert not proxy.next_forward(timeout=0.05, containing=b"batch")  # only new chunks count
        proxy.cut()
    refusing = gevent.spawn(dial, proxy)
    assert proxy.next_refusal(timeout=5)
    refusing.get(timeout=5).close()
