"""A handed-over call is settled only when FreeSWITCH says it is gone (InboundCalls, SQLite).

After an inbound call's socket ends, the worker asks ``uuid_exists``: ``false``
ends the call with a reconstructed CDR; ``true`` leaves it to its own events; any
other answer is unknown and is asked again, never read as "gone".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from callworker.calls.inbound import SETTLE_CHECKS, InboundCalls
from callworker.calls.journal import Journal, Unit
from callworker.calls.record import CallRecord
from callworker.calls.states import Status
from callworker.contract import utcnow
from callworker.store import call_events, get_cdr, make_engine, migrate


class Exists:
    """A FreeSWITCH port that answers ``uuid_exists`` from a script, then ``last``."""

    def __init__(self, script: list[str], last: str) -> None:
        self.connected = True
        self.script = script
        self.last = last
        self.asked = 0

    def wait_connected(self, timeout: float) -> bool:
        return True

    def api(self, command: str, *, timeout: float | None = None) -> str:
        assert command.startswith("uuid_exists ")
        self.asked += 1
        return self.script.pop(0) if self.script else self.last

    def bgapi(self, command: str, *, job_uuid: str | None = None, timeout: float | None = None) -> str:
        raise AssertionError("settling never dials")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[tuple[Journal, Any]]:
    url = f"sqlite:///{tmp_path / 'inbound.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    journal = Journal(engine, node="fs1", notify=lambda items: None)
    journal.start()
    yield journal, engine
    journal.stop()
    engine.dispose()


class Session:
    def __init__(self, call_id: str) -> None:
        self.uuid = call_id


def settle(journal: Journal, port: Exists) -> tuple[str, InboundCalls]:
    """An inbound call the journal holds; its session has just ended; wait for the checks."""
    call_id = str(uuid.uuid4())
    record = CallRecord(call_id=call_id, tenant="acme", node="fs1", direction="inbound",
                        status=Status.INITIATED, initiated_at=utcnow() - timedelta(seconds=1))

    def op(unit: Unit) -> None:
        unit.open_call(record)

    journal.run(op)
    inbound = InboundCalls(journal=journal, node="fs1", port=port, settle_after_s=0.01)
    checking = inbound.on_session_end(Session(call_id))  # type: ignore[arg-type]
    assert checking is not None
    checking.get(timeout=5)
    return call_id, inbound


def test_unreadable_answers_are_asked_again_and_false_settles(journal: tuple[Journal, Any]) -> None:
    log, engine = journal
    port = Exists(["-ERR no reply\n", ""], last="false")
    call_id, inbound = settle(log, port)
    assert port.asked == 3 and inbound.settled == 1 and not log.knows(call_id)
    assert [e["type"] for e in call_events(engine, call_id)][-2:] == ["call.failed", "call.cdr"]
    cdr = get_cdr(engine, "acme", call_id)
    assert cdr is not None and cdr["reconstructed"] is True


def test_a_call_freeswitch_still_has_is_left_to_its_events(journal: tuple[Journal, Any]) -> None:
    log, _ = journal
    port = Exists([], last="true")
    call_id, inbound = settle(log, port)
    assert port.asked == 1 and inbound.settled == 0 and log.knows(call_id)


def test_answers_that_stay_unreadable_never_end_the_call(journal: tuple[Journal, Any]) -> None:
    log, _ = journal
    port = Exists([], last="-ERR no reply\n")
    call_id, inbound = settle(log, port)
    assert port.asked == SETTLE_CHECKS and inbound.settled == 0 and log.knows(call_id)
