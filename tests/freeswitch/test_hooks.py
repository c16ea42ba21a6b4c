"""Dialplan hooks on the real switch: the ``event`` application, in both of its forms, on a
call the worker holds.

The worker's answered call is sent into the overlay context ``callworker_test_hooks``
(``uuid_transfer``, as a transfer to an IVR or a survey would), which fires
``callworker::survey_done`` as a CUSTOM event (``Event-Name=CUSTOM`` among its values)
and ``callworker::menu_choice`` without it, which FreeSWITCH fires as CHANNEL_APPLICATION,
then parks the call.
"""

from __future__ import annotations

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from tests.freeswitch.realswitch import RealSwitch
from tests.freeswitch.steps import assert_well_formed, command, originate, wait_type

pytestmark = pytest.mark.freeswitch


def test_both_forms_of_the_event_application_are_published_as_hooks(
    fs_worker: Worker, probe: Probe, tenant: str, real_switch: RealSwitch,
) -> None:
    call_id = originate(probe, tenant, "+15551230021")
    answered = wait_type(probe, call_id, "call.answered")
    assert real_switch.api(f"uuid_transfer {call_id} hooks XML callworker_test_hooks").startswith("+OK")

    custom = wait_type(probe, call_id, "hook.survey_done")
    assert custom["data"] == {"survey_score": "5", "survey_id": "s-42"}
    assert custom["_amqp"]["routing_key"] == f"{tenant}.hook.survey_done.{call_id}"
    application = wait_type(probe, call_id, "hook.menu_choice")
    assert application["data"] == {"digit": "2"}
    assert application["_amqp"]["routing_key"] == f"{tenant}.hook.menu_choice.{call_id}"

    # The call is still the worker's: it ends by command, its hooks in its own seq.
    command(probe, tenant, "hangup", call_id=call_id)
    events = [answered, custom, application, *probe.call_events_until_terminal(call_id)]
    events.sort(key=lambda e: e["seq"])
    assert [e["type"] for e in events] == [
        "call.initiated", "call.answered", "hook.survey_done", "hook.menu_choice", "call.completed", "call.cdr",
    ]
    assert_well_formed(events, tenant, fs_worker.settings.node_id)
