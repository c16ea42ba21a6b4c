"""Only FreeSWITCH may hand calls over on the dialplan socket; anyone else is closed at once.

Whoever reaches the outbound-socket port could otherwise pose as FreeSWITCH and have
calls, events and CDRs filed under any tenant. Two real TCP peers talk to a running
worker: a stranger bound to 127.0.0.2, and FreeSWITCH's own address (127.0.0.1, the
address of CALLWORKER_ESL_HOST, which is what the worker allows by default). Both
offer the same kind of channel; only FreeSWITCH's is filed.
"""

from __future__ import annotations

import logging
import socket
import uuid

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from callworker.store import get_call

pytestmark = pytest.mark.integration

WAIT = 5.0


def _channel(call_id: str, tenant: str) -> bytes:
    """The `connect` reply FreeSWITCH sends: the channel's data, header only."""
    headers = [
        ("Event-Name", "CHANNEL_DATA"), ("Unique-ID", call_id), ("Answer-State", "ringing"),
        ("Caller-Caller-ID-Number", "+15550001111"), ("Caller-Destination-Number", "+15552001234"),
        ("variable_callworker_tenant", tenant), ("Content-Type", "command/reply"),
        ("Reply-Text", "%2BOK%0A"), ("Socket-Mode", "async"), ("Control", "full"),
    ]
    return "".join(f"{name}: {value}\n" for name, value in headers).encode() + b"\n"


def _peer(worker: Worker, source: str) -> socket.socket:
    return socket.create_connection(worker.socket_server.address, timeout=WAIT, source_address=(source, 0))


def _received_before_close(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(100):
            data += chunk
    except ConnectionResetError:
        pass  # closed with what we sent unread
    return data


def test_a_stranger_is_closed_at_once_and_nothing_is_filed(
    worker: Worker, probe: Probe, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callworker")
    assert worker.settings.socket_host == "127.0.0.1" and worker.settings.socket_allow == ()
    posed, real = str(uuid.uuid4()), str(uuid.uuid4())

    stranger = _peer(worker, "127.0.0.2")
    stranger.sendall(_channel(posed, tenant))  # unasked: the server never even says connect
    assert _received_before_close(stranger) == b""
    stranger.close()
    assert (worker.socket_server.strangers, worker.socket_server.accepted) == (1, 0)
    lines = [r.getMessage() for r in caplog.records if "127.0.0.2" in r.getMessage()]
    assert len(lines) == 1 and "CALLWORKER_SOCKET_ALLOW" in lines[0]

    switch = _peer(worker, "127.0.0.1")
    assert switch.recv(100) == b"connect\n\n"
    switch.sendall(_channel(real, tenant))
    initiated = probe.event(lambda e: e.get("call_id") == real and e["type"] == "call.initiated")
    assert (initiated["tenant"], initiated["data"]["direction"]) == (tenant, "inbound")
    assert get_call(worker.engine, tenant, real) is not None

    # The real call is filed and published; the posed one, offered first, is nowhere.
    assert get_call(worker.engine, tenant, posed) is None
    assert not [e for e in list(probe.events.queue) if e.get("call_id") == posed]
    assert worker.socket_server.strangers == 1
    switch.close()
