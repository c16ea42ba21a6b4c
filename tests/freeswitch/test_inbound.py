"""A carrier call into the shipped public context, handed over to the worker by the dialplan's
``socket`` application, on the real switch.

The fake carrier places the call (``originate sofia/carrier/<number>@<switch>``), so its
leg is the caller; the switch's external profile takes it into context ``public``, which
sets the tenant, answers and hands it to the worker's socket server (the port the shipped
dialplan points at). From then on the call is the worker's like any other.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from tests.freeswitch.realswitch import EslClient, RealSwitch
from tests.freeswitch.steps import assert_well_formed, command, wait_type

pytestmark = pytest.mark.freeswitch


@pytest.fixture
def inbound_probe(amqp_url: str) -> Iterator[Probe]:
    """Events of the tenants the shipped dialplan gives inbound calls."""
    p = Probe(amqp_url, event_bindings=("acme.#", "default.#"))
    yield p
    p.close()


def call_in(switch: RealSwitch, number: str, caller: str) -> str:
    """The carrier calls ``number`` at the switch; the caller's leg's uuid."""
    far = str(uuid.uuid4())
    reply = switch.api(
        f"bgapi originate {{origination_uuid={far},origination_caller_id_number={caller},originate_timeout=10}}"
        f"sofia/carrier/{number}@127.0.0.1:{switch.ports.sip} &park()"
    )
    assert reply.startswith("+OK"), reply
    return far


def caller_leg(switch_events: EslClient, far: str, event_name: str) -> Received:
    return switch_events.event(lambda e: e.name == event_name and e.get("Unique-ID") == far)  # type: ignore[return-value]


@pytest.mark.parametrize(("number", "tenant"), [("+15552000001", "acme"), ("74951230001", "default")])
def test_a_carrier_call_is_answered_handed_over_and_fully_controllable(
    fs_worker: Worker, inbound_probe: Probe, real_switch: RealSwitch, switch_events: EslClient,
    number: str, tenant: str,
) -> None:
    probe = inbound_probe
    caller = f"+1666{secrets.randbelow(10**7):07d}"
    far = call_in(real_switch, number, caller)
    initiated = probe.event(lambda e: e["type"] == "call.initiated" and e["data"]["caller_id_number"] == caller, 15)
    call_id = initiated["call_id"]
    assert initiated["tenant"] == tenant and initiated["data"]["direction"] == "inbound"
    assert initiated["data"]["destination_number"] == number

    # Answered by the dialplan before the hand-over: the caller is not left in silence.
    answered = wait_type(probe, call_id, "call.answered")
    assert answered["occurred_at"] <= initiated["occurred_at"]
    caller_leg(switch_events, far, "CHANNEL_ANSWER")

    seen = [initiated, answered]
    assert command(probe, tenant, "hold", call_id=call_id)["result"] == {"call_id": call_id, "on_hold": True}
    seen.append(wait_type(probe, call_id, "call.held"))
    assert seen[-1]["data"]["held_by"] == "us"
    assert command(probe, tenant, "hold", call_id=call_id, hold=False)["result"]["on_hold"] is False
    seen.append(wait_type(probe, call_id, "call.unheld"))
    assert seen[-1]["data"]["status"] == "answered"
    assert command(probe, tenant, "mute", call_id=call_id)["result"] == {"call_id": call_id, "muted": True}
    seen.append(wait_type(probe, call_id, "call.muted"))
    assert command(probe, tenant, "mute", call_id=call_id, muted=False)["result"]["muted"] is False
    seen.append(wait_type(probe, call_id, "call.unmuted"))

    assert command(probe, tenant, "hangup", call_id=call_id)["result"]["status"] == "answered"
    events = sorted(seen + probe.call_events_until_terminal(call_id), key=lambda e: e["seq"])
    assert [e["type"] for e in events] == [
        "call.initiated", "call.answered", "call.held", "call.unheld", "call.muted", "call.unmuted",
        "call.completed", "call.cdr",
    ]
    assert_well_formed(events, tenant, fs_worker.settings.node_id)
    cdr = events[-1]["data"]
    assert cdr["direction"] == "inbound" and cdr["tenant"] == tenant and cdr["missed_call"] is False
    assert cdr["caller_id_number"] == caller and cdr["destination_number"] == number
    assert cdr["hangup_cause"] == "NORMAL_CLEARING" and cdr["answer_stamp"] and cdr["billsec"] >= 0
    # The caller is hung up on: FreeSWITCH sent the carrier a BYE.
    ended = caller_leg(switch_events, far, "CHANNEL_HANGUP_COMPLETE")
    assert ended["variable_sip_hangup_disposition"] == "recv_bye"
