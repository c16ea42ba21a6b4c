"""Two workers, each with its own FreeSWITCH (simulator), sharing RabbitMQ and PostgreSQL."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.simulator import Simulator
from tests.integration.conftest import make_settings, start_worker

pytestmark = pytest.mark.integration


@pytest.fixture
def two_nodes(pg_url: str, amqp_url: str) -> Iterator[list[tuple[Worker, Simulator]]]:
    nodes = []
    for _ in range(2):
        sim = Simulator("127.0.0.1", 0, "ClueCon", ring_delay=0.02, answer_delay=0.05)
        sim.start()
        nodes.append((start_worker(make_settings(sim, pg_url, amqp_url, prefetch=5)), sim))
    yield nodes
    for worker, sim in nodes:
        worker.stop()
        sim.stop()


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
