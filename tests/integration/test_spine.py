"""End to end through the contract: commands in over RabbitMQ, the simulator as FreeSWITCH,
PostgreSQL as the database, replies and events out over RabbitMQ."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.simulator import Simulator
from tests.integration.conftest import dead_letters

pytestmark = pytest.mark.integration

TERMINAL = {"call.completed", "call.failed", "call.cancelled"}


def originate(probe: Probe, tenant: str, number: str, **fields: Any) -> Received:
    sent = probe.send(tenant, "originate", destination_number=number, call_id=str(uuid.uuid4()), **fields)
    reply = probe.reply_for(sent["command_id"])
    assert reply["ok"], reply
    assert reply["result"] == {"call_id": sent["call_id"], "status": "initiated"}
    return reply


def command(probe: Probe, tenant: str, command_type: str, **fields: Any) -> Received:
    sent = probe.send(tenant, command_type, **fields)
    return probe.reply_for(sent["command_id"])


def wait_type(probe: Probe, call_id: str, event_type: str) -> Received:
    return probe.event(lambda e: e.get("call_id") == call_id and e["type"] == event_type)


def assert_well_formed(events: list[Received], tenant: str, node: str) -> None:
    """Gapless seq from 1, exactly one terminal event, routing keys per the contract."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert sum(e["type"] in TERMINAL for e in events) == 1
    for e in events:
        assert e["v"] == 1 and e["tenant"] == tenant and e["node"] == node
        assert e["_amqp"]["routing_key"] == f"{tenant}.{e['type']}.{e['call_id']}"
        assert e["_amqp"]["message_id"] == e["event_id"]
        datetime.fromisoformat(e["occurred_at"])


def test_answered_call_held_resumed_muted_and_hung_up(
    worker: Worker, probe: Probe, tenant: str, simulator: Simulator
) -> None:
    call_id = originate(probe, tenant, "+15551230001", caller_id_number="+15550001111",
                        caller_id_name="Front Desk")["result"]["call_id"]
    wait_type(probe, call_id, "call.answered")
    assert any(f"origination_uuid={call_id}" in line for line in simulator.received_commands())

    held = command(probe, tenant, "hold", call_id=call_id)
    assert held["result"] == {"call_id": call_id, "on_hold": True}
    assert wait_type(probe, call_id, "call.held")["data"]["on_hold"] is True
    resumed = command(probe, tenant, "hold", call_id=call_id, hold=False)
    assert resumed["result"] == {"call_id": call_id, "on_hold": False}
    assert wait_type(probe, call_id, "call.unheld")["data"]["status"] == "answered"
    muted = command(probe, tenant, "mute", call_id=call_id)
    assert muted["result"] == {"call_id": call_id, "muted": True}
    assert wait_type(probe, call_id, "call.muted")["data"]["muted"] is True
    assert command(probe, tenant, "mute", call_id=call_id, muted=False)["result"]["muted"] is False
    wait_type(probe, call_id, "call.unmuted")

    hung = command(probe, tenant, "hangup", call_id=call_id)
    assert hung["result"] == {"call_id": call_id, "status": "answered"}
    events = probe.call_events_until_terminal(call_id)

    # Everything this call published, in order (the probe kept what we already consumed out).
    snapshot = command(probe, tenant, "call.get", call_id=call_id)["result"]
    assert snapshot["status"] == "completed" and snapshot["hangup_cause"] == "NORMAL_CLEARING"
    assert snapshot["answered_at"] and snapshot["ended_at"] and snapshot["duration_seconds"] >= 0
    assert snapshot["caller_id_number"] == "+15550001111" and snapshot["direction"] == "outbound"
    cdr = events[-1]["data"]
    assert events[-2]["type"] == "call.completed"
    assert cdr["call_id"] == call_id and cdr["hangup_cause"] == "NORMAL_CLEARING"
    assert cdr["hangup_cause_q850"] == 16 and cdr["sip_hangup_disposition"] == "send_bye"
    assert cdr["answer_stamp"] and cdr["billsec"] is not None and cdr["missed_call"] is False
    assert cdr["tenant"] == tenant and cdr["node"] == worker.settings.node_id


