"""privacy.export and privacy.erase end to end: after an erase the value is nowhere in the database.

The erase reaches live calls too: their later events and CDR, on whichever node
holds them, carry the erased value.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import gevent.event
import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.simulator import Simulator
from tests.component.test_store_privacy import dump
from tests.integration.conftest import running_nodes

pytestmark = pytest.mark.integration


def send(probe: Probe, tenant: str, command_type: str, **fields: Any) -> Received:
    return probe.reply_for(probe.send(tenant, command_type, **fields)["command_id"])


def place(probe: Probe, tenant: str, number: str, **fields: Any) -> str:
    call_id = str(uuid.uuid4())
    assert send(probe, tenant, "originate", destination_number=number, call_id=call_id, **fields)["ok"]
    probe.event(lambda e: e.get("call_id") == call_id and e["type"] == "call.answered", timeout=15)
    return call_id


def hang_up_and_wait(probe: Probe, tenant: str, call_id: str) -> Received:
    assert send(probe, tenant, "hangup", call_id=call_id)["ok"]
    return probe.event(lambda e: e.get("call_id") == call_id and e["type"] == "call.cdr", timeout=15)


def settled_dump(*workers: Worker, timeout: float = 15.0) -> str:
    """Every table once the outbox is published (its rows are deleted as the broker confirms them)."""
    for worker in workers:
        assert worker.relay.flush(timeout), "the outbox did not drain"
    return dump(workers[0].engine)


def a_number() -> str:
    return "+1555" + str(uuid.uuid4().int)[:6] + "0001"  # ends 0001: answers and stays up


def test_an_erased_number_is_nowhere_and_its_live_call_ends_erased(
    worker: Worker, probe: Probe, tenant: str
) -> None:
    number = a_number()
    digits = number.lstrip("+")
    ended = place(probe, tenant, number)
    hang_up_and_wait(probe, tenant, ended)
    live = place(probe, tenant, number, user_id="keeper")
    created = send(probe, tenant, "flashcall.create", phone=number)
    assert created["ok"], created
    probe.event(lambda e: e.get("order_id") == created["result"]["id"] and e["type"] == "flashcall.answered",
                timeout=15)
    assert digits in str(send(probe, tenant, "call.get", call_id=live)["result"])  # a reply naming it

    exported = send(probe, tenant, "privacy.export", phone_number=number)["result"]
    assert {c["call_id"] for c in exported["calls"]} >= {ended, live}
    assert ended in {c["call_id"] for c in exported["cdrs"]}
    [order] = exported["flashcall_orders"]
    assert order["id"] == created["result"]["id"] and order["phone"] == number
    assert "code_hmac" not in order and order["cid"]["mask"].endswith("****")

    erased = send(probe, tenant, "privacy.erase", phone_number=number)
    assert erased["ok"], erased
    counts = erased["result"]["erased"]
    assert counts["calls"] == 3 and counts["flashcall_orders"] == 1  # two calls and the flash call
    assert counts["cdrs"] >= 1 and counts["events"] >= 6
    assert digits not in str(erased)

    snapshot = send(probe, tenant, "call.get", call_id=live)["result"]
    assert snapshot["destination_number"].startswith("erased:") and snapshot["status"] == "answered"
    cdr = hang_up_and_wait(probe, tenant, live)  # FreeSWITCH's CDR of it still says the number
    assert digits not in str(cdr) and cdr["data"]["destination_number"] == snapshot["destination_number"]
    assert cdr["data"]["user_id"] == "keeper"
    everything = settled_dump(worker)
    assert digits not in everything
    assert snapshot["destination_number"] in everything


def test_an_erased_user_is_nowhere(worker: Worker, probe: Probe, tenant: str) -> None:
    user = f"user-{uuid.uuid4().hex[:10]}"
    call_id = place(probe, tenant, a_number(), user_id=user)
    hang_up_and_wait(probe, tenant, call_id)
    listed = send(probe, tenant, "call.list", user_id=user)["result"]["calls"]
    assert [c["call_id"] for c in listed] == [call_id]
    assert [c["user_id"] for c in send(probe, tenant, "cdr.list", user_id=user)["result"]["cdrs"]] == [user]
    exported = send(probe, tenant, "privacy.export", user_id=user)["result"]
    assert [c["call_id"] for c in exported["calls"]] == [call_id]
    erased = send(probe, tenant, "privacy.erase", user_id=user)
    assert erased["result"]["erased"]["calls"] == 1 and erased["result"]["erased"]["cdrs"] == 1
    assert user not in settled_dump(worker)
    assert send(probe, tenant, "call.list", user_id=user)["result"]["calls"] == []


def test_another_tenant_erases_and_exports_nothing_of_this_one(worker: Worker, probe: Probe, tenant: str) -> None:
    number = a_number()
    call_id = place(probe, tenant, number)
    hang_up_and_wait(probe, tenant, call_id)
    other = f"o{uuid.uuid4().hex[:8]}"
    assert send(probe, other, "privacy.export", phone_number=number)["result"]["calls"] == []
    erased = send(probe, other, "privacy.erase", phone_number=number)["result"]["erased"]
    assert erased == {"calls": 0, "cdrs": 0, "events": 0, "flashcall_orders": 0}
    assert send(probe, tenant, "call.get", call_id=call_id)["result"]["destination_number"] == number


@pytest.fixture
def two_nodes(pg_url: str, amqp_url: str) -> Iterator[list[tuple[Worker, Simulator]]]:
    # One delivery at a time: each node takes its share of the commands.
    with running_nodes(pg_url, amqp_url, prefetch=1) as nodes:
        yield nodes


def test_live_calls_on_every_node_end_erased(
    two_nodes: list[tuple[Worker, Simulator]], probe: Probe, tenant: str
) -> None:
    number = a_number()
    digits = number.lstrip("+")
    calls: list[str] = []
    while len({node for node in _nodes_holding(two_nodes, calls)}) < 2:  # one call or more on each node
        assert len(calls) < 30, "the calls never spread over both nodes"
        calls.append(place(probe, tenant, number))
    assert send(probe, tenant, "privacy.erase", phone_number=number)["ok"]
    workers = [worker for worker, _sim in two_nodes]
    for worker in workers:  # each node erased the calls it holds (one by its command, one by the record)
        deadline = time.monotonic() + 10
        while any(c.destination_number == number for c in worker.journal.calls.values()):
            assert time.monotonic() < deadline, "a node kept the number in memory"
            gevent.event.Event().wait(0.05)  # a short cooperative wait between polls
    for call_id in calls:
        cdr = hang_up_and_wait(probe, tenant, call_id)
        assert digits not in str(cdr)
    assert digits not in settled_dump(*workers)


def _nodes_holding(nodes: list[tuple[Worker, Simulator]], calls: list[str]) -> set[str]:
    return {worker.settings.node_id for worker, _sim in nodes for c in calls if worker.journal.knows(c)}


def test_a_number_a_click_to_call_is_yet_to_place_is_erased_too(worker: Worker, probe: Probe, tenant: str) -> None:
    number = a_number()
    digits = number.lstrip("+")
    first = str(uuid.uuid4())
    # The user's own phone rings (…0180 rings long); the party they asked for waits in its connection.
    placed = send(probe, tenant, "originate", destination_number="+15551230180", call_id=first,
                  connect={"to": "number", "destination_number": number})
    assert placed["ok"], placed
    probe.event(lambda e: e.get("call_id") == first and e["type"] == "call.ringing", timeout=15)

    erased = send(probe, tenant, "privacy.erase", phone_number=number)
    assert erased["ok"], erased
    assert erased["result"]["erased"]["calls"] >= 1
    assert digits not in settled_dump(worker)
    hang_up_and_wait(probe, tenant, first)  # written again as it ends: still erased
    assert digits not in settled_dump(worker)
