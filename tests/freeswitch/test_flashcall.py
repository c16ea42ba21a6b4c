"""A flash call through real SIP: the phone (the fake carrier's 0408, which rings and never
answers) sees the caller ID prefix + code and a call that is cancelled before it is
answered; the caller ID read from the phone's side verifies the order; the code is in no
event, CDR, log line or database row."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from gevent.queue import Empty
from sqlalchemy import inspect, text

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.store import make_engine
from tests.freeswitch.conftest import hang_up_everything, start_worker, switch_settings
from tests.freeswitch.realswitch import EslClient, RealSwitch
from tests.freeswitch.steps import command

pytestmark = pytest.mark.freeswitch

PREFIX = "7487260"
CODE_LENGTH = 8  # long enough that the code cannot turn up by chance in ids and timestamps
PHONE = "+15551230408"  # the carrier rings and never answers


@pytest.fixture
def flash_worker(real_switch: RealSwitch, pg_url: str, amqp_url: str) -> Iterator[Worker]:
    settings = switch_settings(
        real_switch, pg_url, amqp_url, flashcall_cid_prefixes=(PREFIX,), flashcall_code_length=CODE_LENGTH,
        flashcall_ring_ms=300, flashcall_ring_timeout_s=10, flashcall_resend_cooldown_s=0,
        flashcall_hmac_key="real-switch-flashcall-key",
    )
    worker = start_worker(settings)
    yield worker
    hang_up_everything(real_switch)
    worker.stop()


def carrier_leg(switch_events: EslClient, event_name: str, uuid: str | None = None) -> Received:
    return switch_events.event(  # type: ignore[return-value]
        lambda e: e.name == event_name and (e.get("Channel-Name") or "").startswith("sofia/carrier/")
        and e.get("Caller-Destination-Number") == PHONE and uuid in (None, e.get("Unique-ID"))
    )


def order_event(probe: Probe, order_id: str, event_type: str) -> Received:
    return probe.event(lambda e: e.get("order_id") == order_id and e["type"] == event_type, 15)


def test_the_phone_sees_prefix_and_code_is_cancelled_unanswered_and_the_caller_id_verifies(
    flash_worker: Worker, probe: Probe, tenant: str, switch_events: EslClient,
    caplog: pytest.LogCaptureFixture, pg_url: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="callworker")
    reply = command(probe, tenant, "flashcall.create", phone=PHONE)
    assert reply["ok"], reply
    order_id = reply["result"]["id"]
    assert "value" not in reply["result"]["code"]

    # What the phone's network receives: the caller ID, prefix + code, in From and caller ID.
    created = carrier_leg(switch_events, "CHANNEL_CREATE")
    caller_id = created["Caller-Caller-ID-Number"]
    assert re.fullmatch(rf"{PREFIX}\d{{{CODE_LENGTH}}}", caller_id), caller_id
    assert created["variable_sip_from_user"] == caller_id
    code = caller_id[len(PREFIX):]

    seen = [order_event(probe, order_id, "flashcall.created"), order_event(probe, order_id, "flashcall.ringing")]
    call_id = seen[0]["data"]["call_id"]
    call = probe.call_events_until_terminal(call_id)
    assert [e["type"] for e in call] == ["call.initiated", "call.ringing", "call.cancelled", "call.cdr"]
    assert call[2]["data"]["hangup_cause"] == "ORIGINATOR_CANCEL"
    cdr = call[-1]["data"]
    assert cdr["answer_stamp"] is None and cdr["billsec"] == 0 and cdr["flashcall_order_id"] == order_id
    assert cdr["caller_id_number"] == PREFIX + "*" * CODE_LENGTH

    # The phone's leg was cancelled before it was answered.
    ended = carrier_leg(switch_events, "CHANNEL_HANGUP_COMPLETE", created["Unique-ID"])
    assert ended["variable_billsec"] == "0" and not ended.get("variable_answer_stamp")
    assert ended["Hangup-Cause"] == "ORIGINATOR_CANCEL"

    # The user types what the call log shows.
    verified = command(probe, tenant, "flashcall.verify", id=order_id, code=caller_id)
    assert verified["result"] == {"success": True}
    seen += [*call, verified, order_event(probe, order_id, "flashcall.verified")]

    published = json.dumps([dict(e, _amqp=None) for e in seen + _drain(probe)])
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
    for secret in (code, caller_id):
        assert secret not in published
        assert secret not in database
        assert secret not in logs


def _drain(probe: Probe) -> list[Received]:
    found = []
    while True:
        try:
            found.append(probe.events.get_nowait())
        except Empty:
            return found
