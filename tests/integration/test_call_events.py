"""``call.events``: a consumer heals a gap by asking for the stored events, as they were published."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe, Received

pytestmark = pytest.mark.integration


def ask(probe: Probe, tenant: str, **fields: Any) -> Received:
    return probe.reply_for(probe.send(tenant, "call.events", **fields)["command_id"])


def plain(event: Received) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "_amqp"}


def test_the_stored_events_are_those_published_in_seq_order(worker: Worker, probe: Probe, tenant: str) -> None:
    call_id = str(uuid.uuid4())
    assert probe.reply_for(probe.send(tenant, "originate", destination_number="+15551230200",
                                      call_id=call_id)["command_id"])["ok"]
    published = [plain(e) for e in probe.call_events_until_terminal(call_id)]
    assert [e["seq"] for e in published] == list(range(1, len(published) + 1))
    replay = ask(probe, tenant, call_id=call_id)
    assert replay["ok"], replay
    assert replay["result"]["events"] == published  # same event_id, same everything
    assert replay["result"]["has_more"] is False
    # From a seq, a page at a time.
    page = ask(probe, tenant, call_id=call_id, from_seq=2, limit=2)["result"]
    assert page["events"] == published[1:3] and page["has_more"] is True
    rest = ask(probe, tenant, call_id=call_id, from_seq=4, limit=1000)["result"]
    assert rest["events"] == published[3:] and rest["has_more"] is False
    assert ask(probe, tenant, call_id=call_id, from_seq=len(published) + 1)["result"] == {
        "events": [], "has_more": False}


def test_an_orders_events_are_replayed_by_order_id(worker: Worker, probe: Probe, tenant: str) -> None:
    created = probe.reply_for(probe.send(tenant, "flashcall.create", phone="+15557651234")["command_id"])
    assert created["ok"], created
    order_id = created["result"]["id"]
    first = probe.event(lambda e: e.get("order_id") == order_id and e["type"] == "flashcall.created")
    replay = ask(probe, tenant, order_id=order_id)["result"]["events"]
    assert replay[0] == plain(first)
    assert all(e["order_id"] == order_id for e in replay)
    # An order's id is no call's.
    assert ask(probe, tenant, call_id=order_id)["error"]["code"] == "CALL_NOT_FOUND"
    assert ask(probe, tenant, order_id=str(uuid.uuid4()))["error"]["code"] == "ORDER_NOT_FOUND"


def test_another_tenant_gets_the_answer_for_a_call_that_never_was(
    worker: Worker, probe: Probe, tenant: str
) -> None:
    call_id = str(uuid.uuid4())
    assert probe.reply_for(probe.send(tenant, "originate", destination_number="+15551230486",
                                      call_id=call_id)["command_id"])["ok"]
    probe.call_events_until_terminal(call_id)
    other = f"o{uuid.uuid4().hex[:8]}"
    never = str(uuid.uuid4())
    theirs = ask(probe, other, call_id=call_id)
    baseline = ask(probe, other, call_id=never)
    assert theirs["error"] == {**baseline["error"], "details": {"call_id": call_id}}
    assert theirs["error"]["code"] == "CALL_NOT_FOUND"


@pytest.mark.parametrize(
    ("fields", "field"),
    [({}, "order_id"), ({"call_id": "x"}, "call_id"), ({"from_seq": 0}, "from_seq"), ({"limit": 1001}, "limit")],
)
def test_a_bad_ask_is_a_validation_error(worker: Worker, probe: Probe, tenant: str, fields: dict[str, Any],
                                         field: str) -> None:
    if field in ("from_seq", "limit"):
        fields = {"call_id": str(uuid.uuid4()), **fields}
    reply = ask(probe, tenant, **fields)
    assert reply["error"]["code"] == "VALIDATION_ERROR" and reply["error"]["details"]["field"] == field
