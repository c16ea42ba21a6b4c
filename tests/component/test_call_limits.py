"""Limits before a call is placed: permissions, the minute, the day, calls up at once (SQLite).

The service, journal and limits are wired as the worker wires them; a fake port
stands in for FreeSWITCH and records every command that would reach it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import gevent
import pytest
from gevent.queue import Queue
from sqlalchemy import Engine

from callworker.bus.relay import OutboxItem
from callworker.calls.fsevents import EventPump
from callworker.calls.journal import Journal
from callworker.calls.service import CallService, Delivered
from callworker.contract import decode_command, utcnow
from callworker.policy import PolicyBook
from callworker.policy.limits import CallLimits
from callworker.store import Batch, get_call, get_command, make_engine, migrate, write_batch
from callworker.store.usage import placed, read_usage
from tests.component.test_call_service import FakePort, fs_event, sync

POLICY = """\
tenants:
  acme:
    calls_per_minute: 3
    max_concurrent: 5
    users:
      alice: {can_call: false}
      bob: {max_concurrent: 1, calls_per_day: 2}
  closed:
    can_call: false
"""


@dataclass
class Rig:
    service: CallService
    journal: Journal
    pump: EventPump
    port: FakePort
    engine: Engine
    policy: PolicyBook
    limits: CallLimits
    published: list[OutboxItem]

    def originate(self, tenant: str = "acme", **fields: Any) -> dict[str, Any]:
        fields.setdefault("destination_number", "+15551230001")
        return self.service.execute(command(tenant, "originate", **fields), Delivered("replies", None))

    def dialled(self) -> list[str]:
        return [line for line in self.port.sent if line.startswith("bgapi originate")]

    def hang_up(self, call_id: str) -> None:
        self.pump.handle(fs_event("CHANNEL_HANGUP_COMPLETE", call_id, **{"variable_hangup_cause": "NORMAL_CLEARING"}))
        sync(self.journal)


def command(tenant: str, command_type: str, **fields: Any) -> Any:
    body = {"v": 1, "command_id": str(uuid.uuid4()), "type": command_type, **fields}
    return decode_command(f"{tenant}.{command_type}", json.dumps(body).encode())


def build(engine: Engine, policy_path: Path, node: str = "fs1") -> Rig:
    policy = PolicyBook(engine, policy_path)
    policy.load()
    published: list[OutboxItem] = []
    journal = Journal(engine, node=node, notify=published.extend)
    journal.load()
    journal.rates = policy.rates
    limits = CallLimits(policy, engine)
    limits.attach(journal)
    journal.start()
    port = FakePort()
    service = CallService(journal=journal, port=port, engine=engine, node=node, gateways=("default",),
                          default_gateway="default", limits=limits)
    return Rig(service, journal, EventPump(Queue(), journal), port, engine, policy, limits, published)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'limits.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def rig(engine: Engine, policy_path: Path) -> Iterator[Rig]:
    rig = build(engine, policy_path)
    yield rig
    rig.journal.stop()


def refused(reply: dict[str, Any], code: str, limit: str, scope: str) -> dict[str, Any]:
    assert reply["ok"] is False, reply
    error = reply["error"]
    assert (error["code"], error["details"]["limit"], error["details"]["scope"]) == (code, limit, scope), error
    return dict(error["details"])


def test_a_tenant_or_user_not_allowed_to_call_is_denied_and_nothing_is_dialled(rig: Rig) -> None:
    details = refused(rig.originate("closed"), "PERMISSION_DENIED", "can_call", "tenant")
    assert "retry_after_s" not in details
    refused(rig.originate(user_id="alice"), "PERMISSION_DENIED", "can_call", "user")
    assert rig.dialled() == []
    assert rig.originate(user_id="carol")["ok"]  # a user without limits of their own: the tenant's
    assert len(rig.dialled()) == 1


def test_the_minute_refuses_the_call_past_the_limit_with_an_honest_wait(rig: Rig) -> None:
    placed = [rig.originate() for _ in range(3)]
    assert all(reply["ok"] for reply in placed)
    cmd = command("acme", "originate", destination_number="+15551230001", call_id=str(uuid.uuid4()))
    reply = rig.service.execute(cmd, Delivered("replies", "c9"))
    details = refused(reply, "RATE_LIMITED", "calls_per_minute", "tenant")
    # All three were placed within this second: the window frees 60 s after them.
    assert 58 <= details["retry_after_s"] <= 60
    assert len(rig.dialled()) == 3
    assert get_call(rig.engine, "acme", cmd.call_id) is None  # the call id stays free
    stored = get_command(rig.engine, "acme", cmd.command_id)
    assert stored is not None and stored["reply"] == reply  # a redelivery gets this reply
    answered = [i for i in rig.published if i.exchange == "" and i.correlation_id == "c9"]
    assert [json.loads(i.body)["error"]["code"] for i in answered] == ["RATE_LIMITED"]


def test_a_refused_command_delivered_again_is_not_executed_even_once_the_limit_lifted(rig: Rig) -> None:
    for _ in range(3):
        rig.originate()
    cmd = command("acme", "originate", destination_number="+15551230001")
    first = rig.service.execute(cmd, Delivered(None, None))
    assert first["error"]["code"] == "RATE_LIMITED"
    rig.policy.set("acme", None, {"calls_per_minute": 100})
    from callworker.errors import AlreadyStored

    with pytest.raises(AlreadyStored):  # the intake then replays the stored reply
        rig.service.execute(cmd, Delivered(None, None))
    assert len(rig.dialled()) == 3


def test_calls_up_at_once_are_capped_per_user_and_an_ended_call_frees_its_slot(rig: Rig) -> None:
    first = rig.originate(user_id="bob")
    assert first["ok"]
    details = refused(rig.originate(user_id="bob"), "RATE_LIMITED", "max_concurrent", "user")
    assert details["retry_after_s"] == 1
    assert rig.originate(user_id="dave")["ok"]  # bob's cap is bob's
    rig.hang_up(first["result"]["call_id"])
    assert read_usage(rig.engine, [("acme", "bob")])[("acme", "bob")].live == 0
    assert rig.originate(user_id="bob")["ok"]
    # bob's day: two calls.
    details = refused(rig.originate(user_id="bob"), "RATE_LIMITED", "calls_per_day", "user")
    now = utcnow()
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert abs(details["retry_after_s"] - (midnight - now).total_seconds()) <= 2


def test_the_database_refuses_what_another_node_already_counted(rig: Rig, engine: Engine) -> None:
    # Another node placed three calls this second: this node has not seen them.
    other = Batch(usage=[placed(("acme", ""), 3, utcnow(), {"minute_cap": 3, "day_cap": None, "live_cap": 5})])
    write_batch(engine, other)
    cmd = command("acme", "originate", destination_number="+15551230001", call_id=str(uuid.uuid4()))
    details = refused(rig.service.execute(cmd, Delivered(None, None)), "RATE_LIMITED", "calls_per_minute",
                      "tenant")
    assert 58 <= details["retry_after_s"] <= 60
    assert rig.dialled() == [] and get_call(engine, "acme", cmd.call_id) is None
    # Now this node knows: the next one is refused without asking the database.
    writes = rig.journal.batches
    refused(rig.originate(), "RATE_LIMITED", "calls_per_minute", "tenant")
    assert rig.journal.batches == writes + 1  # only the refusal's own record


def test_calls_placed_at_once_past_a_cap_are_sorted_by_the_database(rig: Rig) -> None:
    rig.policy.set("acme", None, {"calls_per_minute": 1000, "max_concurrent": 4})
    replies = [g.value for g in gevent.joinall([gevent.spawn(rig.originate) for _ in range(10)], raise_error=True)]
    placed = [r for r in replies if r["ok"]]
    assert len(placed) == 4 and len(rig.dialled()) == 4
    for reply in replies:
        if not reply["ok"]:
            refused(reply, "RATE_LIMITED", "max_concurrent", "tenant")
    assert read_usage(rig.engine, [("acme", "")])[("acme", "")].live == 4


def test_the_counts_survive_a_restart(engine: Engine, policy_path: Path) -> None:
    first = build(engine, policy_path)
    placed = first.originate(user_id="bob")
    assert placed["ok"]
    first.journal.stop()
    second = build(engine, policy_path)
    try:
        # bob's call is still up (this node holds it): his one slot is taken...
        refused(second.originate(user_id="bob"), "RATE_LIMITED", "max_concurrent", "user")
        assert second.dialled() == []  # ...known without asking the database
        second.hang_up(placed["result"]["call_id"])
        assert second.originate(user_id="bob")["ok"]
        refused(second.originate(user_id="bob"), "RATE_LIMITED", "calls_per_day", "user")
    finally:
        second.journal.stop()
