"""Thousands of malformed commands through RabbitMQ: each answered and dead-lettered with its reason.

Strategy: a seeded generator makes about 3,000 bad messages of many kinds (random
bytes, truncated JSON, wrong types, huge strings, oversize bodies, deep nesting,
invalid UTF-8, bad routing keys, non-objects, non-standard numbers, broken
envelopes, expired and unknown commands), each with a ``message_id`` of its own
and, mostly, a ``reply_to``. The real worker takes them all from the shared queue.
Every one must come back exactly once in the dead-letter queue with
``x-callworker-error: <CODE>: <reason>`` (the expected code where the kind fixes
it), every ``reply_to`` must get one error reply with the same code, nothing may
reach FreeSWITCH, and the worker must still place a call afterwards.
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pika
import pytest
from gevent.queue import Empty

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.bus.topology import COMMANDS_EXCHANGE, DEAD_QUEUE
from callworker.contract import DEAD_LETTER_CODES
from callworker.simulator import Simulator
from tests.integration.conftest import dead_letters, make_settings, start_worker

pytestmark = pytest.mark.integration

SEED = 20261122
INVALID = frozenset({"INVALID_MESSAGE"})
INVALID_FIELD = frozenset({"VALIDATION_ERROR", "INVALID_PHONE_NUMBER"})
VALIDATION = frozenset({"VALIDATION_ERROR"})
ANY = frozenset(code.value for code in DEAD_LETTER_CODES)


@dataclass
class Bad:
    """One malformed message and the dead-letter codes that may name it."""

    kind: str
    routing_key: str
    body: bytes
    expect: frozenset[str]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    reply_to: str | None = None
    headers: dict[str, Any] | None = None
    content_type: str | None = "application/json"


class Maker:
    """Seeded generators of bad messages for one tenant."""

    def __init__(self, tenant: str, rng: random.Random) -> None:
        self.tenant = tenant
        self.rng = rng

    def valid(self) -> dict[str, Any]:
        """A command that would be accepted (the material the bad ones are made of)."""
        choices: list[tuple[str, dict[str, Any]]] = [
            (
                "originate",
                {
                    "destination_number": "+15551230001",
                    "caller_id_name": "Fuzz",
                    "call_id": str(uuid.uuid4()),
                    "timeout_s": 30,
                },
            ),
            ("hangup", {"call_id": str(uuid.uuid4()), "cause": "NORMAL_CLEARING"}),
            ("hold", {"call_id": str(uuid.uuid4()), "hold": True}),
            ("mute", {"call_id": str(uuid.uuid4())}),
            ("call.get", {"call_id": str(uuid.uuid4())}),
            ("call.list", {"limit": 10, "status": "answered"}),
            ("cdr.list", {"limit": 10}),
        ]
        command_type, fields = self.rng.choice(choices)
        return {"v": 1, "command_id": str(uuid.uuid4()), "type": command_type, **fields}

    def key(self, body: dict[str, Any]) -> str:
        return f"{self.tenant}.{body['type']}"

    def random_bytes(self) -> Bad:
        return Bad("random bytes", f"{self.tenant}.originate", self.rng.randbytes(self.rng.randint(0, 300)), ANY)

    def truncated(self) -> Bad:
        body = self.valid()
        text = json.dumps(body).encode()
        return Bad("truncated JSON", self.key(body), text[: self.rng.randrange(len(text))], INVALID)

    WRONG: ClassVar[dict[str, list[Any]]] = {
        "v": ["1", True, 1.0, 2, None, [1]],
        "command_id": [123, "not-a-uuid", None, "", {"id": 1}, str(uuid.uuid4())[:-1]],
        "type": [None, 5, "ORIGINATE", "hangup", ["originate"]],
        "destination_number": [15551230001, None, ["+1555"], {"n": 1}, "", "+", "12", "+1555 123", "1555-123"],
        "caller_id_number": [15550001111, ["x"], "abc", "+"],
        "caller_id_name": [42, "", "x" * 65, ["a"], "O'Brien", "a,b", "tab\there"],
        "call_id": [42, "zz", "", str(uuid.uuid4()) + "0"],
        "timeout_s": ["30", 30.5, True, None, 4, 121, -1, 10**30],
        "privacy": ["yes", 1, None, "true"],
        "gateway": [1, "", "-x", "a b", "elsewhere"],
        "expires_at": ["yesterday", 12345, "2026-01-01T00:00:00", "x" * 100],
    }

    def wrong_type(self) -> Bad:
        body = self.valid()
        body["type"], body["destination_number"] = "originate", "+15551230001"
        name = self.rng.choice(sorted(self.WRONG))
        body[name] = self.rng.choice(self.WRONG[name])
        return Bad(f"wrong {name}", f"{self.tenant}.originate", json.dumps(body).encode(), INVALID_FIELD)

    def huge_string(self) -> Bad:
        body = self.valid()
        body["type"] = "originate"
        name = self.rng.choice(["destination_number", "caller_id_name", "command_id", "type", "call_id"])
        body[name] = self.rng.choice("x9+ \n{") * self.rng.randint(10_000, 60_000)
        if name != "destination_number":
            body["destination_number"] = "+15551230001"
        raw = json.dumps(body).encode()  # escaped newlines may take it past 64 KiB
        return Bad(f"huge {name}", f"{self.tenant}.originate", raw, INVALID if len(raw) > 65536 else INVALID_FIELD)

    def oversize(self) -> Bad:
        body = {**self.valid(), "pad": "p" * self.rng.randint(65_537, 100_000)}
        return Bad("oversize", self.key(body), json.dumps(body).encode(), INVALID)

    def deep(self) -> Bad:
        depth = self.rng.randint(3_000, 30_000)
        opener, closer = self.rng.choice([("[", "]"), ('{"a":', "}")])
        return Bad(
            "deep nesting", f"{self.tenant}.originate", (opener * depth + "1" + closer * depth).encode(), INVALID
        )

    def deep_field(self) -> Bad:
        body = self.valid()
        body["type"] = "originate"
        depth = self.rng.randint(10, 400)
        body["destination_number"] = json.loads("[" * depth + '"+15551230001"' + "]" * depth)
        return Bad("deep field", f"{self.tenant}.originate", json.dumps(body).encode(), INVALID_FIELD)

    def bad_utf8(self) -> Bad:
        body = self.valid()
        text = json.dumps(body).encode()
        at = self.rng.randrange(len(text))
        junk = self.rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf", b"\x80"])
        return Bad("invalid UTF-8", self.key(body), text[:at] + junk + text[at:], INVALID)

    def bad_routing_key(self) -> Bad:
        body = self.valid()
        tenant = self.rng.choice(
            [
                "ACME",
                "-acme",
                "_x",
                "",
                "a" * 64,
                "acme corp",
                "\u00fcnicode",
                "acme\n",
                "acme*",
                "#",
                "acme#x",
                "a/b",
                "tenant!",
            ]
        )
        return Bad("bad tenant", f"{tenant}.{body['type']}", json.dumps(body).encode(), VALIDATION)

    def unknown_type(self) -> Bad:
        body = self.valid()
        route = self.rng.choice(
            ["fly", "", "originate.now", "ORIGINATE", "call", "call.delete", "flashcall", "x" * 100, "hook.survey_done"]
        )
        if self.rng.random() < 0.5:
            body["type"] = route
        return Bad("unknown type", f"{self.tenant}.{route}", json.dumps(body).encode(), frozenset({"UNKNOWN_COMMAND"}))

    def not_an_object(self) -> Bad:
        value = self.rng.choice(["[1, 2]", '"originate"', "42", "null", "true", "[]", '[{"v": 1}]', '""', "1e999"])
        return Bad("not an object", f"{self.tenant}.originate", value.encode(), INVALID)

    def non_standard_number(self) -> Bad:
        body = self.valid()
        raw = self.rng.choice(["NaN", "Infinity", "-Infinity", "1" * 5000])
        text = json.dumps(body)[:-1] + f', "n": {raw}}}'
        return Bad("non-standard number", self.key(body), text.encode(), INVALID)

    def broken_envelope(self) -> Bad:
        body = self.valid()
        del body[self.rng.choice(["v", "command_id", "type"])]
        return Bad(
            "broken envelope",
            self.key({"type": self.rng.choice(["originate", "call.list"])}),
            json.dumps(body).encode(),
            VALIDATION,
        )

    def expired(self) -> Bad:
        body = {
            **self.valid(),
            "expires_at": (datetime.now(UTC) - timedelta(seconds=self.rng.randint(1, 10**6))).isoformat(),
        }
        return Bad("expired", self.key(body), json.dumps(body).encode(), frozenset({"COMMAND_EXPIRED"}))


MIX: list[tuple[Callable[[Maker], Bad], int]] = [
    (Maker.random_bytes, 400),
    (Maker.truncated, 400),
    (Maker.wrong_type, 600),
    (Maker.huge_string, 120),
    (Maker.oversize, 40),
    (Maker.deep, 120),
    (Maker.deep_field, 60),
    (Maker.bad_utf8, 300),
    (Maker.bad_routing_key, 300),
    (Maker.unknown_type, 150),
    (Maker.not_an_object, 150),
    (Maker.non_standard_number, 100),
    (Maker.broken_envelope, 150),
    (Maker.expired, 60),
]


def make_messages(tenant: str, reply_queue: str) -> list[Bad]:
    rng = random.Random(SEED)
    maker = Maker(tenant, rng)
    messages = [make(maker) for make, count in MIX for _ in range(count)]
    rng.shuffle(messages)
    for bad in messages:
        roll = rng.random()
        # Mostly our reply queue; some nowhere (unroutable replies), some without reply_to.
        bad.reply_to = reply_queue if roll < 0.8 else (f"amq.gen-nowhere-{bad.id}" if roll < 0.85 else None)
        # Junk headers, also the one a forwarded command carries, on bodies that fail
        # before any routing key is read (what the header may do is for the tenant tests).
        if bad.expect == INVALID and rng.random() < 0.3:
            bad.headers = {
                "x-callworker-routing-key": rng.choice([b"\xff\xfe", 7, "acme.originate\n", "x" * 300]),
                "x-junk": {"nested": [1, "two", None]},
            }
        if rng.random() < 0.05:
            bad.content_type = rng.choice([None, "text/plain", "application/octet-stream"])
    return messages


def publish_all(amqp_url: str, messages: list[Bad]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for bad in messages:
            channel.basic_publish(
                COMMANDS_EXCHANGE,
                bad.routing_key,
                bad.body,
                pika.BasicProperties(
                    content_type=bad.content_type,
                    delivery_mode=2,
                    reply_to=bad.reply_to,
                    correlation_id=bad.id,
                    message_id=bad.id,
                    headers=bad.headers,
                    timestamp=int(time.time()),
                ),
            )
    finally:
        connection.close()


def collect_dead_letters(amqp_url: str, count: int, timeout: float) -> Iterator[tuple[Any, bytes]]:
    """Up to ``count`` dead letters, as they arrive, until ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        taken = 0
        for method, properties, body in channel.consume(DEAD_QUEUE, inactivity_timeout=1.0):
            if method is not None:
                channel.basic_ack(method.delivery_tag)
                yield properties, body
                taken += 1
            if taken == count or time.monotonic() > deadline:
                break
        channel.cancel()
    finally:
        connection.close()