def test_every_event_of_a_call_in_order(worker: Worker, probe: Probe, tenant: str) -> None:
    # ...0200 answers without ringing (no 180, so no call.ringing), as on the real switch.
    call_id = originate(probe, tenant, "+15551230200")["result"]["call_id"]
    events = probe.call_events_until_terminal(call_id)
    assert [e["type"] for e in events] == [
        "call.initiated", "call.answered", "call.completed", "call.cdr"
    ]
    assert_well_formed(events, tenant, worker.settings.node_id)
    assert events[2]["data"]["hangup_cause"] == "NORMAL_CLEARING"
    assert events[3]["data"]["sip_hangup_disposition"] == "recv_bye"


@pytest.mark.parametrize(
    ("number", "cause", "q850", "rings"),
    [
        ("+15551230486", "USER_BUSY", 17, True),
        ("+15551230403", "CALL_REJECTED", 21, False),
        ("+15551230404", "UNALLOCATED_NUMBER", 1, False),
        ("+15551230408", "NO_ANSWER", 19, True),
    ],
)
def test_failure_outcomes(
    worker: Worker, probe: Probe, tenant: str, number: str, cause: str, q850: int, rings: bool
) -> None:
    call_id = originate(probe, tenant, number, timeout_s=5)["result"]["call_id"]
    events = probe.call_events_until_terminal(call_id, timeout=20)
    types = [e["type"] for e in events]
    expected = ["call.initiated"] + (["call.ringing"] if rings else []) + ["call.failed", "call.cdr"]
    assert types == expected
    assert_well_formed(events, tenant, worker.settings.node_id)
    assert events[-2]["data"]["hangup_cause"] == cause
    assert events[-2]["data"]["status"] == "failed"
    assert events[-1]["data"]["hangup_cause_q850"] == q850
    assert events[-1]["data"]["billsec"] == 0 and events[-1]["data"]["answer_stamp"] is None


def test_hangup_while_ringing_is_cancelled(worker: Worker, probe: Probe, tenant: str) -> None:
    call_id = originate(probe, tenant, "+15551230408", timeout_s=30)["result"]["call_id"]
    wait_type(probe, call_id, "call.ringing")
    reply = command(probe, tenant, "hangup", call_id=call_id, cause="ORIGINATOR_CANCEL")
    assert reply["result"] == {"call_id": call_id, "status": "ringing"}
    terminal = probe.event(lambda e: e.get("call_id") == call_id and e["type"] in TERMINAL)
    assert terminal["type"] == "call.cancelled"
    again = command(probe, tenant, "hangup", call_id=call_id)
    assert again["ok"] is False and again["error"]["code"] == "CALL_NOT_ACTIVE"


def test_a_repeated_command_id_dials_once_and_replays_the_reply(
    worker: Worker, probe: Probe, tenant: str, simulator: Simulator
) -> None:
    body: dict[str, Any] = {"v": 1, "command_id": str(uuid.uuid4()), "type": "originate",
                            "destination_number": "+15551230200", "call_id": str(uuid.uuid4())}
    raw = json.dumps(body).encode()
    first = probe.reply_for(None, correlation_id=probe.publish_raw(f"{tenant}.originate", raw))
    second = probe.reply_for(None, correlation_id=probe.publish_raw(f"{tenant}.originate", raw))
    assert first["ok"] and second["ok"]
    assert {k: first[k] for k in ("command_id", "type", "ok", "result")} == {
        k: second[k] for k in ("command_id", "type", "ok", "result")
    }
    probe.call_events_until_terminal(body["call_id"])
    dialled = [line for line in simulator.received_commands() if body["call_id"] in line and "originate" in line]
    assert len(dialled) == 1
    listing = command(probe, tenant, "call.list")["result"]
    assert listing["total_count"] == 1 and listing["has_more"] is False


