"""CHANNEL_PARK reaches the worker for a click-to-call's second call only.

Every call the worker places parks, and a CHANNEL_PARK carries every channel variable:
subscribed by name it would cost a large event per call. The worker's subscription (as
the simulator reads it, deciding before an event is built) passes a park only when the
channel carries the second call's variable.
"""

from __future__ import annotations

from callworker.calls.connect import CONNECT_FILTERS, CONNECT_SUBSCRIBED, PARTNER_VARIABLE
from callworker.calls.fsevents import SUBSCRIBED_EVENTS
from callworker.calls.hooks import hook_subscription
from callworker.calls.media_events import MEDIA_EVENTS
from callworker.simulator.subscription import Subscription

FIRST = "6dec9e25-fa56-45a9-bcf2-908870331727"


def workers_subscription() -> Subscription:
    events, filters = hook_subscription((*SUBSCRIBED_EVENTS, *CONNECT_SUBSCRIBED, *MEDIA_EVENTS))
    sub = Subscription()
    sub.add(list(events))
    for header, value in [*filters, *CONNECT_FILTERS]:
        sub.add_filter(header, value)
    return sub


def test_a_park_passes_only_for_a_second_call() -> None:
    sub = workers_subscription()
    plain = {"callworker_tenant": "acme"}
    second = {**plain, PARTNER_VARIABLE: FIRST}
    assert sub.wants("CHANNEL_PARK", None, plain.get) is False
    assert sub.wants("CHANNEL_PARK", None, second.get) is True
    # The call events themselves pass whatever the channel carries.
    assert sub.wants("CHANNEL_ANSWER", None, plain.get) is True
    assert sub.wants("CHANNEL_STATE", None, plain.get) is False
    # Without knowing the variables, the built event decides.
    assert sub.wants("CHANNEL_PARK", None) is True


def test_the_worker_never_subscribes_every_park_by_name() -> None:
    events, filters = hook_subscription((*SUBSCRIBED_EVENTS, *CONNECT_SUBSCRIBED, *MEDIA_EVENTS))
    assert ("Event-Name", "CHANNEL_PARK") not in filters and events == ("ALL",)