def collect_replies(probe: Probe, count: int, timeout: float) -> list[Received]:
    deadline = time.monotonic() + timeout
    replies: list[Received] = []
    while len(replies) < count:
        try:
            replies.append(probe.replies.get(timeout=max(0.0, deadline - time.monotonic())))
        except Empty:
            break
    return replies


@pytest.fixture
def fuzz_worker(simulator: Simulator, pg_url: str, amqp_url: str) -> Iterator[Worker]:
    worker = start_worker(make_settings(simulator, pg_url, amqp_url, command_workers=64, prefetch=500))
    yield worker
    worker.stop()


def test_thousands_of_malformed_commands_are_each_answered_and_dead_lettered_once(
    fuzz_worker: Worker,
    probe: Probe,
    tenant: str,
    simulator: Simulator,
    amqp_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead_letters(amqp_url)  # start from an empty dead-letter queue
    before = len(simulator.received_commands())
    messages = make_messages(tenant, probe.reply_queue)
    by_id = {bad.id: bad for bad in messages}
    publish_all(amqp_url, messages)

    letters = list(collect_dead_letters(amqp_url, len(messages), timeout=45))
    seen: dict[str, int] = {}
    for properties, body in letters:
        bad = by_id[properties.message_id]
        seen[bad.id] = seen.get(bad.id, 0) + 1
        reason = properties.headers["x-callworker-error"]
        code, _, why = str(reason).partition(": ")
        assert code in bad.expect and why, (bad.kind, reason)
        assert body == bad.body
    assert len(seen) == len(messages) and set(seen.values()) == {1}

    expected_replies = [bad for bad in messages if bad.reply_to == probe.reply_queue]
    replies = collect_replies(probe, len(expected_replies), timeout=15)
    assert sorted(r["_amqp"]["correlation_id"] for r in replies) == sorted(b.id for b in expected_replies)
    for reply in replies:
        bad = by_id[reply["_amqp"]["correlation_id"]]
        assert reply["v"] == 1 and reply["ok"] is False, reply
        assert reply["error"]["code"] in bad.expect and reply["error"]["message"], (bad.kind, reply)

    assert not [r for r in caplog.records if r.name.startswith("callworker") and r.levelno >= logging.ERROR]
    assert not simulator.received_commands()[before:], "a malformed command reached FreeSWITCH"
    with urllib.request.urlopen(f"http://127.0.0.1:{fuzz_worker.http.port}/healthz", timeout=10) as health:
        assert health.status == 200
    call_id = str(uuid.uuid4())
    placed = probe.send(tenant, "originate", destination_number="+15551230200", call_id=call_id)
    assert probe.reply_for(placed["command_id"])["ok"]
    assert probe.call_events_until_terminal(call_id)[-2]["type"] == "call.completed"


@pytest.mark.parametrize("timestamp", [253402300800, 2**64 - 1])
def test_a_command_with_a_timestamp_past_year_9999_is_still_answered(
    worker: Worker,
    probe: Probe,
    tenant: str,
    amqp_url: str,
    timestamp: int,
) -> None:
    """The AMQP timestamp is the publisher's to set; an absurd one must not wedge the delivery."""
    body = {"v": 1, "command_id": str(uuid.uuid4()), "type": "call.list"}
    correlation = probe.publish_raw(f"{tenant}.call.list", json.dumps(body).encode(), timestamp=timestamp)
    reply = probe.reply_for(None, correlation_id=correlation, timeout=5)
    assert reply["command_id"] == body["command_id"]
