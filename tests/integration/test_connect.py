"""Connected calls through RabbitMQ and PostgreSQL, against the simulator: click-to-call, a busy
second number, transfer, the call's time limit, and refusals that reach nothing.

The same steps run on the real switch in tests/freeswitch/test_connect.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.simulator import Simulator
from tests.integration.conftest import dead_letter_command_ids

pytestmark = pytest.mark.integration


def ask(probe: Probe, tenant: str, command_type: str, **fields: Any) -> Received:
    return probe.reply_for(probe.send(tenant, command_type, **fields)["command_id"])


def wait_type(probe: Probe, call_id: str, event_type: str) -> Received:
    return probe.event(lambda e: e.get("call_id") == call_id and e["type"] == event_type)


def types(events: list[Received]) -> list[str]:
    return [e["type"] for e in events]


def test_click_to_call_two_calls_bridged_each_with_its_events_and_cdr(
    worker: Worker, probe: Probe, tenant: str,
) -> None:
    first = str(uuid.uuid4())
    reply = ask(probe, tenant, "originate", destination_number="+15551230001", call_id=first,
                connect={"to": "number", "destination_number": "+15551230002"})
    assert reply["ok"], reply
    second = reply["result"]["connect_call_id"]
    assert wait_type(probe, first, "call.bridged")["data"]["bridged_with"] == second
    assert wait_type(probe, second, "call.bridged")["data"]["bridged_with"] == first
    assert ask(probe, tenant, "call.get", call_id=second)["result"]["bridged_with"] == first

    assert ask(probe, tenant, "hangup", call_id=second)["ok"]
    second_events = probe.call_events_until_terminal(second)
    first_events = probe.call_events_until_terminal(first)
    assert types(second_events)[-2:] == ["call.completed", "call.cdr"]
    assert types(first_events)[-2:] == ["call.completed", "call.cdr"]
    assert second_events[-1]["data"]["bridged_with"] == first
    assert first_events[-1]["data"]["bridged_with"] == second
    cdrs = ask(probe, tenant, "cdr.list")["result"]["cdrs"]
    assert {c["call_id"]: c["bridged_with"] for c in cdrs} == {first: second, second: first}


def test_a_busy_second_number_ends_the_first_call_with_its_cause(
    worker: Worker, probe: Probe, tenant: str,
) -> None:
    first = str(uuid.uuid4())
    reply = ask(probe, tenant, "originate", destination_number="+15551230001", call_id=first,
                connect={"to": "number", "destination_number": "+15551230486"})
    second = reply["result"]["connect_call_id"]
    second_events = probe.call_events_until_terminal(second)
    assert types(second_events) == ["call.initiated", "call.ringing", "call.failed", "call.cdr"]
    first_events = probe.call_events_until_terminal(first)
    assert types(first_events)[-2:] == ["call.completed", "call.cdr"]
    assert first_events[-1]["data"]["hangup_cause"] == "USER_BUSY"


def test_the_first_call_failing_places_no_second_call(
    worker: Worker, probe: Probe, tenant: str, simulator: Simulator,
) -> None:
    first = str(uuid.uuid4())
    reply = ask(probe, tenant, "originate", destination_number="+15551230486", call_id=first,
                connect={"to": "number", "destination_number": "+15551230002"})
    second = reply["result"]["connect_call_id"]
    assert types(probe.call_events_until_terminal(first))[-2:] == ["call.failed", "call.cdr"]
    assert ask(probe, tenant, "call.get", call_id=second)["error"]["code"] == "CALL_NOT_FOUND"
    assert not any(second in line for line in simulator.received_commands())


def test_transfer_to_a_number_and_to_an_extension(worker: Worker, probe: Probe, tenant: str) -> None:
    first = str(uuid.uuid4())
    assert ask(probe, tenant, "originate", destination_number="+15551230001", call_id=first)["ok"]
    wait_type(probe, first, "call.answered")
    reply = ask(probe, tenant, "transfer", call_id=first, connect={"to": "extension", "extension": "9100"})
    assert reply["result"] == {"call_id": first, "status": "answered"}
    assert wait_type(probe, first, "call.transferred")["data"]["connect"] == {
        "to": "extension", "extension": "9100", "context": "default"}

    reply = ask(probe, tenant, "transfer", call_id=first,
                connect={"to": "number", "destination_number": "+15551230002"})
    second = reply["result"]["connect_call_id"]
    assert wait_type(probe, first, "call.bridged")["data"]["bridged_with"] == second
    ask(probe, tenant, "hangup", call_id=first)
    assert types(probe.call_events_until_terminal(second))[-2:] == ["call.completed", "call.cdr"]
    assert types(probe.call_events_until_terminal(first))[-2:] == ["call.completed", "call.cdr"]


def test_a_redelivered_transfer_places_one_second_call(
    worker: Worker, probe: Probe, tenant: str, simulator: Simulator,
) -> None:
    first = str(uuid.uuid4())
    assert ask(probe, tenant, "originate", destination_number="+15551230001", call_id=first)["ok"]
    wait_type(probe, first, "call.answered")
    body: dict[str, Any] = {"call_id": first, "connect": {"to": "number", "destination_number": "+15551230002"}}
    sent = probe.send(tenant, "transfer", **body)
    reply = probe.reply_for(sent["command_id"])
    again = probe.reply_for(probe.send(tenant, "transfer", command_id=sent["command_id"], **body)["command_id"])
    assert again["result"] == reply["result"]
    second = reply["result"]["connect_call_id"]
    wait_type(probe, second, "call.bridged")
    dials = [line for line in simulator.received_commands() if f"origination_uuid={second}" in line]
    assert len(dials) == 1


def test_max_duration_ends_the_answered_call_with_allotted_timeout(
    worker: Worker, probe: Probe, tenant: str,
) -> None:
    call_id = str(uuid.uuid4())
    assert ask(probe, tenant, "originate", destination_number="+15551230001", call_id=call_id,
               max_duration_s=1)["ok"]
    events = probe.call_events_until_terminal(call_id)
    assert types(events)[-2:] == ["call.completed", "call.cdr"]
    assert events[-2]["data"]["hangup_cause"] == "ALLOTTED_TIMEOUT"


@pytest.mark.parametrize(("fields", "field"), [
    ({"connect": {"to": "extension", "extension": "9100", "context": "public"}}, "connect.context"),
    ({"connect": {"to": "extension", "extension": "91 00"}}, "connect.extension"),
    ({"connect": {"to": "number", "destination_number": "+1555\napi hupall"}}, "connect.destination_number"),
    ({"connect": {"to": "number", "destination_number": "+15551230002", "gateway": "evil"}}, "connect.gateway"),
    ({"max_duration_s": 86401}, "max_duration_s"),
])
def test_a_bad_connect_is_refused_dead_lettered_and_reaches_nothing(
    worker: Worker, probe: Probe, tenant: str, simulator: Simulator, amqp_url: str,
    fields: dict[str, Any], field: str,
) -> None:
    before = len(simulator.received_commands())
    sent = probe.send(tenant, "originate", destination_number="+15551230001", **fields)
    reply = probe.reply_for(sent["command_id"])
    assert reply["ok"] is False and reply["error"]["code"] == "VALIDATION_ERROR", reply
    assert reply["error"]["details"]["field"] == field
    assert sent["command_id"] in dead_letter_command_ids(amqp_url)
    assert not [line for line in simulator.received_commands()[before:] if "originate" in line]


def test_the_second_call_and_a_transfer_belong_to_the_node_of_the_first_call(
    two_nodes: list[tuple[Worker, Simulator]], probe: Probe, tenant: str,
) -> None:
    pairs: dict[str, str] = {}
    for _ in range(8):
        first = str(uuid.uuid4())
        reply = ask(probe, tenant, "originate", destination_number="+15551230001", call_id=first,
                    connect={"to": "number", "destination_number": "+15551230002"})
        pairs[first] = reply["result"]["connect_call_id"]
    node_of: dict[str, str] = {}
    for first, second in pairs.items():
        node_of[first] = wait_type(probe, first, "call.bridged")["node"]
        assert wait_type(probe, second, "call.bridged")["node"] == node_of[first]
    assert len(set(node_of.values())) == 2  # the shared intake spread the originates
    sims = {worker.settings.node_id: sim for worker, sim in two_nodes}
    for first, second in pairs.items():
        assert {first, second} <= set(sims[node_of[first]].live_channels())

    # A transfer taken from the shared queue by either worker runs on the first call's node.
    for first in pairs:
        reply = ask(probe, tenant, "transfer", call_id=first,
                    connect={"to": "number", "destination_number": "+15551230003"})
        assert reply["ok"], reply
        third = reply["result"]["connect_call_id"]
        bridged = probe.event(lambda e, f=first, t=third: e.get("call_id") == f and e["type"] == "call.bridged"
                              and e["data"]["bridged_with"] == t)
        assert bridged["node"] == node_of[first]
        assert third in sims[node_of[first]].live_channels()
