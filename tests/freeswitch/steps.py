"""What an upstream app does on the real tier: publish a command, wait for its reply and events."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import gevent.event
from sqlalchemy import text
from sqlalchemy.engine import Engine

from callworker.app import Worker
from callworker.bus.probe import Probe, Received

__all__ = [
    "TERMINAL", "assert_well_formed", "command", "eventually", "health", "originate", "stored_events",
    "wait_type",
]

T = TypeVar("T")

TERMINAL = {"call.completed", "call.failed", "call.cancelled"}


def command(probe: Probe, tenant: str, command_type: str, timeout: float = 15.0, **fields: Any) -> Received:
    sent = probe.send(tenant, command_type, **fields)
    return probe.reply_for(sent["command_id"], timeout=timeout)


def originate(probe: Probe, tenant: str, number: str, **fields: Any) -> str:
    """Place a call through the worker; its call_id once the reply says initiated."""
    call_id = fields.pop("call_id", None) or str(uuid.uuid4())
    reply = command(probe, tenant, "originate", destination_number=number, call_id=call_id, **fields)
    assert reply["ok"], reply
    assert reply["result"]["call_id"] == call_id and reply["result"]["status"] == "initiated"
    return call_id


def wait_type(probe: Probe, call_id: str, event_type: str, timeout: float = 15.0) -> Received:
    return probe.event(lambda e: e.get("call_id") == call_id and e["type"] == event_type, timeout)


def assert_well_formed(events: list[Received], tenant: str, node: str) -> None:
    """Gapless seq from 1, exactly one terminal event, routing keys per the contract."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), [e["type"] for e in events]
    assert sum(e["type"] in TERMINAL for e in events) == 1, [e["type"] for e in events]
    for e in events:
        assert e["v"] == 1 and e["tenant"] == tenant and e["node"] == node
        assert e["_amqp"]["routing_key"] == f"{tenant}.{e['type']}.{e['call_id']}"
        assert e["_amqp"]["message_id"] == e["event_id"]
        datetime.fromisoformat(e["occurred_at"])


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Look at state that has no event of its own (a health page, a row) until ``check`` holds."""
    deadline = time.monotonic() + timeout
    pause = gevent.event.Event()  # never set: only its timeout ends each wait
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        pause.wait(0.05)


def health(worker: Worker) -> tuple[int, dict[str, Any]]:
    """The worker's /healthz over HTTP: (status, body)."""
    url = f"http://127.0.0.1:{worker.http.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def stored_events(engine: Engine, call_id: str) -> list[str]:
    """The types of the events stored for a call, in seq order."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT type FROM call_events WHERE call_id = :c ORDER BY seq"), {"c": call_id}
        ).all()
    return [row[0] for row in rows]
