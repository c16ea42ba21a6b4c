"""Two workers, each with its own FreeSWITCH (simulator), sharing RabbitMQ and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.bus.topology import node_queue
from callworker.calls.intake import PUBLISHED_AT_HEADER
from callworker.simulator import Simulator
from tests.integration.conftest import make_settings, start_worker

pytestmark = pytest.mark.integration


def test_commands_reach_the_node_that_holds_the_call(
    two_nodes: list[tuple[Worker, Simulator]], probe: Probe, tenant: str
) -> None:
    call_ids = [str(uuid.uuid4()) for _ in range(20)]
    sent = [probe.send(tenant, "originate", destination_number="+15551230001", call_id=c) for c in call_ids]
    for body in sent:
        assert probe.reply_for(body["command_id"])["ok"]
    answered: dict[str, str] = {}
    while len(answered) < len(call_ids):
        event = probe.event(lambda e: e["type"] == "call.answered" and e["call_id"] in call_ids)
        answered[event["call_id"]] = event["node"]
    by_node = Counter(answered.values())
    assert set(by_node) == {worker.settings.node_id for worker, _ in two_nodes}, by_node
    for worker, sim in two_nodes:
        mine = {c for c, node in answered.items() if node == worker.settings.node_id}
        assert mine <= set(sim.live_channels())  # the node's own FreeSWITCH placed them

    # Whichever worker takes a hold or hangup from the shared queue, the owner executes it.
    for call_id in call_ids:
        reply = probe.reply_for(probe.send(tenant, "hold", call_id=call_id)["command_id"])
        assert reply["ok"] and reply["result"]["on_hold"] is True, reply
    # And a media command: the owner's FreeSWITCH is asked, the owner tells its events.
    for call_id in call_ids:
        reply = probe.reply_for(probe.send(tenant, "dtmf", call_id=call_id, digits="5")["command_id"])
        assert reply["ok"], reply
    for worker, sim in two_nodes:
        for call_id in (c for c, node in answered.items() if node == worker.settings.node_id):
            assert sim.sent_dtmf(call_id) == "5"
    for call_id in call_ids:
        reply = probe.reply_for(probe.send(tenant, "hangup", call_id=call_id)["command_id"])
        assert reply["ok"], reply

    for call_id in call_ids:
        events: list[Received] = probe.call_events_until_terminal(call_id)
        # call.initiated, ringing and answered were consumed above for some; count what is left.
        types = [e["type"] for e in events]
        assert types.count("call.completed") == 1 and types[-1] == "call.cdr"
        assert {e["node"] for e in events} == {answered[call_id]}  # only the owner publishes
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    for _, sim in two_nodes:
        assert sim.live_channels() == []


# ------------------------------------------------------------ forwarded commands age


@pytest.fixture
def owner_and_other(pg_url: str, amqp_url: str) -> Iterator[tuple[Worker, Worker, Simulator]]:
    """The owner of a call (maximum command age 20 s) and another node (60 s), both consuming."""
    sims, workers = [], []
    for max_age in (20.0, 60.0):
        sim = Simulator("127.0.0.1", 0, "ClueCon", ring_delay=0.02, answer_delay=0.05)
        sim.start()
        sims.append(sim)
        workers.append(start_worker(make_settings(sim, pg_url, amqp_url, command_max_age_s=max_age)))
    yield workers[0], workers[1], sims[0]
    for worker, sim in zip(workers, sims, strict=True):
        worker.stop()
        sim.stop()


def _answered_call_on(owner: Worker, other: Worker, probe: Probe, tenant: str) -> str:
    """A call placed and answered by ``owner`` (the other node takes no command meanwhile)."""
    other.bus.pause_consuming()
    call_id = str(uuid.uuid4())
    assert probe.reply_for(probe.send(tenant, "originate", destination_number="+15551230001",
                                      call_id=call_id)["command_id"])["ok"]
    answered = probe.event(lambda e: e.get("call_id") == call_id and e["type"] == "call.answered")
    assert answered["node"] == owner.settings.node_id
    other.bus.resume_consuming()
    return call_id


def _forwarded(amqp_url: str, owner: Worker) -> tuple[Any, Any]:
    """Wait for the command forwarded to ``owner``'s queue; put it back; its (properties, headers)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        for method, properties, _body in channel.consume(node_queue(owner.settings.node_id),
                                                          inactivity_timeout=15):
            assert method is not None, "nothing was forwarded to the owner"
            channel.basic_nack(method.delivery_tag, requeue=True)
            return properties, dict(properties.headers or {})
        raise AssertionError("unreachable")
    finally:
        connection.close()


def test_a_forwarded_command_ages_from_its_first_publish_not_from_the_forward(
    owner_and_other: tuple[Worker, Worker, Simulator], probe: Probe, tenant: str, amqp_url: str
) -> None:
    owner, other, owner_switch = owner_and_other
    call_id = _answered_call_on(owner, other, probe, tenant)
    # Published 30 s ago: young enough for the other node (60 s), too old for the owner (20 s).
    published = int(time.time()) - 30
    owner.bus.pause_consuming()  # so the other node takes it from the shared queue
    hangup = probe.send(tenant, "hangup", call_id=call_id, timestamp=published)
    properties, headers = _forwarded(amqp_url, owner)
    assert properties.timestamp >= published + 29  # the forward's own, fresh timestamp ...
    assert headers[PUBLISHED_AT_HEADER] == published  # ... and the first one, carried along
    owner.bus.resume_consuming()
    reply = probe.reply_for(hangup["command_id"])
    assert reply["ok"] is False and reply["error"]["code"] == "COMMAND_EXPIRED", reply
    assert call_id in owner_switch.live_channels()  # never executed
    assert probe.reply_for(probe.send(tenant, "hangup", call_id=call_id)["command_id"])["ok"]


def test_a_command_without_a_timestamp_ages_from_its_first_receipt(
    owner_and_other: tuple[Worker, Worker, Simulator], probe: Probe, tenant: str, amqp_url: str
) -> None:
    owner, other, _ = owner_and_other
    call_id = _answered_call_on(owner, other, probe, tenant)
    owner.bus.pause_consuming()
    before = time.time()
    hangup = probe.send(tenant, "hangup", call_id=call_id, stamped=False)
    _properties, headers = _forwarded(amqp_url, owner)
    # The other node's receipt, not the owner's: measured from there, a forward adds no time.
    assert int(before) <= headers[PUBLISHED_AT_HEADER] <= time.time()
    owner.bus.resume_consuming()
    assert probe.reply_for(hangup["command_id"])["ok"]  # still young: executed
