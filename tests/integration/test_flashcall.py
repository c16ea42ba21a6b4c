"""Flash calls end to end: commands over RabbitMQ, the simulator as FreeSWITCH, PostgreSQL.

The worker is wired here exactly as ``Worker`` wires the flash-call service (observer,
intake handlers, load, sweeper), unless ``Worker`` already does it itself.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gevent.queue import Empty
from sqlalchemy import inspect, text

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.calls.intake import Intake
from callworker.config import Settings
from callworker.flashcall import FlashcallService
from callworker.simulator import Simulator
from callworker.store import (
    Batch,
    get_order,
    latest_order_for_phone,
    live_orders,
    make_engine,
    migrate,
    order_history,
    write_batch,
)
from tests.integration.conftest import dead_letter_command_ids, make_settings

pytestmark = pytest.mark.integration

PREFIX = "7487260"
OK = {"success": True}
PHONE = "+15551234567"
FLASH_DEFAULTS: dict[str, Any] = {
    "flashcall_cid_prefixes": (PREFIX,), "flashcall_ring_ms": 150, "flashcall_ttl_s": 60,
    "flashcall_resend_cooldown_s": 0, "flashcall_hmac_key": "integration-test-key",
}


class FlashWorker:
    """A started Worker with its flash-call service."""

    def __init__(self, settings: Settings) -> None:
        self.worker = Worker(settings)
        existing = getattr(self.worker, "flashcalls", None)
        self.wired_here = existing is None
        if existing is not None:
            self.service: FlashcallService = existing
        else:
            w = self.worker
            self.service = FlashcallService(
                journal=w.journal, port=w.esl, engine=w.engine, bus=w.bus, settings=settings
            )
            w.journal.observers.append(self.service.on_call_event)
            w.intake = Intake(
                bus=w.bus, engine=w.engine, service=w.calls, freeswitch_ready=w.esl.wait_connected,
                max_age_s=settings.command_max_age_s, workers=settings.command_workers,
                extra_handlers={
                    "flashcall.create": self.service.create,
                    "flashcall.verify": self.service.verify,
                },
            )
            self.service.load()
        self.worker.start()
        if self.wired_here:
            self.service.start()
        self.stopped = False
        assert self.worker.esl.wait_connected(10) and self.worker.bus.wait_ready(10)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.wired_here:
            self.service.stop()
        self.worker.stop()


Start = Callable[..., FlashWorker]


def running(answer_delay: float) -> Iterator[Simulator]:
    """A simulator whose phones ring 50 ms after the dial and answer ``answer_delay`` later."""
    sim = Simulator("127.0.0.1", 0, "ClueCon", ring_delay=0.05, answer_delay=answer_delay)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def slow_answer() -> Iterator[Simulator]:
    """Phones ring for 3 s before they answer: the worker drops the call first."""
    yield from running(answer_delay=3.0)


@pytest.fixture
def never_answer() -> Iterator[Simulator]:
    """Phones ring until the ring timeout (15 s) unless the worker drops the call."""
    yield from running(answer_delay=60.0)


@pytest.fixture
def quick_answer() -> Iterator[Simulator]:
    yield from running(answer_delay=0.1)


@pytest.fixture
def flash(slow_answer: Simulator, pg_url: str, amqp_url: str) -> Iterator[Start]:
    started: list[FlashWorker] = []

    def start(
        sim: Simulator | None = None, database_url: str = pg_url, **overrides: Any
    ) -> FlashWorker:
        values = {**FLASH_DEFAULTS, **overrides}
        fw = FlashWorker(make_settings(sim or slow_answer, database_url, amqp_url, **values))
        started.append(fw)
        return fw

    yield start
    for fw in started:
        fw.stop()


# ---------------------------------------------------------------- helpers


def create(probe: Probe, tenant: str, phone: str = PHONE, **fields: Any) -> Received:
    sent = probe.send(tenant, "flashcall.create", phone=phone, **fields)
    return probe.reply_for(sent["command_id"])


def verify(probe: Probe, tenant: str, order_id: str, code: str) -> Received:
    sent = probe.send(tenant, "flashcall.verify", id=order_id, code=code)
    return probe.reply_for(sent["command_id"])


def verify_own(probe: Probe, tenant: str, result: dict[str, Any]) -> Received:
    """Verify an order with the code its create reply returned."""
    return verify(probe, tenant, result["id"], result["code"]["value"])


def order_event(probe: Probe, order_id: str, event_type: str, timeout: float = 10) -> Received:
    return probe.event(lambda e: e.get("order_id") == order_id and e["type"] == event_type, timeout)


def drain(probe: Probe) -> list[Received]:
    found = []
    while True:
        try:
            found.append(probe.events.get_nowait())
        except Empty:
            return found


def wrong(code: str) -> str:
    return "".join(str((int(d) + 1) % 10) for d in code)


def assert_refused(reply: Received, code: str, amqp_url: str) -> None:
    assert reply["ok"] is False and reply["error"]["code"] == code, reply
    ids = dead_letter_command_ids(amqp_url)
    assert reply["command_id"] not in ids, "a refusal for the state of things is not dead-lettered"


def assert_dead_lettered(reply: Received, amqp_url: str) -> None:
    ids = dead_letter_command_ids(amqp_url)
    assert reply["command_id"] in ids


# ---------------------------------------------------------------- tests


def test_a_flash_call_rings_is_dropped_and_its_code_verifies_once(
    flash: Start, probe: Probe, tenant: str, slow_answer: Simulator, amqp_url: str
) -> None:
    fw = flash()
    reply = create(probe, tenant, return_code=True)
    assert reply["ok"], reply
    result = reply["result"]
    code = result["code"]["value"]
    assert len(code) == 4 and code.isdigit() and result["code"]["len"] == 4
    assert result["cid"] == {"prefix": PREFIX, "mask": PREFIX + "****"}
    assert result["resend_after_s"] == 0 and datetime.fromisoformat(result["expires_at"])
    order_id = result["id"]

    created = order_event(probe, order_id, "flashcall.created")
    call_id = created["data"]["call_id"]
    assert created["seq"] == 1 and created["data"]["cid_mask"] == PREFIX + "****"
    assert created["_amqp"]["routing_key"] == f"{tenant}.flashcall.created.{order_id}"
    assert order_event(probe, order_id, "flashcall.ringing")["seq"] == 2
    call = probe.call_events_until_terminal(call_id)
    assert [e["type"] for e in call] == [
        "call.initiated", "call.ringing", "call.cancelled", "call.cdr"
    ]
    assert call[-2]["data"]["hangup_cause"] == "ORIGINATOR_CANCEL"
    assert call[0]["data"]["caller_id_number"] == PREFIX + "****"
    cdr = call[-1]["data"]
    assert cdr["flashcall_order_id"] == order_id and cdr["caller_id_number"] == PREFIX + "****"

    commands = slow_answer.received_commands()
    dial = next(line for line in commands if f"origination_uuid={call_id}" in line)
    assert f"origination_caller_id_number={PREFIX}{code}," in dial
    assert "originate_timeout=15," in dial
    assert f"sofia/gateway/default/{PHONE} &park()" in dial
    assert f"api uuid_kill {call_id} ORIGINATOR_CANCEL" in commands

    assert verify(probe, tenant, order_id, wrong(code))["result"] == {
        "success": False, "attempts_left": 2
    }
    rejected = order_event(probe, order_id, "flashcall.rejected")
    assert rejected["seq"] == 3 and rejected["data"]["attempts_left"] == 2
    assert verify(probe, tenant, order_id, code)["result"] == OK
    assert order_event(probe, order_id, "flashcall.verified")["seq"] == 4
    assert_refused(verify(probe, tenant, order_id, code), "ORDER_CLOSED", amqp_url)
    assert fw.service.owner_node(tenant, order_id) == fw.worker.settings.node_id


def test_the_whole_caller_id_verifies_too(flash: Start, probe: Probe, tenant: str) -> None:
    flash()
    result = create(probe, tenant, return_code=True)["result"]
    assert verify(probe, tenant, result["id"], PREFIX + result["code"]["value"])["result"] == OK


def test_the_code_appears_in_no_event_cdr_log_line_or_database_row(
    flash: Start, probe: Probe, tenant: str, caplog: pytest.LogCaptureFixture,
    pg_url: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="callworker")
    fw = flash(flashcall_code_length=8)
    generated = create(probe, tenant, return_code=True)["result"]
    supplied = create(probe, tenant, "+15557654321", code="31415926")["result"]
    secrets: list[str] = []
    seen: list[Received] = []
    for result in (generated, supplied):
        code = result["code"]["value"]
        secrets += [code, PREFIX + code]
        seen.append(order_event(probe, result["id"], "flashcall.created"))
        seen += probe.call_events_until_terminal(seen[-1]["data"]["call_id"])
        seen.append(verify(probe, tenant, result["id"], wrong(code)))
        seen.append(verify(probe, tenant, result["id"], PREFIX + code))
        seen.append(order_event(probe, result["id"], "flashcall.verified"))
    fw.stop()  # the outbox is flushed: every event is out

    published = json.dumps([dict(e, _amqp=None) for e in seen + drain(probe)])
    for event_type in ("flashcall.created", "flashcall.ringing", "flashcall.rejected", "call.cdr"):
        assert f'"{event_type}"' in published
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            rows = {t: conn.execute(text(f'SELECT * FROM "{t}"')).all() for t in tables}
    finally:
        engine.dispose()
    assert rows["flashcall_orders"] and rows["cdrs"] and rows["call_events"]
    database = repr(rows)
    logs = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    for secret in secrets:
        assert secret not in published
        assert secret not in database
        assert secret not in logs


def test_wrong_codes_lock_the_order(
    flash: Start, probe: Probe, tenant: str, amqp_url: str
) -> None:
    flash()
    result = create(probe, tenant, return_code=True)["result"]
    order_id, code = result["id"], result["code"]["value"]
    replies = [verify(probe, tenant, order_id, wrong(code)) for _ in range(3)]
    lefts = [reply["result"]["attempts_left"] for reply in replies]
    assert lefts == [2, 1, 0]
    locked = order_event(probe, order_id, "flashcall.locked")
    assert locked["data"]["cid_mask"] == PREFIX + "****"
    assert_refused(verify(probe, tenant, order_id, code), "TOO_MANY_ATTEMPTS", amqp_url)


def test_an_order_expires_with_its_event(
    flash: Start, probe: Probe, tenant: str, amqp_url: str
) -> None:
    flash(flashcall_ttl_s=1)
    result = create(probe, tenant, return_code=True)["result"]
    expired = order_event(probe, result["id"], "flashcall.expired")
    assert expired["occurred_at"] == result["expires_at"]
    assert_refused(verify_own(probe, tenant, result), "ORDER_EXPIRED", amqp_url)


def test_a_new_order_supersedes_the_open_one(
    flash: Start, probe: Probe, tenant: str, amqp_url: str
) -> None:
    flash()
    first = create(probe, tenant, return_code=True)["result"]
    second = create(probe, tenant, return_code=True)["result"]
    created = order_event(probe, second["id"], "flashcall.created")
    assert created["data"]["supersedes"] == first["id"]
    assert_refused(verify_own(probe, tenant, first), "ORDER_CLOSED", amqp_url)
    assert verify_own(probe, tenant, second)["result"] == OK


def test_an_answered_flash_call_is_hung_up_at_once(
    flash: Start, probe: Probe, tenant: str, quick_answer: Simulator
) -> None:
    flash(quick_answer, flashcall_ring_ms=60_000)
    result = create(probe, tenant, return_code=True)["result"]
    order_id = result["id"]
    call_id = order_event(probe, order_id, "flashcall.created")["data"]["call_id"]
    assert order_event(probe, order_id, "flashcall.ringing")["seq"] == 2
    assert order_event(probe, order_id, "flashcall.answered")["seq"] == 3
    # Without the worker's hangup this phone would stay up until the ring_ms timer.
    call = probe.call_events_until_terminal(call_id, timeout=10)
    assert [e["type"] for e in call][-2:] == ["call.completed", "call.cdr"]
    assert f"api uuid_kill {call_id} NORMAL_CLEARING" in quick_answer.received_commands()
    assert verify(probe, tenant, order_id, result["code"]["value"])["result"] == OK


@pytest.mark.parametrize(
    ("phone", "cause", "rings"),
    [("+15551230486", "USER_BUSY", True), ("+15551230404", "UNALLOCATED_NUMBER", False),
     ("+15551230403", "CALL_REJECTED", False)],
)
def test_busy_and_unreachable_phones_fail_with_their_cause(
    flash: Start, probe: Probe, tenant: str, quick_answer: Simulator,
    phone: str, cause: str, rings: bool,
) -> None:
    flash(quick_answer, flashcall_ring_ms=60_000)
    order_id = create(probe, tenant, phone)["result"]["id"]
    failed = order_event(probe, order_id, "flashcall.failed")
    assert failed["data"]["hangup_cause"] == cause
    assert failed["seq"] == (3 if rings else 2)
    call = probe.call_events_until_terminal(failed["data"]["call_id"])
    assert call[-2]["type"] == "call.failed" and call[-2]["data"]["hangup_cause"] == cause


def test_a_supplied_code_is_dialled_and_returned(
    flash: Start, probe: Probe, tenant: str, slow_answer: Simulator, amqp_url: str
) -> None:
    flash()
    result = create(probe, tenant, code="2468")["result"]
    assert result["code"] == {"len": 4, "value": "2468"}
    call_id = order_event(probe, result["id"], "flashcall.created")["data"]["call_id"]
    dial = next(c for c in slow_answer.received_commands() if f"origination_uuid={call_id}" in c)
    assert f"origination_caller_id_number={PREFIX}2468," in dial
    assert verify(probe, tenant, result["id"], "2468")["result"] == OK
    bad = create(probe, tenant, "+15557654321", code="123")
    assert bad["error"]["code"] == "VALIDATION_ERROR" and bad["error"]["details"]["field"] == "code"
    assert_dead_lettered(bad, amqp_url)


def test_without_return_code_the_reply_keeps_the_code_back(
    flash: Start, probe: Probe, tenant: str, slow_answer: Simulator
) -> None:
    flash()
    sent = probe.send(tenant, "flashcall.create", phone=PHONE)
    first = probe.reply_for(sent["command_id"])
    assert first["result"]["code"] == {"len": 4}
    # The same command again: the first reply, and no second call.
    probe.publish_raw(f"{tenant}.flashcall.create", json.dumps(sent).encode())
    again = probe.reply_for(sent["command_id"])
    assert again["result"] == first["result"]
    order_id = first["result"]["id"]
    dials = [c for c in slow_answer.received_commands() if f"flashcall_order={order_id}" in c]
    assert len(dials) == 1


def test_rate_limits_answer_retry_after(
    flash: Start, probe: Probe, tenant: str, amqp_url: str
) -> None:
    flash(flashcall_resend_cooldown_s=30, flashcall_max_per_tenant_per_window=2)
    first = create(probe, tenant)["result"]
    assert first["resend_after_s"] == 30
    cooled = create(probe, tenant)
    assert_refused(cooled, "RATE_LIMITED", amqp_url)
    assert cooled["error"]["details"]["limit"] == "cooldown"
    assert 1 <= cooled["error"]["details"]["retry_after_s"] <= 30
    assert create(probe, tenant, "+15557654321")["ok"]
    capped = create(probe, tenant, "+15550001234")
    assert_refused(capped, "RATE_LIMITED", amqp_url)
    assert capped["error"]["details"]["limit"] == "tenant"
    assert 3500 <= capped["error"]["details"]["retry_after_s"] <= 3600


def test_the_per_phone_cap(flash: Start, probe: Probe, tenant: str, amqp_url: str) -> None:
    flash(flashcall_max_per_phone_per_window=2)
    assert create(probe, tenant)["result"]["resend_after_s"] == 0
    assert create(probe, tenant)["result"]["resend_after_s"] >= 3599
    capped = create(probe, tenant)
    assert_refused(capped, "RATE_LIMITED", amqp_url)
    assert capped["error"]["details"]["limit"] == "phone"


def test_destinations_outside_the_allow_list_are_refused(
    flash: Start, probe: Probe, tenant: str, amqp_url: str
) -> None:
    flash(flashcall_allowed_destinations=("1555[0-9]{7}",))
    refused = create(probe, tenant, "+4930123456789")
    assert refused["error"]["code"] == "VALIDATION_ERROR"
    assert refused["error"]["details"] == {"field": "phone", "reason": "destination_not_allowed"}
    assert_dead_lettered(refused, amqp_url)
    assert create(probe, tenant, PHONE)["ok"]


def test_another_tenants_order_does_not_exist(
    flash: Start, probe: Probe, tenant: str, amqp_url: str
) -> None:
    fw = flash()
    result = create(probe, tenant, return_code=True)["result"]
    other = f"o{uuid.uuid4().hex[:10]}"
    assert_refused(verify_own(probe, other, result), "ORDER_NOT_FOUND", amqp_url)
    assert_refused(verify(probe, tenant, str(uuid.uuid4()), "1234"), "ORDER_NOT_FOUND", amqp_url)
    assert fw.service.owner_node(other, result["id"]) is None
    assert verify_own(probe, tenant, result)["result"] == OK


def test_open_orders_survive_a_restart(
    flash: Start, probe: Probe, tenant: str
) -> None:
    node = f"node-{uuid.uuid4().hex[:8]}"
    first = flash(node_id=node)
    result = create(probe, tenant, return_code=True)["result"]
    call_id = order_event(probe, result["id"], "flashcall.created")["data"]["call_id"]
    probe.call_events_until_terminal(call_id)
    first.stop()
    flash(node_id=node)
    assert verify_own(probe, tenant, result)["result"] == OK
    assert order_event(probe, result["id"], "flashcall.verified")["seq"] == 3


def test_a_restart_drops_the_ringing_flash_call_again(
    flash: Start, probe: Probe, tenant: str, never_answer: Simulator
) -> None:
    """The drop timer dies with the process; the restarted worker drops the call itself."""
    node = f"node-{uuid.uuid4().hex[:8]}"
    first = flash(never_answer, node_id=node, flashcall_ring_ms=60_000)
    order_id = create(probe, tenant)["result"]["id"]
    call_id = order_event(probe, order_id, "flashcall.created")["data"]["call_id"]
    order_event(probe, order_id, "flashcall.ringing")
    first.stop()

    flash(never_answer, node_id=node)
    # Left alone, the phone would ring on for the 15 s ring timeout and end call.failed.
    call = probe.call_events_until_terminal(call_id, timeout=8)
    assert [e["type"] for e in call][-2:] == ["call.cancelled", "call.cdr"]
    assert call[-2]["data"]["hangup_cause"] == "ORIGINATOR_CANCEL"
    assert f"api uuid_kill {call_id} ORIGINATOR_CANCEL" in never_answer.received_commands()


def test_flash_calls_on_sqlite(
    flash: Start, probe: Probe, tenant: str, tmp_path: Path
) -> None:
    flash(database_url=f"sqlite:///{tmp_path / 'flash.sqlite3'}", flashcall_resend_cooldown_s=30)
    result = create(probe, tenant, return_code=True)["result"]
    assert create(probe, tenant)["error"]["details"]["limit"] == "cooldown"
    assert verify_own(probe, tenant, result)["result"] == OK
    assert order_event(probe, result["id"], "flashcall.verified")["seq"] >= 2


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_order_rows_are_folded_and_read_back(database: str, pg_url: str, tmp_path: Path) -> None:
    url = pg_url if database == "postgresql" else f"sqlite:///{tmp_path / 'orders.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    tenant, node, phone = f"s{uuid.uuid4().hex[:8]}", f"n{uuid.uuid4().hex[:8]}", "15551234567"

    def row(age_s: float, status: str = "open") -> dict[str, Any]:
        created = now - timedelta(seconds=age_s)
        return {
            "order_id": str(uuid.uuid4()), "tenant": tenant, "node": node, "phone": "+" + phone,
            "phone_key": phone, "status": status, "code_hmac": "ab" * 32, "code_len": 4,
            "cid_prefix": PREFIX, "call_id": None, "call_status": None, "hangup_cause": None,
            "attempts": 0, "max_attempts": 3, "last_seq": 1, "supersedes": None,
            "created_at": created, "expires_at": created + timedelta(seconds=300),
            "closed_at": None, "updated_at": now,
        }

    old, new, closed = row(7200), row(10), row(20, "verified")
    try:
        # Two rows of one order in one batch: the later values win.
        write_batch(engine, Batch(orders=[old, new, closed, {**new, "attempts": 2, "last_seq": 3}]))
        stored = get_order(engine, tenant, new["order_id"])
        assert stored is not None
        assert stored["attempts"] == 2
        assert get_order(engine, "someone-else", new["order_id"]) is None
        latest = latest_order_for_phone(engine, tenant, phone)
        assert latest is not None
        assert latest["order_id"] == new["order_id"]
        live = [r["order_id"] for r in live_orders(engine, node)]
        assert live == [old["order_id"], new["order_id"]]
        found = order_history(engine, tenant, phone, now - timedelta(seconds=3600))
        assert (found.phone_count, found.tenant_count) == (2, 2)
        assert found.last_for_phone == new["created_at"]
        assert found.phone_oldest == closed["created_at"]
    finally:
        engine.dispose()


def test_concurrent_attempts_are_judged_one_after_another(
    flash: Start, probe: Probe, tenant: str
) -> None:
    flash()
    result = create(probe, tenant, return_code=True)["result"]
    code = result["code"]["value"]
    sent = [probe.send(tenant, "flashcall.verify", id=result["id"], code=wrong(code)) for _ in range(6)]
    replies = [probe.reply_for(s["command_id"]) for s in sent]
    lefts = sorted(r["result"]["attempts_left"] for r in replies if r["ok"])
    assert lefts == [0, 1, 2]
    assert [r["error"]["code"] for r in replies if not r["ok"]] == ["TOO_MANY_ATTEMPTS"] * 3

    second = create(probe, tenant, "+15557654321", return_code=True)["result"]
    sent = [probe.send(tenant, "flashcall.verify", id=second["id"], code=second["code"]["value"])
            for _ in range(4)]
    replies = [probe.reply_for(s["command_id"]) for s in sent]
    assert sum(r["ok"] and r["result"] == OK for r in replies) == 1
    assert sum(not r["ok"] and r["error"]["code"] == "ORDER_CLOSED" for r in replies) == 3


def test_concurrent_creates_for_one_phone_respect_the_cooldown(
    flash: Start, probe: Probe, tenant: str
) -> None:
    flash(flashcall_resend_cooldown_s=30)
    sent = [probe.send(tenant, "flashcall.create", phone=PHONE) for _ in range(4)]
    replies = [probe.reply_for(s["command_id"]) for s in sent]
    assert sum(r["ok"] for r in replies) == 1
    assert {r["error"]["code"] for r in replies if not r["ok"]} == {"RATE_LIMITED"}

