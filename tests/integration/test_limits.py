"""Limits end to end: checked before FreeSWITCH, answered, never dead-lettered, shared by nodes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.simulator import Simulator
from callworker.store import get_order
from tests.integration.conftest import dead_letters, make_settings, start_worker
from tests.integration.test_policy_admin import command

pytestmark = pytest.mark.integration

Nodes = Callable[..., list[tuple[Worker, Simulator]]]


@pytest.fixture
def nodes(pg_url: str, amqp_url: str, tmp_path: Path) -> Iterator[Nodes]:
    """Start ``count`` workers (each with its own simulator) under one policy file."""
    started: list[tuple[Worker, Simulator]] = []

    def start(policy: str, count: int = 1, **overrides: Any) -> list[tuple[Worker, Simulator]]:
        path = tmp_path / f"policy-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(policy)
        for _ in range(count):
            sim = Simulator("127.0.0.1", 0, "ClueCon", ring_delay=0.02, answer_delay=0.05)
            sim.start()
            worker = start_worker(make_settings(sim, pg_url, amqp_url, policy_file=path, **overrides))
            started.append((worker, sim))
        return started[-count:]

    yield start
    for worker, sim in started:
        worker.stop()
        sim.stop()


def originate(probe: Probe, tenant: str, number: str = "+15551230001", **fields: Any) -> Received:
    return probe.reply_for(probe.send(tenant, "originate", destination_number=number, **fields)["command_id"])


def dialled(*sims: Simulator) -> list[str]:
    return [line for sim in sims for line in sim.received_commands() if line.startswith("bgapi originate")]


def assert_limited(reply: Received, limit: str, scope: str = "tenant", code: str = "RATE_LIMITED") -> dict[str, Any]:
    assert reply["ok"] is False, reply
    error = reply["error"]
    assert (error["code"], error["details"]["limit"], error["details"]["scope"]) == (code, limit, scope), error
    return dict(error["details"])


def test_a_call_past_the_minute_is_refused_before_freeswitch_and_not_dead_lettered(
    nodes: Nodes, probe: Probe, tenant: str, amqp_url: str
) -> None:
    [(_worker, sim)] = nodes(f"tenants:\n  {tenant}:\n    calls_per_minute: 2\n")
    dead_letters(amqp_url)
    assert originate(probe, tenant)["ok"] and originate(probe, tenant)["ok"]
    call_id = str(uuid.uuid4())
    details = assert_limited(originate(probe, tenant, call_id=call_id), "calls_per_minute")
    assert 1 <= details["retry_after_s"] <= 60
    assert len(dialled(sim)) == 2 and not any(call_id in line for line in sim.received_commands())
    assert dead_letters(amqp_url) == []
    # Its call id was never taken: call.get knows no such call.
    assert probe.reply_for(probe.send(tenant, "call.get", call_id=call_id)["command_id"])["error"]["code"] == \
        "CALL_NOT_FOUND"


def test_a_refused_originate_delivered_again_gets_its_first_reply(
    nodes: Nodes, probe: Probe, tenant: str
) -> None:
    [(_worker, sim)] = nodes(f"tenants:\n  {tenant}:\n    calls_per_day: 1\n")
    assert originate(probe, tenant)["ok"]
    command_id = str(uuid.uuid4())
    body = {"v": 1, "command_id": command_id, "type": "originate", "destination_number": "+15551230002"}
    probe.publish_raw(f"{tenant}.originate", json.dumps(body).encode())
    first = probe.reply_for(command_id)
    assert_limited(first, "calls_per_day")
    # The operator lifts the limit; the same command comes again: not executed.
    assert command(probe, "admin", "policy.set", tenant=tenant, calls_per_day=100)["ok"]
    probe.publish_raw(f"{tenant}.originate", json.dumps(body).encode())
    again = probe.reply_for(command_id)
    assert {k: v for k, v in again.items() if k != "_amqp"} == {k: v for k, v in first.items() if k != "_amqp"}
    assert len(dialled(sim)) == 1
    assert originate(probe, tenant)["ok"]  # a new command passes now


def test_permissions_and_user_limits_set_by_the_operator_apply_at_once(
    nodes: Nodes, probe: Probe, tenant: str
) -> None:
    [(_worker, sim)] = nodes(f"tenants:\n  {tenant}:\n    users:\n      alice: {{can_call: false}}\n")
    details = assert_limited(originate(probe, tenant, user_id="alice"), "can_call", "user", "PERMISSION_DENIED")
    assert "retry_after_s" not in details
    assert originate(probe, tenant, user_id="bob")["ok"]
    assert command(probe, "admin", "policy.set", tenant=tenant, user_id="bob", max_concurrent=1)["ok"]
    assert_limited(originate(probe, tenant, user_id="bob"), "max_concurrent", "user")
    assert command(probe, "admin", "policy.set", tenant=tenant, can_call=False)["ok"]
    assert_limited(originate(probe, tenant, user_id="carol"), "can_call", "tenant", "PERMISSION_DENIED")
    assert len(dialled(sim)) == 1


def test_two_nodes_share_the_counts_through_the_database(
    nodes: Nodes, probe: Probe, tenant: str
) -> None:
    two = nodes(f"tenants:\n  {tenant}:\n    max_concurrent: 5\n    calls_per_minute: 1000\n", count=2, prefetch=2)
    sims = [sim for _worker, sim in two]
    sent = [probe.send(tenant, "originate", destination_number="+15551230001") for _ in range(16)]
    replies = [probe.reply_for(body["command_id"]) for body in sent]
    placed = [r for r in replies if r["ok"]]
    assert len(placed) == 5, [r.get("error") for r in replies]
    for reply in replies:
        if not reply["ok"]:
            assert_limited(reply, "max_concurrent")
    assert len(dialled(*sims)) == 5
    assert all(worker.intake.handled > 0 for worker, _sim in two)  # both nodes took originates
    # An ended call frees a slot for either node.
    ended = placed[0]["result"]["call_id"]
    assert probe.reply_for(probe.send(tenant, "hangup", call_id=ended)["command_id"])["ok"]
    probe.event(lambda e: e.get("call_id") == ended and e["type"] == "call.cdr", timeout=15)
    assert originate(probe, tenant)["ok"]
    assert_limited(originate(probe, tenant), "max_concurrent")


def test_the_counts_survive_a_restart(nodes: Nodes, probe: Probe, tenant: str, pg_url: str, amqp_url: str) -> None:
    policy = f"tenants:\n  {tenant}:\n    calls_per_day: 2\n"
    [(worker, sim)] = nodes(policy)
    assert originate(probe, tenant, "+15551230200")["ok"]
    assert originate(probe, tenant, "+15551230200")["ok"]
    worker.stop()
    [(_again, sim2)] = nodes(policy)
    assert_limited(originate(probe, tenant), "calls_per_day")
    assert dialled(sim2) == []


def test_flash_calls_count_toward_the_tenants_limits(nodes: Nodes, probe: Probe, tenant: str) -> None:
    [(_worker, sim)] = nodes(f"tenants:\n  {tenant}:\n    calls_per_minute: 2\n    users:\n"
                             f"      eve: {{can_call: false}}\n",
                             flashcall_resend_cooldown_s=0)
    assert originate(probe, tenant)["ok"]
    created = probe.reply_for(probe.send(tenant, "flashcall.create", phone="+15557654321",
                                         user_id="frank")["command_id"])
    assert created["ok"], created
    order = get_order(_worker.engine, tenant, created["result"]["id"])
    assert order is not None and order["user_id"] == "frank"
    refused = probe.reply_for(probe.send(tenant, "flashcall.create", phone="+15557654322")["command_id"])
    assert_limited(refused, "calls_per_minute")
    denied = probe.reply_for(probe.send(tenant, "flashcall.create", phone="+15557654323", user_id="eve")["command_id"])
    assert_limited(denied, "can_call", "user", "PERMISSION_DENIED")
    assert len(dialled(sim)) == 2


def test_concurrent_originates_at_the_cap_are_sorted_without_loss(
    nodes: Nodes, probe: Probe, tenant: str
) -> None:
    [(worker, sim)] = nodes(f"tenants:\n  {tenant}:\n    calls_per_minute: 7\n")
    sent = [probe.send(tenant, "originate", destination_number="+15551230200") for _ in range(20)]
    replies = [probe.reply_for(body["command_id"]) for body in sent]
    assert sum(r["ok"] for r in replies) == 7
    assert len(dialled(sim)) == 7
    assert worker.esl.connected and worker.journal.healthy
