"""The call service, journal and event pump with a fake FreeSWITCH port and SQLite.

The fake stands in for the one seam that needs a FreeSWITCH: it records the
commands that would reach the socket and answers like FreeSWITCH does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callworker.bus.relay import OutboxItem
from callworker.calls.fsevents import EventPump
from callworker.calls.journal import Journal
from callworker.calls.reconcile import reconcile
from callworker.calls.service import CallService, Delivered
from callworker.contract import decode_command
from callworker.esl.codec import Event
from callworker.store import call_events, get_call, get_cdr, get_command, make_engine, migrate

TENANT = "acme"


class FakePort:
    def __init__(self) -> None:
        self.connected = True
        self.sent: list[str] = []
        self.channels: set[str] = set()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected

    def api(self, command: str, *, timeout: float | None = None) -> str:
        self.sent.append(f"api {command}")
        if command.startswith("show channels as json"):
            rows = [{"uuid": u} for u in sorted(self.channels)]
            return json.dumps({"row_count": len(rows), "rows": rows}) if rows else '{"row_count": 0}\n'
        if command.startswith("uuid_exists "):
            return "true" if command.split()[1] in self.channels else "false"
        if command.startswith("uuid_hold"):
            return "+OK Success\n"
        return "+OK\n"

    def bgapi(self, command: str, *, job_uuid: str | None = None, timeout: float | None = None) -> str:
        self.sent.append(f"bgapi {command}")
        return job_uuid or str(uuid.uuid4())


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[CallService, Journal, EventPump, FakePort, list[OutboxItem], Any]]:
    url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    published: list[OutboxItem] = []
    journal = Journal(engine, node="fs1", notify=published.extend)
    journal.start()
    port = FakePort()
    service = CallService(
        journal=journal, port=port, engine=engine, node="fs1", gateways=("default",), default_gateway="default"
    )
    from gevent.queue import Queue

    pump = EventPump(Queue(), journal)
    yield service, journal, pump, port, published, engine
    journal.stop()
    engine.dispose()


def command(command_type: str, **fields: Any) -> Any:
    body = {"v": 1, "command_id": str(uuid.uuid4()), "type": command_type, **fields}
    return decode_command(f"{TENANT}.{command_type}", json.dumps(body).encode())


def fs_event(name: str, call_id: str, **headers: str) -> Event:
    values = {"Event-Name": name, "Unique-ID": call_id, "Event-Date-Timestamp": "1700000000000000", **headers}
    return Event(values, None, encoded=False)


def published_types(published: list[OutboxItem], call_id: str) -> list[str]:
    bodies = [json.loads(item.body) for item in published if item.exchange == "callworker.events"]
    return [b["type"] for b in bodies if b.get("call_id") == call_id]


def sync(journal: Journal) -> None:
    """Wait until everything submitted so far is committed."""
    journal.run(lambda unit: None)


def answered_call(service: CallService, journal: Journal, pump: EventPump) -> str:
    """A call placed and answered; its call_id."""
    reply = service.execute(command("originate", destination_number="+15551230001"), Delivered(None, None))
    call_id: str = reply["result"]["call_id"]
    pump.handle(fs_event("CHANNEL_ANSWER", call_id))
    sync(journal)
    return call_id


def test_originate_sends_one_validated_bgapi_and_commits_the_reply(setup: Any) -> None:
    service, journal, pump, port, published, engine = setup
    cmd = command("originate", destination_number="+15551230001", caller_id_name="Front Desk")
    reply = service.execute(cmd, Delivered("replies", "c1"))
    call_id = reply["result"]["call_id"]
    assert port.sent == [
        f"bgapi originate {{origination_uuid={call_id},originate_timeout=30,ignore_early_media=true,"
        f"origination_caller_id_name='Front Desk',callworker_tenant=acme}}"
        f"sofia/gateway/default/+15551230001 &park()"
    ]
    stored = get_command(engine, TENANT, cmd.command_id)
    assert stored is not None
    assert stored["reply"] == reply
    call = get_call(engine, TENANT, call_id)
    assert call is not None
    assert call["status"] == "initiated"
    replies = [item for item in published if item.exchange == ""]
    assert replies[0].routing_key == "replies" and replies[0].correlation_id == "c1"


def test_the_originate_reply_is_on_its_way_before_freeswitch_answers_the_dial(setup: Any) -> None:
    service, journal, pump, port, published, engine = setup
    seen_at_dial: list[tuple[list[str], Any]] = []
    send = port.bgapi

    def bgapi(text: str, *, job_uuid: str | None = None, timeout: float | None = None) -> str:
        # What had been handed to the relay, and stored, when the originate reached FreeSWITCH.
        replies = [item.routing_key for item in published if item.exchange == ""]
        seen_at_dial.append((replies, get_command(engine, TENANT, cmd.command_id)))
        return send(text, job_uuid=job_uuid, timeout=timeout)

    port.bgapi = bgapi  # type: ignore[method-assign]
    cmd = command("originate", destination_number="+15551230001")
    reply = service.execute(cmd, Delivered("replies", "c1"))
    [(replies, stored)] = seen_at_dial
    assert replies == ["replies"]
    assert stored["status"] == "done" and stored["reply"] == reply
    assert len([sent for sent in port.sent if sent.startswith("bgapi")]) == 1


def test_events_become_contract_events_with_gapless_seq(setup: Any) -> None:
    service, journal, pump, port, published, engine = setup
    call_id = service.execute(command("originate", destination_number="+15551230001"), Delivered(None, None))["result"][
        "call_id"
    ]
    for name in (
        "CHANNEL_CREATE",
        "CHANNEL_PROGRESS",
        "CHANNEL_PROGRESS_MEDIA",
        "CHANNEL_ANSWER",
        "CHANNEL_HOLD",
        "CHANNEL_UNHOLD",
    ):
        pump.handle(fs_event(name, call_id))
    pump.handle(
        fs_event(
            "CHANNEL_HANGUP_COMPLETE",
            call_id,
            **{
                "variable_hangup_cause": "NORMAL_CLEARING",
                "variable_hangup_cause_q850": "16",
                "variable_billsec": "7",
                "variable_answer_uepoch": "1700000001000000",
            },
        )
    )
    pump.handle(fs_event("CHANNEL_HANGUP_COMPLETE", call_id))  # repeated: ignored
    sync(journal)
    assert published_types(published, call_id) == [
        "call.initiated",
        "call.ringing",
        "call.answered",
        "call.held",
        "call.unheld",
        "call.completed",
        "call.cdr",
    ]
    assert [e["seq"] for e in call_events(engine, call_id)] == [1, 2, 3, 4, 5, 6, 7]
    cdr = get_cdr(engine, TENANT, call_id)
    assert cdr is not None
    assert cdr["billsec"] == 7
    assert not journal.knows(call_id)


def test_mute_is_published_by_the_worker_and_only_on_change(setup: Any) -> None:
    service, journal, pump, port, published, engine = setup
    call_id = answered_call(service, journal, pump)
    service.execute(command("mute", call_id=call_id), Delivered(None, None))
    service.execute(command("mute", call_id=call_id), Delivered(None, None))
    assert [c for c in port.sent if "uuid_audio" in c] == [f"api uuid_audio {call_id} start read mute 1"]
    assert published_types(published, call_id).count("call.muted") == 1


def test_a_resume_right_after_a_hold_reaches_freeswitch_before_its_hold_event(setup: Any) -> None:
    service, journal, pump, port, published, engine = setup
    call_id = answered_call(service, journal, pump)
    # FreeSWITCH's CHANNEL_HOLD has not come in yet when the resume arrives.
    held = service.execute(command("hold", call_id=call_id), Delivered(None, None))
    resumed = service.execute(command("hold", call_id=call_id, hold=False), Delivered(None, None))
    assert held["result"]["on_hold"] is True and resumed["result"]["on_hold"] is False
    assert [c for c in port.sent if "uuid_hold" in c] == [f"api uuid_hold {call_id}", f"api uuid_hold off {call_id}"]
    # The same for mute and unmute; and a repeat of what was just asked sends nothing.
    for muted in (True, False, False):
        service.execute(command("mute", call_id=call_id, muted=muted), Delivered(None, None))
    assert [c for c in port.sent if "uuid_audio" in c] == [
        f"api uuid_audio {call_id} start read mute 1",
        f"api uuid_audio {call_id} start read mute 0",
    ]
    assert published_types(published, call_id)[-2:] == ["call.muted", "call.unmuted"]


def test_a_refused_hold_is_not_taken_for_asked(setup: Any) -> None:
    service, journal, pump, port, published, engine = setup
    call_id = answered_call(service, journal, pump)
    answer = port.api
    port.api = lambda text, timeout=None: "-ERR no media\n" if text.startswith("uuid_hold") else answer(text)  # type: ignore[method-assign]
    refused = service.execute(command("hold", call_id=call_id), Delivered(None, None))
    assert refused["error"]["code"] == "FREESWITCH_ERROR"
    port.api = answer  # type: ignore[method-assign]
    service.execute(command("hold", call_id=call_id), Delivered(None, None))
    assert [c for c in port.sent if "uuid_hold" in c] == [f"api uuid_hold {call_id}"]


@pytest.mark.parametrize("command_type", ["hold", "mute"])
def test_only_an_answered_call_is_held_or_muted(setup: Any, command_type: str) -> None:
    service, journal, pump, port, published, engine = setup
    call_id = service.execute(command("originate", destination_number="+15551230001"), Delivered(None, None))["result"][
        "call_id"
    ]
    pump.handle(fs_event("CHANNEL_PROGRESS", call_id))
    sync(journal)
    reply = service.execute(command(command_type, call_id=call_id), Delivered(None, None))
    assert reply["error"]["code"] == "CALL_NOT_ACTIVE" and reply["error"]["details"]["status"] == "ringing"
    # On a real FreeSWITCH, uuid_audio on an unanswered channel pre-answers it.
    assert [c for c in port.sent if "uuid_audio" in c or "uuid_hold" in c] == []
    assert "call.muted" not in published_types(published, call_id)


def test_refused_before_any_channel_ends_failed_with_a_cdr(setup: Any) -> None:
    service, journal, pump, port, published, engine = setup
    call_id = service.execute(command("originate", destination_number="+15551230001"), Delivered(None, None))["result"][
        "call_id"
    ]
    job = Event({"Event-Name": "BACKGROUND_JOB", "Job-UUID": call_id}, "-ERR GATEWAY_DOWN\n", encoded=False)
    pump.handle(job)
    sync(journal)
    assert published_types(published, call_id) == ["call.initiated", "call.failed", "call.cdr"]
    cdr = get_cdr(engine, TENANT, call_id)
    assert cdr is not None
    assert cdr["hangup_cause"] == "GATEWAY_DOWN"


def test_hangup_before_answer_is_cancelled_and_state_refusals_are_replies(setup: Any) -> None:
    service, journal, pump, port, published, engine = setup
    call_id = service.execute(command("originate", destination_number="+15551230001"), Delivered(None, None))["result"][
        "call_id"
    ]
    pump.handle(fs_event("CHANNEL_CREATE", call_id))
    pump.handle(fs_event("CHANNEL_PROGRESS", call_id))
    sync(journal)
    hold = service.execute(command("hold", call_id=call_id), Delivered(None, None))
    assert hold["error"]["code"] == "CALL_NOT_ACTIVE"
    reply = service.execute(command("hangup", call_id=call_id), Delivered(None, None))
    assert reply["result"]["status"] == "ringing"
    pump.handle(fs_event("CHANNEL_HANGUP_COMPLETE", call_id, **{"Hangup-Cause": "NORMAL_CLEARING"}))
    sync(journal)
    assert published_types(published, call_id)[-2:] == ["call.cancelled", "call.cdr"]
    missing = service.execute(command("hangup", call_id=str(uuid.uuid4())), Delivered(None, None))
    assert missing["error"]["code"] == "CALL_NOT_FOUND"


def test_reconcile_ends_calls_freeswitch_no_longer_has(setup: Any) -> None:
    service, journal, pump, port, published, engine = setup
    kept = service.execute(command("originate", destination_number="+15551230001"), Delivered(None, None))["result"][
        "call_id"
    ]
    gone = service.execute(command("originate", destination_number="+15551230002"), Delivered(None, None))["result"][
        "call_id"
    ]
    pump.handle(fs_event("CHANNEL_ANSWER", gone))
    port.channels = {kept}
    assert reconcile(journal, port).ended == 1
    assert published_types(published, gone)[-2:] == ["call.completed", "call.cdr"]
    cdr = get_cdr(engine, TENANT, gone)
    assert cdr is not None
    assert cdr["reconstructed"] is True
    assert journal.knows(kept) and not journal.knows(gone)


def test_reconcile_adopts_a_live_call_left_under_another_node_id(setup: Any) -> None:
    from datetime import UTC, datetime

    from callworker.store import Batch, write_batch

    service, journal, pump, port, published, engine = setup
    call_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    row = {
        "call_id": call_id, "tenant": TENANT, "node": "renamed-node", "direction": "outbound",
        "status": "ringing", "destination_number": "+15551230001", "caller_id_number": None,
        "caller_id_name": None, "on_hold": False, "muted": False, "initiated_at": now,
        "answered_at": None, "ended_at": None, "hangup_cause": None, "last_seq": 2,
        "hangup_requested": False, "flashcall_order_id": None, "updated_at": now,
    }
    write_batch(engine, Batch(calls=[row]))
    port.channels = {call_id}
    reconcile(journal, port, engine=engine)
    assert journal.knows(call_id)
    call = get_call(engine, TENANT, call_id)
    assert call is not None
    assert call["node"] == "fs1"
    # Its events go on from its last seq, from this node.
    pump.handle(fs_event("CHANNEL_ANSWER", call_id))
    sync(journal)
    assert [e["seq"] for e in call_events(engine, call_id)] == [3]
    assert published_types(published, call_id) == ["call.answered"]


def test_a_hangup_after_lost_events_still_tells_the_call_rang_and_was_answered(setup: Any) -> None:
    # CHANNEL_PROGRESS and CHANNEL_ANSWER were dropped on the way (or never heard):
    # the hangup's CDR shows both, so the call ends completed, not failed.
    service, journal, pump, port, published, engine = setup
    call_id = service.execute(command("originate", destination_number="+15551230001"), Delivered(None, None))["result"][
        "call_id"
    ]
    pump.handle(fs_event("CHANNEL_HANGUP_COMPLETE", call_id, **{
        "variable_hangup_cause": "NORMAL_CLEARING", "variable_start_uepoch": "1700000000000000",
        "variable_progress_uepoch": "1700000000180000", "variable_answer_uepoch": "1700000002000000",
        "variable_end_uepoch": "1700000009000000", "variable_billsec": "7",
    }))
    sync(journal)
    assert published_types(published, call_id) == [
        "call.initiated", "call.ringing", "call.answered", "call.completed", "call.cdr"]
    events = call_events(engine, call_id)
    assert events[1]["body"]["occurred_at"].startswith("2023-11-14T22:13:20.18")
    assert events[2]["body"]["occurred_at"].startswith("2023-11-14T22:13:22")
    call = get_call(engine, TENANT, call_id)
    assert call is not None and call["status"] == "completed"
    cdr = get_cdr(engine, TENANT, call_id)
    assert cdr is not None and cdr["billsec"] == 7 and cdr["reconstructed"] is False


def test_a_hangup_of_a_call_never_answered_adds_nothing(setup: Any) -> None:
    service, journal, pump, port, published, engine = setup
    call_id = service.execute(command("originate", destination_number="+15551230486"), Delivered(None, None))["result"][
        "call_id"
    ]
    pump.handle(fs_event("CHANNEL_HANGUP_COMPLETE", call_id, **{
        "variable_hangup_cause": "USER_BUSY", "variable_answer_uepoch": "0",
        "variable_start_uepoch": "1700000000000000",
    }))
    sync(journal)
    assert published_types(published, call_id) == ["call.initiated", "call.failed", "call.cdr"]
