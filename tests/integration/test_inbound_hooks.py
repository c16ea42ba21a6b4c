"""Inbound calls handed over by the dialplan and dialplan hooks, end to end: the
simulator places calls to the worker's outbound-socket server and fires CUSTOM
events; RabbitMQ carries commands and events; PostgreSQL holds the state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gevent.event
import pytest
from gevent.queue import Empty

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.calls.hooks import Hooks
from callworker.calls.inbound import InboundCalls
from callworker.esl.codec import Event
from callworker.esl.outbound import OutboundServer, OutboundSession
from callworker.simulator import Simulator
from tests.integration.conftest import make_settings, start_worker

pytestmark = pytest.mark.integration

TERMINAL = {"call.completed", "call.failed", "call.cancelled"}
CALLER, DID = "+15550001111", "+15552001234"


@dataclass
class Hooked:
    """A worker with its dialplan parts wired in: outbound-socket server, inbound calls, hooks."""

    worker: Worker
    server: OutboundServer
    inbound: InboundCalls
    hooks: Hooks

    def serve(self, on_session: Callable[[OutboundSession], Any]) -> OutboundServer:
        """Another outbound-socket server of this worker, with its own hand-over."""
        server = OutboundServer("127.0.0.1", 0, allow=self.worker.socket_peers.allows, on_session=on_session,
                                on_session_end=self.inbound.on_session_end)
        server.start()
        return server


@pytest.fixture
def hooked(simulator: Simulator, pg_url: str, amqp_url: str) -> Iterator[Hooked]:
    worker = start_worker(make_settings(
        simulator, pg_url, amqp_url, socket_host="127.0.0.1", socket_port=0,
        inbound_settle_after_s=0.3,
    ))
    yield Hooked(worker, worker.socket_server, worker.inbound, worker.hooks)
    worker.stop()


def call_in(simulator: Simulator, server: OutboundServer, **kwargs: Any) -> str:
    kwargs.setdefault("caller_id_number", CALLER)
    kwargs.setdefault("destination_number", DID)
    return simulator.place_inbound_call(*server.address, **kwargs)


def take(probe: Probe, call_id: str, event_type: str, seen: list[Received]) -> Received:
    event = probe.event(lambda e: e.get("call_id") == call_id and e["type"] == event_type)
    seen.append(event)
    return event


def rest_of_call(probe: Probe, call_id: str, seen: list[Received]) -> list[Received]:
    """Every event of the call, including those ``seen`` already, ordered by seq."""
    seen.extend(probe.call_events_until_terminal(call_id))
    return sorted(seen, key=lambda e: e["seq"])


def command(probe: Probe, tenant: str, command_type: str, **fields: Any) -> Received:
    sent = probe.send(tenant, command_type, **fields)
    return probe.reply_for(sent["command_id"])


def assert_one_life(events: list[Received], tenant: str, node: str) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert sum(e["type"] in TERMINAL for e in events) == 1
    assert events[-1]["type"] == "call.cdr"
    for e in events:
        assert (e["tenant"], e["node"]) == (tenant, node)
        assert e["_amqp"]["routing_key"] == f"{tenant}.{e['type']}.{e['call_id']}"


def drained(probe: Probe) -> list[Received]:
    """Whatever the probe holds right now (taken off its queue)."""
    items = []
    while True:
        try:
            items.append(probe.events.get_nowait())
        except Empty:
            return items


def test_the_worker_subscribes_all_narrowed_to_its_events_and_the_hooks(
    hooked: Hooked, simulator: Simulator
) -> None:
    lines = simulator.received_commands()
    assert "event plain ALL" in lines
    assert "filter Event-Subclass /^callworker::/" in lines
    assert "filter Event-Name CHANNEL_HANGUP_COMPLETE" in lines
    for media in ("PLAYBACK_START", "PLAYBACK_STOP", "RECORD_START", "RECORD_STOP", "DTMF"):
        assert f"filter Event-Name {media}" in lines


def test_inbound_call_is_announced_answered_held_muted_and_hung_up(
    hooked: Hooked, probe: Probe, tenant: str, simulator: Simulator
) -> None:
    node = hooked.worker.settings.node_id
    call_id = call_in(simulator, hooked.server, caller_id_name="Jane Caller",
                      variables={"callworker_tenant": tenant})
    seen: list[Received] = []
    initiated = take(probe, call_id, "call.initiated", seen)["data"]
    assert (initiated["direction"], initiated["status"], initiated["node"]) == ("inbound", "initiated", node)
    assert (initiated["destination_number"], initiated["caller_id_number"]) == (DID, CALLER)
    assert initiated["answered_at"] is None

    simulator.answer(call_id)
    assert take(probe, call_id, "call.answered", seen)["data"]["status"] == "answered"
    assert command(probe, tenant, "hold", call_id=call_id)["result"] == {"call_id": call_id, "on_hold": True}
    take(probe, call_id, "call.held", seen)
    command(probe, tenant, "hold", call_id=call_id, hold=False)
    take(probe, call_id, "call.unheld", seen)
    assert command(probe, tenant, "mute", call_id=call_id)["result"]["muted"] is True
    take(probe, call_id, "call.muted", seen)
    assert simulator.audio_state(call_id)["read"]["mute"] == 1

    hung = command(probe, tenant, "hangup", call_id=call_id)
    assert hung["result"] == {"call_id": call_id, "status": "answered"}
    events = rest_of_call(probe, call_id, seen)
    assert_one_life(events, tenant, node)
    assert events[-2]["type"] == "call.completed"
    cdr = events[-1]["data"]
    assert (cdr["direction"], cdr["missed_call"], cdr["hangup_cause"]) == ("inbound", False, "NORMAL_CLEARING")
    assert (cdr["caller_id_number"], cdr["destination_number"]) == (CALLER, DID)
    assert cdr["sip_hangup_disposition"] == "send_bye" and cdr["answer_stamp"]
    snapshot = command(probe, tenant, "call.get", call_id=call_id)["result"]
    assert (snapshot["status"], snapshot["direction"]) == ("completed", "inbound")


def test_tenant_is_default_when_the_dialplan_sets_none(
    hooked: Hooked, amqp_url: str, simulator: Simulator
) -> None:
    listener = Probe(amqp_url, event_bindings=("default.#",))
    try:
        call_id = call_in(simulator, hooked.server)
        initiated = listener.event(lambda e: e.get("call_id") == call_id)
        assert (initiated["type"], initiated["tenant"]) == ("call.initiated", "default")
        assert initiated["_amqp"]["routing_key"] == f"default.call.initiated.{call_id}"
        simulator.hangup(call_id)
        assert listener.call_events_until_terminal(call_id)[-1]["tenant"] == "default"
    finally:
        listener.close()


def test_a_call_the_caller_abandons_unanswered_is_a_missed_call(
    hooked: Hooked, probe: Probe, tenant: str, simulator: Simulator
) -> None:
    call_id = call_in(simulator, hooked.server, variables={"callworker_tenant": tenant})
    seen: list[Received] = []
    take(probe, call_id, "call.initiated", seen)
    simulator.hangup(call_id)
    events = rest_of_call(probe, call_id, seen)
    assert [e["type"] for e in events] == ["call.initiated", "call.failed", "call.cdr"]
    assert_one_life(events, tenant, hooked.worker.settings.node_id)
    assert events[1]["data"]["hangup_cause"] == "ORIGINATOR_CANCEL"
    cdr = events[2]["data"]
    assert cdr["missed_call"] is True and cdr["billsec"] == 0 and cdr["answer_stamp"] is None
    assert cdr["sip_hangup_disposition"] == "recv_cancel"


def test_an_unanswered_call_hung_up_by_command_is_cancelled_and_missed(
    hooked: Hooked, probe: Probe, tenant: str, simulator: Simulator
) -> None:
    call_id = call_in(simulator, hooked.server, variables={"callworker_tenant": tenant})
    seen: list[Received] = []
    take(probe, call_id, "call.initiated", seen)
    refused = command(probe, tenant, "hold", call_id=call_id)
    assert refused["error"]["code"] == "CALL_NOT_ACTIVE"
    assert command(probe, tenant, "hangup", call_id=call_id, cause="CALL_REJECTED")["ok"]
    events = rest_of_call(probe, call_id, seen)
    assert [e["type"] for e in events] == ["call.initiated", "call.cancelled", "call.cdr"]
    assert events[2]["data"]["missed_call"] is True
    assert events[2]["data"]["hangup_cause"] == "CALL_REJECTED"
    assert simulator.channel_vars(call_id)["sip_hangup_disposition"] == "send_refuse"


def test_a_call_answered_before_the_hand_over_starts_answered(
    hooked: Hooked, probe: Probe, tenant: str, simulator: Simulator
) -> None:
    call_id = call_in(simulator, hooked.server, answer=True, variables={"callworker_tenant": tenant})
    seen: list[Received] = []
    take(probe, call_id, "call.initiated", seen)
    answered = take(probe, call_id, "call.answered", seen)
    assert answered["seq"] == 2 and answered["data"]["answered_at"]
    simulator.hangup(call_id)
    events = rest_of_call(probe, call_id, seen)
    assert [e["type"] for e in events][-2:] == ["call.completed", "call.cdr"]
    assert events[-1]["data"]["missed_call"] is False
    assert events[-1]["data"]["sip_hangup_disposition"] == "recv_bye"


def test_a_dialplan_hook_is_republished_with_its_headers_and_the_next_seq(
    hooked: Hooked, probe: Probe, tenant: str, simulator: Simulator
) -> None:
    call_id = call_in(simulator, hooked.server, variables={"callworker_tenant": tenant})
    seen: list[Received] = []
    initiated = take(probe, call_id, "call.initiated", seen)
    # Someone else's call on the same switch: parked on a socket, unknown to the journal.
    stranger_server = hooked.serve(lambda session: True)
    try:
        stranger = call_in(simulator, stranger_server)
        # Not republished: another subclass, a bad hook name, a call the worker does not hold.
        simulator.fire_custom(call_id, "sofia::register", {"profile-name": "external"})
        simulator.fire_custom(call_id, "callworker::bad.name", {"x": "1"})
        simulator.fire_custom(stranger, "callworker::survey_done", {"survey_score": "1"})
        simulator.fire_custom(call_id, "callworker::survey_done",
                              {"survey_score": "5", "survey_id": "s-42", "comment": "great & fast"})
        hook = take(probe, call_id, "hook.survey_done", seen)
    finally:
        stranger_server.stop()
    assert hook["_amqp"]["routing_key"] == f"{tenant}.hook.survey_done.{call_id}"
    assert hook["data"] == {"survey_score": "5", "survey_id": "s-42", "comment": "great & fast"}
    assert hook["seq"] == initiated["seq"] + 1
    assert (hook["tenant"], hook["node"]) == (tenant, hooked.worker.settings.node_id)
    assert not [e for e in drained(probe) if e["type"].startswith("hook.")]
    simulator.hangup(call_id)
    events = rest_of_call(probe, call_id, seen)
    assert_one_life(events, tenant, hooked.worker.settings.node_id)
    assert [e["type"] for e in events] == ["call.initiated", "hook.survey_done", "call.failed", "call.cdr"]


def test_an_invalid_tenant_refuses_the_call(
    hooked: Hooked, amqp_url: str, simulator: Simulator
) -> None:
    everything = Probe(amqp_url, event_bindings=("#",))
    try:
        refused = call_in(simulator, hooked.server, variables={"callworker_tenant": "Not A Tenant"})
        assert simulator.wait_ended(refused, 10)
        assert simulator.channel_vars(refused)["hangup_cause"] == "NORMAL_TEMPORARY_FAILURE"
        assert hooked.server.refused == 1
        # A call placed afterwards is announced; nothing was for the refused one.
        later = call_in(simulator, hooked.server)
        everything.event(lambda e: e.get("call_id") == later and e["type"] == "call.initiated")
        assert not [e for e in drained(everything) if e.get("call_id") == refused]
        simulator.hangup(later)
    finally:
        everything.close()


def test_a_caller_who_hangs_up_during_the_hand_over_still_ends_once(
    hooked: Hooked, probe: Probe, tenant: str, simulator: Simulator
) -> None:
    worker = hooked.worker
    drained_pump = gevent.event.Event()
    worker.pump.on("TEST_PUMP_DRAINED", lambda event: drained_pump.set())

    def late(session: OutboundSession) -> bool:
        # The caller is gone before the journal opens the call, so FreeSWITCH's
        # hangup events pass the pump for a call it does not know yet.
        simulator.hangup(session.uuid)
        assert simulator.wait_ended(session.uuid, 5)
        worker.esl.api("status")  # events fired before it are now in the pump's queue
        worker.esl_events.put(Event({"Event-Name": "TEST_PUMP_DRAINED"}, None, encoded=False))
        assert drained_pump.wait(5)
        return hooked.inbound.on_session(session)

    server = hooked.serve(late)
    try:
        call_id = call_in(simulator, server, variables={"callworker_tenant": tenant})
        events = probe.call_events_until_terminal(call_id)
    finally:
        server.stop()
    assert [e["type"] for e in events] == ["call.initiated", "call.failed", "call.cdr"]
    assert_one_life(events, tenant, worker.settings.node_id)
    assert events[-1]["data"]["missed_call"] is True
    assert hooked.inbound.settled == 1
    assert call_id not in worker.journal.calls


def test_concurrent_inbound_calls_each_end_once(
    hooked: Hooked, probe: Probe, tenant: str, simulator: Simulator
) -> None:
    calls = [call_in(simulator, hooked.server, destination_number=f"+1555200{n:04d}",
                     variables={"callworker_tenant": tenant}) for n in range(20)]
    for call_id in calls:
        probe.event(lambda e, c=call_id: e.get("call_id") == c and e["type"] == "call.initiated")
    for n, call_id in enumerate(calls):
        if n % 2:
            simulator.answer(call_id)
        simulator.hangup(call_id)
    for n, call_id in enumerate(calls):
        events = probe.call_events_until_terminal(call_id)
        assert events[-1]["data"]["missed_call"] is (n % 2 == 0)
        assert sum(e["type"] in TERMINAL for e in events) == 1