def test_another_tenant_cannot_see_or_touch_a_call(worker: Worker, probe: Probe, tenant: str) -> None:
    call_id = originate(probe, tenant, "+15551230001")["result"]["call_id"]
    wait_type(probe, call_id, "call.answered")
    intruder = f"x{tenant}"
    fields: dict[str, Any]
    for command_type, fields in (
        ("hangup", {}), ("hold", {}), ("mute", {}), ("call.get", {}),
    ):
        reply = command(probe, intruder, command_type, call_id=call_id, **fields)
        assert reply["ok"] is False and reply["error"]["code"] == "CALL_NOT_FOUND", reply
    assert command(probe, intruder, "call.list")["result"]["total_count"] == 0
    assert command(probe, intruder, "cdr.list")["result"]["total_count"] == 0
    assert command(probe, tenant, "call.get", call_id=call_id)["result"]["status"] == "answered"
    command(probe, tenant, "hangup", call_id=call_id)
    probe.call_events_until_terminal(call_id)


def test_call_id_in_use_and_hold_before_answer(worker: Worker, probe: Probe, tenant: str) -> None:
    call_id = originate(probe, tenant, "+15551230408", timeout_s=30)["result"]["call_id"]
    wait_type(probe, call_id, "call.ringing")
    again = probe.send(tenant, "originate", destination_number="+15551230001", call_id=call_id)
    reply = probe.reply_for(again["command_id"])
    assert reply["error"]["code"] == "VALIDATION_ERROR" and reply["error"]["details"]["field"] == "call_id"
    hold = command(probe, tenant, "hold", call_id=call_id)
    assert hold["error"]["code"] == "CALL_NOT_ACTIVE"
    command(probe, tenant, "hangup", call_id=call_id)
    probe.call_events_until_terminal(call_id)


def test_lists_and_cdrs(worker: Worker, probe: Probe, tenant: str) -> None:
    ids = [originate(probe, tenant, number)["result"]["call_id"] for number in ("+15551230486", "+15551230200")]
    for call_id in ids:
        probe.call_events_until_terminal(call_id)
    calls = command(probe, tenant, "call.list", limit=1)["result"]
    assert calls["total_count"] == 2 and calls["has_more"] is True
    assert calls["calls"][0]["call_id"] == ids[1]  # newest first
    failed = command(probe, tenant, "call.list", status="failed")["result"]
    assert [c["call_id"] for c in failed["calls"]] == [ids[0]]
    cdrs = command(probe, tenant, "cdr.list")["result"]
    assert cdrs["total_count"] == 2 and {c["call_id"] for c in cdrs["cdrs"]} == set(ids)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert command(probe, tenant, "cdr.list", **{"from": future})["result"]["total_count"] == 0


BAD_INPUTS = [
    ("not json", b"{not json", "INVALID_MESSAGE"),
    ("array", b"[1, 2]", "INVALID_MESSAGE"),
    ("oversize", b'{"pad": "' + b"x" * 70000 + b'"}', "INVALID_MESSAGE"),
    ("unknown type", None, "UNKNOWN_COMMAND"),
    ("type mismatch", None, "VALIDATION_ERROR"),
    ("missing destination", None, "VALIDATION_ERROR"),
    ("newline in number", None, "INVALID_PHONE_NUMBER"),
    ("space in number", None, "INVALID_PHONE_NUMBER"),
    ("bridge in number", None, "INVALID_PHONE_NUMBER"),
    ("string timeout", None, "VALIDATION_ERROR"),
]


def _bad_body(case: str) -> tuple[str, bytes]:
    base = {"v": 1, "command_id": str(uuid.uuid4()), "type": "originate", "destination_number": "+15551230001"}
    if case == "unknown type":
        return "fly", json.dumps({**base, "type": "fly"}).encode()
    if case == "type mismatch":
        return "originate", json.dumps({**base, "type": "hangup"}).encode()
    if case == "missing destination":
        base.pop("destination_number")
    elif case == "newline in number":
        base["destination_number"] = "+1555123\napi hupall"
    elif case == "space in number":
        base["destination_number"] = "+1555 1230001"
    elif case == "bridge in number":
        base["destination_number"] = "&bridge(user/1000)"
    elif case == "string timeout":
        base["timeout_s"] = "30"
    return "originate", json.dumps(base).encode()


