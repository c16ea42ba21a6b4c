"""Tenant isolation end to end: to tenant B, tenant A's calls, CDRs, events and commands do not exist.

CONTRACT section 3: the tenant comes from the routing key only, and a tenant never
sees, changes or learns of another tenant's calls, orders or records. Each test has
tenant A (the ``tenant``/``probe`` fixtures) own calls, and tenant B (its own probe,
bound to ``B.#`` only) try every command on them. B's answers are compared with
the answers about calls that never existed: they must be the same.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.simulator import Simulator

pytestmark = pytest.mark.integration

CALL_COMMANDS = ("hangup", "hold", "mute", "call.get", "play", "dtmf", "record")
# What each command needs besides the call id.
FIELDS: dict[str, dict[str, Any]] = {"play": {"tone": "100,100,440"}, "dtmf": {"digits": "1"},
                                     "record": {"action": "start"}}


@pytest.fixture
def intruder(amqp_url: str) -> Iterator[tuple[str, Probe]]:
    """Tenant B and its probe, which binds B's events only."""
    name = f"b{uuid.uuid4().hex[:10]}"
    probe = Probe(amqp_url, event_bindings=(f"{name}.#",))
    yield name, probe
    probe.close()


def send(probe: Probe, tenant: str, command_type: str, **fields: Any) -> Received:
    return probe.reply_for(probe.send(tenant, command_type, **fields)["command_id"])


def place_call(probe: Probe, tenant: str, number: str, *, wait_for: str) -> str:
    call_id = str(uuid.uuid4())
    reply = send(probe, tenant, "originate", destination_number=number, call_id=call_id)
    assert reply["ok"], reply
    probe.event(lambda e: e.get("call_id") == call_id and e["type"] == wait_for, timeout=15)
    return call_id


def anonymous(reply: Received, *call_ids: str) -> str:
    """The reply as JSON with its command_id and the given call ids blanked out."""
    text = json.dumps({k: v for k, v in reply.items() if k not in ("_amqp", "command_id")}, sort_keys=True)
    for call_id in call_ids:
        text = text.replace(call_id, "<call>")
    return text


@pytest.fixture
def a_calls(worker: Worker, probe: Probe, tenant: str) -> Iterator[dict[str, str]]:
    """Tenant A's calls: one answered and still up, one ended (busy) with its CDR."""
    ended = place_call(probe, tenant, "+15551230486", wait_for="call.cdr")
    live = place_call(probe, tenant, "+15551230001", wait_for="call.answered")
    yield {"live": live, "ended": ended}
    send(probe, tenant, "hangup", call_id=live)


def test_b_cannot_act_on_or_read_a_calls_and_gets_the_answer_for_a_call_that_never_existed(
    worker: Worker, probe: Probe, tenant: str, intruder: tuple[str, Probe],
    a_calls: dict[str, str], simulator: Simulator,
) -> None:
    b, b_probe = intruder
    never = str(uuid.uuid4())
    for command_type in CALL_COMMANDS:
        fields = FIELDS.get(command_type, {})
        baseline = send(b_probe, b, command_type, call_id=never, **fields)
        assert baseline["ok"] is False and baseline["error"]["code"] == "CALL_NOT_FOUND"
        for call_id in a_calls.values():
            reply = send(b_probe, b, command_type, call_id=call_id, **fields)
            assert anonymous(reply, call_id) == anonymous(baseline, never), (command_type, reply)
    # A's call did not notice: not hung up, held, muted, played to or recorded, and
    # FreeSWITCH was never asked.
    live = a_calls["live"]
    snapshot = send(probe, tenant, "call.get", call_id=live)["result"]
    assert (snapshot["status"], snapshot["on_hold"], snapshot["muted"]) == ("answered", False, False)
    assert live in simulator.live_channels()
    assert simulator.audio_state(live)["read"]["mute"] == 0
    touched = [line for line in simulator.received_commands() if live in line]
    assert len(touched) == 1 and touched[0].startswith("bgapi originate"), touched


