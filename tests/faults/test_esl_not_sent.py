"""The ESL connection tells a command that never reached FreeSWITCH from one that may have.

A command refused before a byte of it was written (no connection, or the write
itself failed) raises FreeSwitchNotSent, and may be sent again once FreeSWITCH is
back; a command written and then cut off raises plain FreeSwitchUnavailable:
FreeSWITCH may have run it, so an originate must never be sent again.
"""

from __future__ import annotations

from collections.abc import Iterator

import gevent
import pytest

from callworker.errors import FreeSwitchNotSent, FreeSwitchUnavailable
from callworker.esl.buffer import EventBuffer
from callworker.esl.connection import EslConnection, EslSession
from callworker.simulator import Simulator


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator("127.0.0.1", 0, "ClueCon", ring_delay=0.05, answer_delay=0.1)
    sim.start()
    yield sim
    sim.stop()


def connection(simulator: Simulator) -> EslConnection:
    host, port = simulator.address
    return EslConnection(host, port, "ClueCon", events=("CHANNEL_CREATE",), event_queue=EventBuffer(100, 1 << 20),
                         send_timeout=10.0, connect_timeout=2.0)


def test_without_a_connection_nothing_is_sent(simulator: Simulator) -> None:
    esl = connection(simulator)
    with pytest.raises(FreeSwitchNotSent):
        esl.bgapi("status", job_uuid="9c1f6a52-0d0f-4d46-a5a7-3f0b5a0b6a11")
    assert not any("status" in line for line in simulator.received_commands())


def test_a_command_cut_off_after_it_was_written_may_have_run(simulator: Simulator) -> None:
    esl = connection(simulator)
    esl.start()
    try:
        assert esl.wait_connected(5)
        # An api originate answers only when the call is answered or fails: time to cut it off.
        waiting = gevent.spawn(esl.api, "originate sofia/gateway/default/+15551230408 &park()")
        assert gevent.wait([waiting], timeout=0.3) == [] and not waiting.ready()
        simulator.drop_clients()
        with pytest.raises(FreeSwitchUnavailable) as raised:
            waiting.get(timeout=5)
        assert not isinstance(raised.value, FreeSwitchNotSent)
        assert any("+15551230408" in line for line in simulator.received_commands())
    finally:
        esl.stop()


class BrokenSocket:
    """A socket whose writes fail (the peer is gone)."""

    def sendall(self, data: bytes) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def close(self) -> None:
        pass


def test_a_failed_write_sends_nothing_and_closes_the_session() -> None:
    session = EslSession("127.0.0.1", 1, "ClueCon", connect_timeout=1.0, on_event=lambda event, size: None)
    session.sock = BrokenSocket()
    session.connected = True
    with pytest.raises(FreeSwitchNotSent):
        session.send("api status", 1.0)
    assert session.lost.is_set() and not session.connected
    with pytest.raises(FreeSwitchNotSent):
        session.send("api status", 1.0)