@pytest.mark.parametrize(("case", "raw", "code"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_answered_dead_lettered_and_never_reaches_freeswitch(
    worker: Worker, probe: Probe, tenant: str, simulator: Simulator, amqp_url: str,
    case: str, raw: bytes | None, code: str,
) -> None:
    dead_letters(amqp_url)  # start from an empty dead-letter queue
    command_type, body = ("originate", raw) if raw is not None else _bad_body(case)
    before = len(simulator.received_commands())
    correlation = probe.publish_raw(f"{tenant}.{command_type}", body)
    reply = probe.reply_for(None, correlation_id=correlation)
    assert reply["ok"] is False and reply["error"]["code"] == code
    assert reply["v"] == 1 and reply["error"]["message"]
    letters = dead_letters(amqp_url)
    assert len(letters) == 1
    properties, dead_body = letters[0]
    assert dead_body == body
    assert properties.headers["x-callworker-error"].startswith(code)
    assert not any("originate" in line for line in simulator.received_commands()[before:])
    # The worker keeps going.
    call_id = originate(probe, tenant, "+15551230200")["result"]["call_id"]
    probe.call_events_until_terminal(call_id)


def test_expired_command_is_not_executed(
    worker: Worker, probe: Probe, tenant: str, simulator: Simulator, amqp_url: str
) -> None:
    dead_letters(amqp_url)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    sent = probe.send(tenant, "originate", destination_number="+15551230001", expires_at=past)
    assert probe.reply_for(sent["command_id"])["error"]["code"] == "COMMAND_EXPIRED"
    stale = {"v": 1, "command_id": str(uuid.uuid4()), "type": "originate", "destination_number": "+15551230001"}
    old = int(datetime.now(UTC).timestamp()) - 3600
    correlation = probe.publish_raw(f"{tenant}.originate", json.dumps(stale).encode(), timestamp=old)
    assert probe.reply_for(None, correlation_id=correlation)["error"]["code"] == "COMMAND_EXPIRED"
    assert len(dead_letters(amqp_url)) == 2
    assert not any("originate" in line for line in simulator.received_commands())


def test_on_the_sqlite_default_events_arrive_in_seq_order(
    simulator: Simulator, amqp_url: str, tmp_path: Any, tenant: str, probe: Probe
) -> None:
    from tests.integration.conftest import make_settings, start_worker

    worker = start_worker(make_settings(simulator, f"sqlite:///{tmp_path / 'cw.sqlite3'}", amqp_url))
    try:
        ids = []
        for number in ("+15551230200", "+15551230486", "+15551230200"):
            ids.append(originate(probe, tenant, number)["result"]["call_id"])
        arrived: list[Received] = []
        while sum(e["type"] == "call.cdr" for e in arrived) < len(ids):
            arrived.append(probe.event(lambda e: e.get("call_id") in ids))
        for call_id in ids:
            events = [e for e in arrived if e["call_id"] == call_id]
            assert_well_formed(events, tenant, worker.settings.node_id)
    finally:
        worker.stop()


def test_replies_go_only_to_queues_the_tenant_may_use(
    worker: Worker, probe: Probe, tenant: str, amqp_url: str
) -> None:
    import pika

    dead_letters(amqp_url)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        other = f"zz{tenant}.replies"
        channel.queue_declare(other, exclusive=True)
        body = {"v": 1, "command_id": str(uuid.uuid4()), "type": "call.list"}
        channel.basic_publish(
            "callworker.commands", f"{tenant}.call.list", json.dumps(body).encode(),
            pika.BasicProperties(reply_to=other, delivery_mode=2),
        )
        letters: list[Any] = []
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while not letters:
            assert datetime.now(UTC) < deadline, "the command was never dead-lettered"
            connection.process_data_events(time_limit=0.05)  # wait a moment, serving pika
            letters = dead_letters(amqp_url)
        assert letters[0][0].headers["x-callworker-error"].startswith("VALIDATION_ERROR")
        assert channel.basic_get(other, auto_ack=True)[0] is None  # nothing was answered there
    finally:
        connection.close()
    # A queue named after the tenant is fine.
    assert command(probe, tenant, "call.list")["ok"]