def test_a_call_id_in_use_is_refused_without_saying_whose_or_in_what_state(
    worker: Worker, probe: Probe, tenant: str, intruder: tuple[str, Probe],
    a_calls: dict[str, str], simulator: Simulator,
) -> None:
    b, b_probe = intruder
    own = place_call(b_probe, b, "+15551230001", wait_for="call.answered")
    try:
        # B reusing its own call id is the reference: reusing A's must read the same.
        reference = send(b_probe, b, "originate", destination_number="+15551230002", call_id=own)
        assert reference["error"]["code"] == "VALIDATION_ERROR"
        assert reference["error"]["details"] == {"field": "call_id"}
        for call_id in a_calls.values():
            reply = send(b_probe, b, "originate", destination_number="+15551230002", call_id=call_id)
            assert anonymous(reply, call_id) == anonymous(reference, own)
            text = json.dumps(reply)
            for secret in (tenant, "+15551230486", "+15551230001", "answered", "failed",
                           "USER_BUSY", worker.settings.node_id):
                assert secret not in text
            dialled = [line for line in simulator.received_commands()
                       if call_id in line and line.startswith("bgapi originate")]
            assert len(dialled) == 1 and f"callworker_tenant={tenant}" in dialled[0]
    finally:
        send(b_probe, b, "hangup", call_id=own)


def test_lists_events_and_replies_hold_nothing_of_the_other_tenant(
    worker: Worker, probe: Probe, tenant: str, intruder: tuple[str, Probe],
    a_calls: dict[str, str],
) -> None:
    b, b_probe = intruder
    for fields in ({}, {"status": "answered"}, {"status": "failed"}, {"limit": 100}):
        listing = send(b_probe, b, "call.list", **fields)["result"]
        assert listing == {"calls": [], "total_count": 0, "has_more": False}
    assert send(b_probe, b, "cdr.list", limit=1000)["result"] == {"cdrs": [], "total_count": 0, "has_more": False}
    for group_by in ("none", "gateway", "hour", "day"):  # naming A in the body changes nothing
        command_id = str(uuid.uuid4())
        body = {"v": 1, "command_id": command_id, "type": "stats.get", "group_by": group_by, "tenant": tenant}
        b_probe.publish_raw(f"{b}.stats.get", json.dumps(body).encode())
        groups = b_probe.reply_for(command_id)["result"]["groups"]
        assert sum(g["calls"] for g in groups) == 0 and all(g["hangup_causes"] == {} for g in groups)

    own = place_call(b_probe, b, "+15551230200", wait_for="call.cdr")
    [b_stats] = send(b_probe, b, "stats.get")["result"]["groups"]
    assert (b_stats["calls"], b_stats["answered"], b_stats["hangup_causes"]) == (1, 1, {"NORMAL_CLEARING": 1})
    assert [c["call_id"] for c in send(b_probe, b, "call.list")["result"]["calls"]] == [own]
    assert [c["call_id"] for c in send(b_probe, b, "cdr.list")["result"]["cdrs"]] == [own]
    a_listed = {c["call_id"] for c in send(probe, tenant, "call.list")["result"]["calls"]}
    assert a_listed == set(a_calls.values())
    assert {c["call_id"] for c in send(probe, tenant, "cdr.list")["result"]["cdrs"]} == {a_calls["ended"]}

    # A's events were published before B's call began, and one queue keeps publishing
    # order: had any of them been routed to B, it would be in front of B's CDR.
    seen: list[Received] = []
    while not b_probe.events.empty():
        seen.append(b_probe.events.get_nowait())
    assert seen and all(e["tenant"] == b and e["call_id"] == own for e in seen)
    assert all(e["_amqp"]["routing_key"].startswith(f"{b}.") for e in seen)
    replies: list[Received] = []
    while not b_probe.replies.empty():
        replies.append(b_probe.replies.get_nowait())
    assert all(tenant not in json.dumps(r) for r in replies)


def test_a_command_id_of_another_tenant_is_a_new_command(
    worker: Worker, probe: Probe, tenant: str, intruder: tuple[str, Probe],
    a_calls: dict[str, str], simulator: Simulator,
) -> None:
    b, b_probe = intruder
    read = probe.send(tenant, "call.get", call_id=a_calls["live"])
    assert probe.reply_for(read["command_id"])["ok"]
    # The same command_id and body from B: not a replay of A's answer.
    b_probe.publish_raw(f"{b}.call.get", json.dumps(read).encode())
    assert b_probe.reply_for(read["command_id"])["error"]["code"] == "CALL_NOT_FOUND"

    placed = probe.send(tenant, "originate", destination_number="+15551230001", call_id=str(uuid.uuid4()))
    assert probe.reply_for(placed["command_id"])["ok"]
    mine = {**placed, "call_id": str(uuid.uuid4()), "destination_number": "+15551230200"}
    b_probe.publish_raw(f"{b}.originate", json.dumps(mine).encode())
    reply = b_probe.reply_for(placed["command_id"])
    assert reply["result"] == {"call_id": mine["call_id"], "status": "initiated"}
    b_probe.call_events_until_terminal(mine["call_id"])
    send(probe, tenant, "hangup", call_id=placed["call_id"])
    probe.call_events_until_terminal(placed["call_id"])
    dialled = [line for line in simulator.received_commands() if line.startswith("bgapi originate")]
    assert sum(mine["call_id"] in line and f"callworker_tenant={b}" in line for line in dialled) == 1


