"""The topology plan: names, arguments and order of CONTRACT section 2."""

from __future__ import annotations

import pytest

from callworker.bus.topology import (
    COMMANDS_EXCHANGE,
    COMMANDS_QUEUE,
    DEAD_QUEUE,
    DLX_EXCHANGE,
    EVENTS_EXCHANGE,
    Declaration,
    node_queue,
    queue_arguments,
    topology_plan,
)


def test_contract_names() -> None:
    assert (COMMANDS_EXCHANGE, EVENTS_EXCHANGE, DLX_EXCHANGE) == (
        "callworker.commands", "callworker.events", "callworker.dlx")
    assert (COMMANDS_QUEUE, DEAD_QUEUE) == ("callworker.commands", "callworker.commands.dead")
    assert node_queue("fs1") == "callworker.node.fs1"


def test_plan_declares_exchanges_queues_and_bindings_in_order() -> None:
    plan = topology_plan("fs1")
    assert plan == [
        Declaration("exchange", "callworker.commands"),
        Declaration("exchange", "callworker.events"),
        Declaration("exchange", "callworker.dlx"),
        Declaration("queue", "callworker.commands", quorum=True, dead_letters=True),
        Declaration("bind", "callworker.commands", source="callworker.commands", routing_key="#"),
        Declaration("queue", "callworker.commands.dead"),
        Declaration("bind", "callworker.commands.dead", source="callworker.dlx", routing_key="#"),
        Declaration("queue", "callworker.node.fs1", quorum=True, dead_letters=True),
    ]


def test_the_plan_is_the_same_every_time() -> None:
    assert topology_plan("fs1") == topology_plan("fs1")


def test_queue_arguments() -> None:
    assert queue_arguments(quorum=True, dead_letters=True) == {
        "x-queue-type": "quorum", "x-dead-letter-exchange": "callworker.dlx"}
    assert queue_arguments(quorum=False, dead_letters=True) == {
        "x-dead-letter-exchange": "callworker.dlx"}
    assert queue_arguments(quorum=False, dead_letters=False) == {}


@pytest.mark.parametrize("node_id", ["", "x" * 201])
def test_node_queue_refuses_unusable_node_ids(node_id: str) -> None:
    with pytest.raises(ValueError):
        node_queue(node_id)
