"""The intake's order of checks, with SQLite and a FreeSWITCH port that can be taken away."""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

import gevent
import pytest

from callworker.bus.client import AmqpClient, Delivery
from callworker.bus.relay import OutboxItem
from callworker.calls.intake import Intake
from tests.component.test_call_service import FakePort, setup  # noqa: F401 - the rig asks for it by name


class AckingBus:
    """Stands in for AmqpClient where the intake settles deliveries."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, delivery: Delivery) -> None:
        self.acked.append(delivery.delivery_tag)


def delivery(body: dict[str, Any], tag: int) -> Delivery:
    return Delivery(
        queue="callworker.commands", exchange="callworker.commands", routing_key="acme.originate",
        body=json.dumps(body).encode(), content_type="application/json", reply_to="amq.gen-caller",
        correlation_id=body["command_id"], message_id=None, timestamp=None, headers={},
        redelivered=tag > 1, delivery_tag=tag, generation=1,
    )


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> tuple[Intake, FakePort, AckingBus, list[OutboxItem]]:
    """The call service's rig (SQLite, a fake FreeSWITCH port) behind an intake."""
    service, _journal, _pump, port, published, engine = request.getfixturevalue("setup")
    bus = AckingBus()
    intake = Intake(bus=cast(AmqpClient, bus), engine=engine, service=service,
                    freeswitch_ready=lambda timeout: port.connected, max_age_s=30, workers=1)
    return intake, port, bus, published


def test_a_copy_of_an_executed_originate_is_answered_while_freeswitch_is_away(
        rig: tuple[Intake, FakePort, AckingBus, list[OutboxItem]]) -> None:
    intake, port, bus, published = rig
    body = {"v": 1, "command_id": str(uuid.uuid4()), "type": "originate",
            "destination_number": "+15551230200", "call_id": str(uuid.uuid4())}
    intake.handle(delivery(body, 1))
    assert bus.acked == [1] and len([c for c in port.sent if c.startswith("bgapi originate")]) == 1
    port.connected = False  # the ESL connection dropped after the first execution
    copy = gevent.spawn(intake.handle, delivery(body, 2))
    copy.join(timeout=5)
    assert copy.dead is True and copy.exception is None, "the copy waited for FreeSWITCH"
    assert bus.acked == [1, 2]
    assert len([c for c in port.sent if c.startswith("bgapi originate")]) == 1
    replies = [json.loads(item.body) for item in published if item.routing_key == "amq.gen-caller"]
    assert len(replies) == 2 and replies[0]["result"] == replies[1]["result"]