def _publish_with_headers(amqp_url: str, routing_key: str, body: dict[str, Any], reply_to: str,
                          headers: dict[str, Any]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            "callworker.commands", routing_key, json.dumps(body).encode(),
            pika.BasicProperties(content_type="application/json", delivery_mode=2, reply_to=reply_to,
                                 correlation_id=body["command_id"], headers=headers),
        )
    finally:
        connection.close()


def test_a_routing_key_header_does_not_lend_another_tenant(
    worker: Worker, probe: Probe, tenant: str, intruder: tuple[str, Probe],
    a_calls: dict[str, str], amqp_url: str, simulator: Simulator,
) -> None:
    """The broker pins B's user to ``B.*`` routing keys; headers are B's to write."""
    b, b_probe = intruder
    live = a_calls["live"]
    for command_type in ("call.get", "hangup"):
        body: dict[str, Any] = {"v": 1, "command_id": str(uuid.uuid4()), "type": command_type, "call_id": live}
        _publish_with_headers(amqp_url, f"{b}.{command_type}", body, b_probe.reply_queue,
                              {"x-callworker-routing-key": f"{tenant}.{command_type}"})
        reply = b_probe.reply_for(body["command_id"])
        assert reply["ok"] is False and reply["error"]["code"] == "CALL_NOT_FOUND", reply
    assert send(probe, tenant, "call.get", call_id=live)["result"]["status"] == "answered"
    assert not any(line.startswith(f"api uuid_kill {live}") for line in simulator.received_commands())


def test_b_cannot_replay_a_events(
    worker: Worker, probe: Probe, tenant: str, intruder: tuple[str, Probe], a_calls: dict[str, str],
) -> None:
    b, b_probe = intruder
    never = str(uuid.uuid4())
    baseline = send(b_probe, b, "call.events", call_id=never)
    assert baseline["error"]["code"] == "CALL_NOT_FOUND"
    for call_id in a_calls.values():
        assert send(probe, tenant, "call.events", call_id=call_id)["result"]["events"]  # A's own: there
        reply = send(b_probe, b, "call.events", call_id=call_id)
        assert anonymous(reply, call_id) == anonymous(baseline, never)
    order = send(probe, tenant, "flashcall.create", phone="+15557651234")
    assert order["ok"], order
    order_id = order["result"]["id"]
    mine = send(b_probe, b, "call.events", order_id=order_id)
    none = send(b_probe, b, "call.events", order_id=never)
    assert mine["error"]["code"] == "ORDER_NOT_FOUND" and anonymous(mine, order_id) == anonymous(none, never)


def test_b_exports_and_erases_nothing_of_a(
    worker: Worker, probe: Probe, tenant: str, intruder: tuple[str, Probe], a_calls: dict[str, str],
) -> None:
    b, b_probe = intruder
    for number in ("+15551230486", "+15551230001"):
        exported = send(b_probe, b, "privacy.export", phone_number=number)["result"]
        assert (exported["calls"], exported["cdrs"], exported["flashcall_orders"]) == ([], [], [])
        erased = send(b_probe, b, "privacy.erase", phone_number=number)["result"]["erased"]
        assert erased == {"calls": 0, "cdrs": 0, "events": 0, "flashcall_orders": 0}
    for call_id in a_calls.values():
        snapshot = send(probe, tenant, "call.get", call_id=call_id)["result"]
        assert not snapshot["destination_number"].startswith("erased:")
    exported = send(probe, tenant, "privacy.export", phone_number="+15551230486")["result"]
    assert [c["call_id"] for c in exported["calls"]] == [a_calls["ended"]]


def test_no_tenant_runs_the_admin_commands(
    worker: Worker, probe: Probe, tenant: str, intruder: tuple[str, Probe],
) -> None:
    b, b_probe = intruder
    unknown = send(b_probe, b, "no.such.command")
    for command_type, fields in (("policy.get", {}), ("policy.set", {"calls_per_minute": 1})):
        reply = send(b_probe, b, command_type, **fields)
        assert anonymous(reply) == anonymous(unknown).replace("no.such.command", command_type)
    assert worker.policy.limits(b, None)[0].calls_per_minute is None
