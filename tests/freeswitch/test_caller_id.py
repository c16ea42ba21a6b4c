"""The caller ID a carrier receives from the real switch, with and without ``privacy``.

What the callee's network shows comes from the INVITE's From header; a carrier that is
told to withhold it (RFC 3325 ``Privacy: id``) still needs the real number, which it
reads from ``P-Asserted-Identity``. The fake carrier is a FreeSWITCH profile, so its leg's
variables (``sip_from_*``, ``sip_P-Asserted-Identity``, ``sip_Privacy``) are the headers
it received.
"""

from __future__ import annotations

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from callworker.esl.codec import Event
from tests.freeswitch.realswitch import EslClient
from tests.freeswitch.steps import command, originate, wait_type

pytestmark = pytest.mark.freeswitch

CALLER = "+15550002222"
NAME = "Front Desk"


def carrier_leg_created(switch_events: EslClient, number: str) -> Event:
    """The far end's CHANNEL_CREATE: the INVITE as the carrier received it."""
    return switch_events.event(
        lambda e: e.name == "CHANNEL_CREATE" and (e.get("Channel-Name") or "").startswith("sofia/carrier/")
        and e.get("Caller-Destination-Number") == number
    )


def place_and_end(probe: Probe, tenant: str, number: str, switch_events: EslClient, **fields: object) -> Event:
    call_id = originate(probe, tenant, number, caller_id_number=CALLER, caller_id_name=NAME, **fields)
    far = carrier_leg_created(switch_events, number)
    wait_type(probe, call_id, "call.answered")
    command(probe, tenant, "hangup", call_id=call_id)
    probe.call_events_until_terminal(call_id)
    return far


def test_a_private_call_shows_no_number_and_gives_the_carrier_an_asserted_one(
    fs_worker: Worker, probe: Probe, tenant: str, switch_events: EslClient,
) -> None:
    far = place_and_end(probe, tenant, "+15551230011", switch_events, privacy=True)
    # The From header, which the callee's phone would show: anonymous, name and number.
    assert far["variable_sip_from_user"] == "anonymous"
    assert far["variable_sip_from_display"] == "Anonymous"
    assert far["variable_sip_from_uri"] == "anonymous@anonymous.invalid"
    assert CALLER.lstrip("+") not in far["Channel-Name"]
    # No Remote-Party-ID beside it (it would carry the number in clear).
    assert far.get("variable_sip_Remote-Party-ID") is None
    # RFC 3325: the carrier learns the number, and that it must be withheld.
    assert far["variable_sip_Privacy"] == "id"
    assert far["variable_sip_P-Asserted-Identity"] == CALLER
    assert far["Caller-Caller-ID-Number"] == CALLER
    assert far["Caller-Privacy-Hide-Number"] == "true" and far["Caller-Privacy-Hide-Name"] == "true"


def test_without_privacy_the_caller_id_sent_arrives(
    fs_worker: Worker, probe: Probe, tenant: str, switch_events: EslClient,
) -> None:
    far = place_and_end(probe, tenant, "+15551230012", switch_events)
    assert far["variable_sip_from_user"] == CALLER and far["variable_sip_from_display"] == NAME
    assert far["Caller-Caller-ID-Number"] == CALLER and far["Caller-Caller-ID-Name"] == NAME
    assert far["Caller-Privacy-Hide-Number"] == "false" and far["Caller-Privacy-Hide-Name"] == "false"
    assert far.get("variable_sip_Privacy") is None
